"""Prompt cache: each prompt text is synthesised once and kept as a WAV file Asterisk plays.

The file name is sha256(provider, voice, text), so a changed template (or voice, or provider)
is a new file and is synthesised on first use; an unchanged one never calls the provider again,
even across restarts. Writes are atomic (temporary file + `os.replace` in the same directory),
so Asterisk never plays half a file and two processes racing on one prompt both end with a
complete file. ARI plays it as `sound:<path without .wav>` (Asterisk picks the extension).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

from models.ports import SpeechSynthesizer

log = logging.getLogger(__name__)

# Public on purpose (see PromptCache.get): the rest of what OpenADS writes is private (models/files.py).
PROMPT_DIR_MODE = 0o755
PROMPT_FILE_MODE = 0o644


def prompt_key(provider: str, voice: str | None, text: str) -> str:
    raw = "\0".join((provider, voice or "", text)).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()


def sound_uri(path: Path) -> str:
    """ARI media URI for a cached prompt: `sound:/abs/dir/<key>` (no extension)."""
    return "sound:" + str(path.with_suffix(""))


class PromptCache:
    def __init__(self, synthesizer: SpeechSynthesizer, directory: Path, *, provider: str | None = None) -> None:
        self.synthesizer = synthesizer
        self.directory = Path(directory)
        self.provider = provider or str(getattr(synthesizer, "name", type(synthesizer).__name__))
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path_for(self, text: str, voice: str | None = None) -> Path:
        return (self.directory / prompt_key(self.provider, voice, text)).with_suffix(".wav").resolve()

    def get(self, text: str, voice: str | None = None) -> Path:
        """The WAV file for `text`, synthesising it on first use. Raises ProviderError."""
        path = self.path_for(text, voice)
        if path.exists():
            return path
        with self._lock_for(path.name):
            if path.exists():  # another thread made it while we waited
                return path
            audio = self.synthesizer.synthesize(text, voice=voice)
            if not self.directory.is_dir():
                self.directory.mkdir(parents=True, exist_ok=True)
                # Asterisk (another user) plays the prompts; they hold no personal data (the
                # company's name, a ticket number), unlike the 0750 directories of models/files.py.
                os.chmod(self.directory, PROMPT_DIR_MODE)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".wav")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(audio)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, PROMPT_FILE_MODE)  # Asterisk runs as another user and must read it
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            log.info("prompt synthesised by %s: %s (%d bytes)", self.provider, path.name, len(audio))
            return path

    def sound(self, text: str, voice: str | None = None) -> str:
        """`sound:` URI of the prompt (synthesised if needed)."""
        return sound_uri(self.get(text, voice))

    def _lock_for(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())
