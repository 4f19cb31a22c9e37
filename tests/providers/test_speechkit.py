"""Yandex SpeechKit adapter against a local server that checks the API v1 request form
(docs/decisions/0007) and answers like SpeechKit: success, empty result, 401/403, 429, 500, timeout."""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Iterator

import pytest

from models.ports import ProviderError, Recognition, SpeechRecognizer, SpeechSynthesizer
from openads.config import SpeechSettings
from openads.providers.speech.audio import pcm_to_wav
from openads.providers.speech.yandex import SpeechKit
from tests.providers.conftest import FakeApi, Reply

PCM = b"".join(struct.pack("<h", v) for v in (0, 1000, -1000, 32767, -32768, 5, -5, 0) * 100)


def settings_for(api: FakeApi, **overrides: object) -> SpeechSettings:
    base: dict[str, object] = dict(
        provider="yandex", speechkit_api_key="AQVN-test-key", speechkit_voice="alena",
        speechkit_stt_url=api.url, speechkit_tts_url=api.url, timeout=2.0,
    )
    base.update(overrides)
    return SpeechSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
def kit(api: FakeApi) -> Iterator[SpeechKit]:
    adapter = SpeechKit(settings_for(api))
    yield adapter
    adapter.close()


def test_speechkit_implements_both_ports(kit: SpeechKit) -> None:
    assert isinstance(kit, SpeechRecognizer)
    assert isinstance(kit, SpeechSynthesizer)


def test_recognize_posts_raw_lpcm_with_the_documented_query_and_api_key(api: FakeApi, kit: SpeechKit) -> None:
    api.reply(Reply(200, {"result": "пять"}))

    result = kit.recognize(PCM, sample_rate_hz=8000)

    assert result == Recognition(text="пять", confidence=None)
    req = api.last
    assert req.method == "POST"
    assert req.path == "/speech/v1/stt:recognize"
    assert req.params == {"lang": "ru-RU", "topic": "general", "format": "lpcm", "sampleRateHertz": "8000"}
    assert req.headers["authorization"] == "Api-Key AQVN-test-key"
    assert req.headers["content-type"] == "application/octet-stream"
    assert req.body == PCM


def test_recognize_unwraps_a_wav_recording_and_sends_its_rate(api: FakeApi, kit: SpeechKit) -> None:
    api.reply(Reply(200, {"result": "четыре"}))

    assert kit.recognize(pcm_to_wav(PCM, 16000), sample_rate_hz=8000).text == "четыре"

    assert api.last.params["sampleRateHertz"] == "16000"
    assert api.last.body == PCM


def test_recognize_with_an_iam_token_sends_bearer_and_folder_id(api: FakeApi) -> None:
    kit = SpeechKit(settings_for(api, speechkit_api_key="", speechkit_iam_token="t1.iam", speechkit_folder_id="b1gfolder"))
    api.reply(Reply(200, {"result": "три"}))
    try:
        kit.recognize(PCM, sample_rate_hz=8000, language="ru-RU")
    finally:
        kit.close()

    assert api.last.headers["authorization"] == "Bearer t1.iam"
    assert api.last.params == {
        "lang": "ru-RU", "topic": "general", "format": "lpcm", "sampleRateHertz": "8000", "folderId": "b1gfolder",
    }


def test_empty_result_is_an_empty_recognition_not_an_error(api: FakeApi, kit: SpeechKit) -> None:
    api.reply(Reply(200, {"result": ""}), Reply(200, {}))

    assert kit.recognize(PCM, sample_rate_hz=8000) == Recognition(text="")
    assert kit.recognize(PCM, sample_rate_hz=8000) == Recognition(text="")


def test_silence_of_zero_length_is_not_sent(api: FakeApi, kit: SpeechKit) -> None:
    assert kit.recognize(b"", sample_rate_hz=8000) == Recognition(text="")
    assert api.requests == []


def test_audio_longer_than_30_seconds_is_cut_to_the_api_limit(api: FakeApi, kit: SpeechKit) -> None:
    api.reply(Reply(200, {"result": "пять"}))

    kit.recognize(b"\x01\x00" * 8000 * 40, sample_rate_hz=8000)

    assert len(api.last.body) == 8000 * 2 * 30


