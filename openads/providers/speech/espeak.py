"""Offline Russian TTS with Debian's `espeak-ng` (GPL-3, run as a program, not linked).

`espeak-ng -v ru -b 1 --stdin --stdout` reads UTF-8 text on stdin (so text starting with "-" is
never an option) and writes a 22050 Hz mono WAV to stdout. It is converted to the prompt format
(8 kHz mono s16le) by `sox` when installed, else by the small resampler in `audio.py`.
Intelligible but robotic (shared/domain/integrations.md 3.3): the fallback when SpeechKit is
not configured, and the demo's voice.
"""

from __future__ import annotations

import shutil
import subprocess

from models.ports import PROMPT_SAMPLE_RATE_HZ, ProviderError
from openads.config import SpeechSettings
from openads.providers.speech.audio import AudioFormatError, to_prompt_wav

PROVIDER = "espeak"
TIMEOUT_SECONDS = 30


class EspeakNg:
    """SpeechSynthesizer only (espeak-ng does not recognise speech: rating by keypad)."""

    name = "espeak"

    def __init__(self, settings: SpeechSettings | None = None, *, binary: str = "espeak-ng", sox: str | None = "sox") -> None:
        self.voice = settings.espeak_voice if settings else "ru"
        self.binary = binary
        self.sox = sox

    @staticmethod
    def available(binary: str = "espeak-ng") -> bool:
        return shutil.which(binary) is not None

    def synthesize(self, text: str, *, voice: str | None = None) -> bytes:
        text = text.strip()
        if not text:
            raise ProviderError(PROVIDER, "empty-text", "nothing to synthesise", retryable=False)
        binary = shutil.which(self.binary)
        if binary is None:
            raise ProviderError(PROVIDER, "not-installed", f"{self.binary} not found (apt-get install espeak-ng)", retryable=False)
        raw = self._run([binary, "-v", voice or self.voice, "-b", "1", "--stdin", "--stdout"], text.encode("utf-8"))
        sox = shutil.which(self.sox) if self.sox else None
        if sox is not None:
            raw = self._run(
                [sox, "-q", "-t", "wav", "-", "-r", str(PROMPT_SAMPLE_RATE_HZ), "-c", "1", "-b", "16",
                 "-e", "signed-integer", "-t", "wav", "-"],
                raw,
            )
        try:
            # Also rewrites the streamed header's placeholder sizes into real ones.
            return to_prompt_wav(raw)
        except AudioFormatError as exc:
            raise ProviderError(PROVIDER, "bad-audio", str(exc), retryable=False) from exc

    def _run(self, argv: list[str], stdin: bytes) -> bytes:
        try:
            done = subprocess.run(argv, input=stdin, capture_output=True, timeout=TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ProviderError(PROVIDER, "timeout", f"{argv[0]} ran over {TIMEOUT_SECONDS} s", retryable=True) from exc
        except OSError as exc:
            raise ProviderError(PROVIDER, "exec", f"{argv[0]}: {exc}", retryable=False) from exc
        if done.returncode != 0 or not done.stdout:
            err = done.stderr.decode("utf-8", "replace").strip()[:300]
            raise ProviderError(PROVIDER, f"exit-{done.returncode}", err or "no output", retryable=False)
        return done.stdout
