"""Yandex SpeechKit over its HTTP API v1 (docs/decisions/0007-speechkit-http-api.md).

- STT, synchronous recognition: `POST {stt}/speech/v1/stt:recognize?lang=&topic=&format=lpcm&
  sampleRateHertz=&folderId=`, body = raw LPCM (≤ 30 s, ≤ 1 MB); answer `{"result": "<text>"}`.
- TTS: `POST {tts}/speech/v1/tts:synthesize`, URL-encoded form `text, lang, voice, format=lpcm,
  sampleRateHertz=8000[, folderId]`; answer = raw LPCM, which we wrap into a WAV header.
- Auth: `Authorization: Api-Key <key>` (service account; no folderId) or `Bearer <IAM token>`
  (then folderId is required).
- Errors: JSON `{"error_code": ..., "error_message": ...}` with the HTTP status
  (400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 429 RESOURCE_EXHAUSTED,
  500/503/504). All become one `ProviderError("speechkit", "<status>", ...)`.
"""

from __future__ import annotations

import logging

import httpx

from models.ports import PROMPT_SAMPLE_RATE_HZ, ProviderError, Recognition
from openads.config import SpeechSettings
from openads.providers import transport
from openads.providers.speech.audio import AudioFormatError, Pcm, is_wav, pcm_to_wav, read_wav, resample

log = logging.getLogger(__name__)

PROVIDER = "speechkit"
STT_PATH = "/speech/v1/stt:recognize"
TTS_PATH = "/speech/v1/tts:synthesize"
STT_RATES = (8000, 16000, 48000)  # sampleRateHertz values the v1 API accepts for lpcm
STT_MAX_SECONDS = 30
STT_MAX_BYTES = 1024 * 1024
TTS_MAX_CHARS = 5000


class SpeechKit:
    """SpeechRecognizer + SpeechSynthesizer. One httpx client (keep-alive), timeouts from settings."""

    name = "yandex"

    def __init__(self, settings: SpeechSettings, client: httpx.Client | None = None) -> None:
        if not (settings.speechkit_api_key or settings.speechkit_iam_token):
            raise ValueError("SpeechKit needs SPEECHKIT_API_KEY or SPEECHKIT_IAM_TOKEN")
        self.settings = settings
        self.client = client or transport.make_client(settings.timeout)

    def close(self) -> None:
        self.client.close()

    def _headers(self) -> dict[str, str]:
        s = self.settings
        if s.speechkit_api_key:
            return {"Authorization": f"Api-Key {s.speechkit_api_key}"}
        return {"Authorization": f"Bearer {s.speechkit_iam_token}"}

    def _folder(self) -> dict[str, str]:
        # A service account's API key implies its folder; a user's IAM token needs folderId.
        folder = self.settings.speechkit_folder_id
        return {"folderId": folder} if folder else {}

    def recognize(self, audio: bytes, *, sample_rate_hz: int, language: str = "ru-RU") -> Recognition:
        pcm, rate = _lpcm(audio, sample_rate_hz)
        max_bytes = min(STT_MAX_BYTES, rate * 2 * STT_MAX_SECONDS)
        if len(pcm) > max_bytes:  # the API refuses longer audio; the start holds the answer
            log.info("speechkit: answer audio cut from %d to %d bytes", len(pcm), max_bytes)
            pcm = pcm[:max_bytes]
        if not pcm:
            return Recognition(text="")
        params = {"lang": language, "topic": "general", "format": "lpcm", "sampleRateHertz": str(rate), **self._folder()}
        response = transport.request(
            self.client,
            PROVIDER,
            "POST",
            self.settings.speechkit_stt_url + STT_PATH,
            params=params,
            content=pcm,
            headers={**self._headers(), "Content-Type": "application/octet-stream"},
        )
        if response.status_code != 200:
            raise _error(response)
        data = transport.json_body(response, PROVIDER)
        if data.get("error_code"):
            raise ProviderError(PROVIDER, str(data["error_code"]), str(data.get("error_message", "")), retryable=False)
        text = data.get("result")
        return Recognition(text=text.strip() if isinstance(text, str) else "")

    def synthesize(self, text: str, *, voice: str | None = None) -> bytes:
        text = text.strip()
        if not text:
            raise ProviderError(PROVIDER, "empty-text", "nothing to synthesise", retryable=False)
        if len(text) > TTS_MAX_CHARS:
            raise ProviderError(PROVIDER, "text-too-long", f"{len(text)} > {TTS_MAX_CHARS} characters", retryable=False)
        form = {
            "text": text,
            "lang": "ru-RU",
            "voice": voice or self.settings.speechkit_voice,
            "format": "lpcm",
            "sampleRateHertz": str(PROMPT_SAMPLE_RATE_HZ),
            **self._folder(),
        }
        response = transport.request(
            self.client, PROVIDER, "POST", self.settings.speechkit_tts_url + TTS_PATH, data=form, headers=self._headers()
        )
        if response.status_code != 200:
            raise _error(response)
        if response.headers.get("content-type", "").startswith("application/json"):
            # A 200 with a JSON body is an error report, never audio.
            data = transport.json_body(response, PROVIDER)
            raise ProviderError(PROVIDER, str(data.get("error_code", "bad-response")), str(data.get("error_message", "")))
        if len(response.content) < 2:
            raise ProviderError(PROVIDER, "empty-result", "no audio in the answer", retryable=True)
        return pcm_to_wav(response.content, PROMPT_SAMPLE_RATE_HZ)


def _lpcm(audio: bytes, sample_rate_hz: int) -> tuple[bytes, int]:
    """Raw s16le mono at a rate the API accepts (WAV input is unwrapped; other rates resampled)."""
    if is_wav(audio):
        try:
            pcm = read_wav(audio)
        except AudioFormatError as exc:
            raise ProviderError(PROVIDER, "bad-audio", str(exc), retryable=False) from exc
    else:
        pcm = Pcm(audio[: len(audio) - len(audio) % 2], sample_rate_hz, 1)
    if pcm.channels != 1 or pcm.sample_rate_hz not in STT_RATES:
        pcm = resample(pcm, 8000 if pcm.sample_rate_hz < 16000 else 16000)
    return pcm.data, pcm.sample_rate_hz


def _error(response: httpx.Response) -> ProviderError:
    status = response.status_code
    detail = response.text[:300]
    try:
        data = response.json()
        if isinstance(data, dict) and ("error_code" in data or "error_message" in data):
            detail = f"{data.get('error_code', '')}: {data.get('error_message', '')}"
    except ValueError:
        pass
    return ProviderError(PROVIDER, str(status), detail, retryable=transport.retryable_status(status))
