"""WAV helpers for telephone prompts: what Asterisk plays is RIFF/WAVE, PCM s16le, mono, 8 kHz.

Stdlib only (`wave`, `array`); `audioop` is deprecated since Python 3.11 and gone in 3.13, so
the fallback resampler below is a small linear one, used only when `sox` is not installed.
"""

from __future__ import annotations

import io
import struct
import sys
import wave
from array import array
from dataclasses import dataclass

from models.ports import PROMPT_SAMPLE_RATE_HZ


class AudioFormatError(ValueError):
    """The bytes are not a WAV file we can read (PCM 16-bit)."""


@dataclass(frozen=True)
class Pcm:
    """Raw signed 16-bit little-endian samples, interleaved when `channels` > 1."""

    data: bytes
    sample_rate_hz: int
    channels: int = 1


def is_wav(data: bytes) -> bool:
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def pcm_to_wav(pcm: bytes, sample_rate_hz: int = PROMPT_SAMPLE_RATE_HZ, channels: int = 1) -> bytes:
    """Wrap s16le samples into a WAV container (a trailing odd byte is dropped)."""
    if len(pcm) % 2:
        pcm = pcm[:-1]
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate_hz)
        w.writeframes(pcm)
    return out.getvalue()


def read_wav(data: bytes) -> Pcm:
    """Parse a PCM 16-bit WAV, tolerating a streamed header whose sizes are placeholders.

    `espeak-ng --stdout` and `sox ... -` on a pipe cannot seek back, so they write 0x7ffff000
    or 0xffffffff as the RIFF/data sizes; the real data simply ends with the bytes.
    """
    if not is_wav(data):
        raise AudioFormatError("not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise AudioFormatError("truncated fmt chunk")
            audio_format, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            fmt = (audio_format, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioFormatError("data chunk before fmt chunk")
            audio_format, channels, rate, bits = fmt
            # 1 = PCM, 0xFFFE = WAVE_FORMAT_EXTENSIBLE (sox writes it for some outputs).
            if audio_format not in (1, 0xFFFE) or bits != 16 or channels < 1:
                raise AudioFormatError(f"unsupported WAV: format {audio_format}, {bits} bits, {channels} channels")
            end = min(body + size, len(data))
            frame = 2 * channels
            end -= (end - body) % frame
            return Pcm(data[body:end], rate, channels)
        pos = body + size + (size & 1)
    raise AudioFormatError("no data chunk")


def wav_comment(data: bytes) -> str:
    """The text of a WAV's `LIST`/`INFO` `ICMT` (comment) chunk, "" when it has none.

    The ARI emulator (the demo's Asterisk) writes what the resident "said" there, since it records
    no real voice that a recogniser could hear (tests/emulator/ari/README.md, `say`)."""
    if not is_wav(data):
        return ""
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body, end = pos + 8, min(pos + 8 + size, len(data))
        if chunk_id == b"LIST" and data[body : body + 4] == b"INFO":
            sub = body + 4
            while sub + 8 <= end:
                (sub_size,) = struct.unpack_from("<I", data, sub + 4)
                if data[sub : sub + 4] == b"ICMT":
                    return data[sub + 8 : min(sub + 8 + sub_size, end)].rstrip(b"\0").decode("utf-8", "replace")
                sub += 8 + sub_size + (sub_size & 1)
        pos = body + size + (size & 1)
    return ""


def to_mono(pcm: Pcm) -> Pcm:
    if pcm.channels == 1:
        return pcm
    samples = _samples(pcm.data)
    n = pcm.channels
    mixed = array("h", (int(sum(samples[i : i + n]) / n) for i in range(0, len(samples), n)))
    return Pcm(_bytes(mixed), pcm.sample_rate_hz, 1)


def resample(pcm: Pcm, rate_hz: int) -> Pcm:
    """Mono s16le to `rate_hz`: a box low-pass when downsampling, then linear interpolation.

    Good enough for speech prompts on an 8 kHz phone line (sox does better and is preferred).
    """
    pcm = to_mono(pcm)
    if pcm.sample_rate_hz == rate_hz or not pcm.data:
        return Pcm(pcm.data, rate_hz, 1)
    src = _samples(pcm.data)
    ratio = pcm.sample_rate_hz / rate_hz
    if ratio > 1:  # average over the decimation window to cut what would alias
        width = max(1, int(ratio))
        if width > 1:
            acc = 0
            smoothed = array("h", bytes(2 * len(src)))
            for i, value in enumerate(src):
                acc += value
                if i >= width:
                    acc -= src[i - width]
                smoothed[i] = int(acc / min(i + 1, width))
            src = smoothed
    count = int(len(src) / ratio)
    last = len(src) - 1
    out = array("h", bytes(2 * count))
    for i in range(count):
        x = i * ratio
        j = int(x)
        frac = x - j
        a = src[j]
        b = src[j + 1] if j < last else a
        out[i] = int(a + (b - a) * frac)
    return Pcm(_bytes(out), rate_hz, 1)


def to_prompt_wav(data: bytes) -> bytes:
    """Any PCM-16 WAV → WAV 8 kHz mono s16le (the prompt format)."""
    pcm = resample(read_wav(data), PROMPT_SAMPLE_RATE_HZ)
    return pcm_to_wav(pcm.data, PROMPT_SAMPLE_RATE_HZ)


def _samples(data: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(data[: len(data) - len(data) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _bytes(samples: array[int]) -> bytes:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()