@pytest.mark.parametrize(
    ("status", "body", "code", "retryable"),
    [
        (401, {"error_code": "UNAUTHORIZED", "error_message": "The token is invalid"}, "401", False),
        (403, {"error_code": "PERMISSION_DENIED", "error_message": "no ai.speechkit-stt.user role"}, "403", False),
        (400, {"error_code": "BAD_REQUEST", "error_message": "audio should be less than 30s"}, "400", False),
        (429, {"error_code": "RESOURCE_EXHAUSTED", "error_message": "quota"}, "429", True),
        (500, {"error_code": "INTERNAL", "error_message": "internal error"}, "500", True),
        (503, "<html>Service Unavailable</html>", "503", True),
    ],
)
def test_recognize_http_errors_become_one_provider_error(
    api: FakeApi, kit: SpeechKit, status: int, body: object, code: str, retryable: bool
) -> None:
    api.reply(Reply(status, body))

    with pytest.raises(ProviderError) as info:
        kit.recognize(PCM, sample_rate_hz=8000)

    assert (info.value.provider, info.value.code, info.value.retryable) == ("speechkit", code, retryable)
    if isinstance(body, dict):
        assert info.value.message == f"{body['error_code']}: {body['error_message']}"


def test_recognize_timeout_is_a_retryable_provider_error(api: FakeApi) -> None:
    kit = SpeechKit(settings_for(api, timeout=0.3))
    api.reply(Reply(hang=True))
    try:
        with pytest.raises(ProviderError) as info:
            kit.recognize(PCM, sample_rate_hz=8000)
    finally:
        kit.close()

    assert (info.value.provider, info.value.code, info.value.retryable) == ("speechkit", "timeout", True)


def test_unreachable_server_is_a_retryable_connect_error() -> None:
    kit = SpeechKit(SpeechSettings(provider="yandex", speechkit_api_key="k", speechkit_stt_url="http://127.0.0.1:9", timeout=2))
    try:
        with pytest.raises(ProviderError) as info:
            kit.recognize(PCM, sample_rate_hz=8000)
    finally:
        kit.close()
    assert (info.value.code, info.value.retryable) == ("connect", True)


def test_synthesize_posts_the_documented_form_and_wraps_lpcm_into_an_8khz_wav(api: FakeApi, kit: SpeechKit) -> None:
    api.reply(Reply(200, PCM, content_type="audio/x-pcm"))

    audio = kit.synthesize("Оцените, пожалуйста, выполнение заявки 2026-000123.")

    req = api.last
    assert req.method == "POST"
    assert req.path == "/speech/v1/tts:synthesize"
    assert req.params == {}
    assert req.headers["authorization"] == "Api-Key AQVN-test-key"
    assert req.form == {
        "text": "Оцените, пожалуйста, выполнение заявки 2026-000123.",
        "lang": "ru-RU",
        "voice": "alena",
        "format": "lpcm",
        "sampleRateHertz": "8000",
    }
    with wave.open(io.BytesIO(audio)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.readframes(w.getnframes()) == PCM


def test_synthesize_uses_the_requested_voice(api: FakeApi, kit: SpeechKit) -> None:
    api.reply(Reply(200, PCM))
    kit.synthesize("Спасибо", voice="filipp")
    assert api.last.form["voice"] == "filipp"


@pytest.mark.parametrize(
    ("reply", "code", "retryable"),
    [
        (Reply(401, {"error_code": "UNAUTHORIZED", "error_message": "Unknown api key"}), "401", False),
        (Reply(429, {"error_code": "RESOURCE_EXHAUSTED", "error_message": "quota"}), "429", True),
        (Reply(500, {"error_code": "INTERNAL", "error_message": "boom"}), "500", True),
        (Reply(200, b""), "empty-result", True),
        (Reply(200, {"error_code": "BAD_REQUEST", "error_message": "bad voice"}), "BAD_REQUEST", True),
    ],
)
def test_synthesize_errors_become_one_provider_error(
    api: FakeApi, kit: SpeechKit, reply: Reply, code: str, retryable: bool
) -> None:
    api.reply(reply)
    with pytest.raises(ProviderError) as info:
        kit.synthesize("Спасибо")
    assert (info.value.provider, info.value.code, info.value.retryable) == ("speechkit", code, retryable)


def test_synthesize_refuses_text_over_the_api_limit_without_a_request(api: FakeApi, kit: SpeechKit) -> None:
    with pytest.raises(ProviderError) as info:
        kit.synthesize("а" * 5001)
    assert (info.value.code, info.value.retryable) == ("text-too-long", False)
    assert api.requests == []
