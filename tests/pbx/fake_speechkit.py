"""A local stand-in for Yandex SpeechKit's synchronous recognition (HTTP API v1), for the real-PBX
rating scenarios: `openads ari` runs with SPEECH_RECOGNIZER=yandex and SPEECHKIT_STT_URL pointing here.

It checks the request as SpeechKit would (docs/decisions/0007-speechkit-http-api.md):
`POST /speech/v1/stt:recognize`, `Authorization: Api-Key <key>`, query `lang=ru-RU`, `topic`,
`format=lpcm`, `sampleRateHertz` in 8000/16000/48000, body = raw s16le PCM, non-empty, even,
at most 30 s and 1 MB. A request that breaks the contract gets SpeechKit's 400/401 JSON error.

What it "hears" is NOT speech recognition: there is no offline Russian STT to run here. It
returns `answer` (default «четыре») when the audio holds a voiced stretch (frames above an energy
threshold) of plausible length for one spoken word (0.3–3 s), and "" otherwise (silence, a
click, a tone lasting the whole recording). So a test proves that the resident's real audio went
through Asterisk's recording, our download and our provider's request, not that a word was
understood; the words are chosen by the test.
"""

from __future__ import annotations

import json
import math
import threading
from array import array
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

STT_PATH = "/speech/v1/stt:recognize"
RATES = (8000, 16000, 48000)
MAX_BYTES = 1024 * 1024
FRAME_SECONDS = 0.02
VOICED_RMS = 300.0  # 16-bit samples; espeak speech through G.711 is far above, line noise far below
WORD_SECONDS = (0.3, 3.0)


@dataclass
class SttRequest:
    headers: dict[str, str]
    params: dict[str, str]
    audio_bytes: int
    voiced_seconds: float
    status: int
    result: str


@dataclass
class FakeSpeechKit:
    api_key: str = "pbx-test-api-key"
    answer: str = "четыре"
    requests: list[SttRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, payload = fake.recognize(self.path, dict(self.headers.items()), body)
                data = json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-speechkit", daemon=True)

    def start(self) -> FakeSpeechKit:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def env(self) -> dict[str, str]:
        """For `openads ari`: the recognizer is SpeechKit (here); prompts stay with espeak-ng."""
        return {"SPEECH_PROVIDER": "espeak", "SPEECH_RECOGNIZER": "yandex", "SPEECHKIT_API_KEY": self.api_key,
                "SPEECHKIT_STT_URL": self.url, "SPEECHKIT_TIMEOUT": "5"}

    # --- the contract ---------------------------------------------------------------------------------
    def recognize(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        url = urlsplit(path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        lower = {k.lower(): v for k, v in headers.items()}

        def record(status: int, result: str = "", voiced: float = 0.0) -> None:
            self.requests.append(SttRequest(lower, params, len(body), voiced, status, result))

        def error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
            record(status)
            return status, {"error_code": code, "error_message": message}

        if url.path != STT_PATH:
            return error(404, "NOT_FOUND", f"no such method {url.path}")
        if lower.get("authorization") != f"Api-Key {self.api_key}":
            return error(401, "UNAUTHENTICATED", "Unknown api key")
        if params.get("lang") != "ru-RU" or params.get("format") != "lpcm" or not params.get("topic"):
            return error(400, "BAD_REQUEST", f"bad parameters {params}")
        try:
            rate = int(params.get("sampleRateHertz", ""))
        except ValueError:
            return error(400, "BAD_REQUEST", "sampleRateHertz is required for lpcm")
        if rate not in RATES:
            return error(400, "BAD_REQUEST", f"sampleRateHertz {rate} not supported")
        if not body or len(body) % 2 or len(body) > MAX_BYTES or len(body) > rate * 2 * 30:
            return error(400, "BAD_REQUEST", f"audio of {len(body)} bytes")
        if body[:4] == b"RIFF":
            return error(400, "BAD_REQUEST", "lpcm is raw PCM, a WAV header was sent")
        voiced = voiced_seconds(body, rate)
        result = self.answer if WORD_SECONDS[0] <= voiced <= WORD_SECONDS[1] else ""
        record(200, result, voiced)
        return 200, {"result": result}


def voiced_seconds(pcm: bytes, rate: int) -> float:
    """Seconds of 20 ms frames whose RMS is above VOICED_RMS."""
    samples = array("h")
    samples.frombytes(pcm)
    size = max(1, int(rate * FRAME_SECONDS))
    voiced = 0
    for start in range(0, len(samples) - size + 1, size):
        frame = samples[start:start + size]
        if math.sqrt(sum(s * s for s in frame) / size) > VOICED_RMS:
            voiced += 1
    return voiced * FRAME_SECONDS
