"""Deterministic speech provider for tests and the demo (no network, no binaries).

- `synthesize(text)` returns a valid WAV (8 kHz mono s16le): a quiet tone whose length grows
  with the text (20 ms per character, at least 200 ms), the same bytes for the same text.
- `recognize(audio)` looks the audio up in `answers` (exact bytes → text); otherwise it hears the
  words of a recording made by the ARI emulator while its phone `say()`s them (the WAV's INFO/ICMT
  comment: the demo's Asterisk, driven by the call simulator) or of audio made by `utterance(text)`;
  anything else is silence (`Recognition("")`).
- `fail_with` makes the next calls raise (SpeechKit 500 in robot tests); `calls` logs them.
"""

from __future__ import annotations

import math
import struct
import threading
from dataclasses import dataclass, field

from models.ports import PROMPT_SAMPLE_RATE_HZ, ProviderError, Recognition
from openads.config import SpeechSettings
from openads.providers.speech.audio import AudioFormatError, is_wav, pcm_to_wav, read_wav, wav_comment

MARKER = b"OPENADS-FAKE-SAY:"


def utterance(text: str, sample_rate_hz: int = PROMPT_SAMPLE_RATE_HZ) -> bytes:
    """A WAV 'recording' the fake recogniser hears as `text` (its PCM starts with a marker)."""
    payload = MARKER + text.encode("utf-8")
    return pcm_to_wav(payload + b"\0" * (len(payload) % 2), sample_rate_hz)


@dataclass
class FakeSpeech:
    """SpeechRecognizer + SpeechSynthesizer."""

    settings: SpeechSettings | None = None
    answers: dict[bytes, str] = field(default_factory=dict)
    confidence: float = 0.9
    fail_with: ProviderError | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)  # ("synthesize", text) / ("recognize", text)
    name: str = "fake"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def synthesize(self, text: str, *, voice: str | None = None) -> bytes:
        with self._lock:
            self.calls.append(("synthesize", text))
            if self.fail_with is not None:
                raise self.fail_with
        frames = max(PROMPT_SAMPLE_RATE_HZ // 5, len(text) * PROMPT_SAMPLE_RATE_HZ // 50)
        pcm = b"".join(
            struct.pack("<h", int(800 * math.sin(2 * math.pi * 440 * i / PROMPT_SAMPLE_RATE_HZ))) for i in range(frames)
        )
        return pcm_to_wav(pcm, PROMPT_SAMPLE_RATE_HZ)

    def recognize(self, audio: bytes, *, sample_rate_hz: int, language: str = "ru-RU") -> Recognition:
        text = self.answers.get(audio)
        if text is None:
            text = _said(audio)
        with self._lock:
            self.calls.append(("recognize", text))
            if self.fail_with is not None:
                raise self.fail_with
        return Recognition(text=text, confidence=self.confidence if text else None)


def _said(audio: bytes) -> str:
    data = audio
    if is_wav(audio):
        comment = wav_comment(audio)
        if comment:
            return comment
        try:
            data = read_wav(audio).data
        except AudioFormatError:
            return ""
    if not data.startswith(MARKER):
        return ""
    return data[len(MARKER) :].rstrip(b"\0").decode("utf-8", "replace")
