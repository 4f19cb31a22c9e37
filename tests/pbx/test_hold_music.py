"""What a caller hears between the greeting and the music on hold (issue 9, B3): no gap.

The resident's phone records what it receives (baresip's sndfile dump): one 20 ms frame per RTP
packet, so a pause in which Asterisk sends nothing is not in the recording. Asterisk's RTP debug
(`rtp set debug on`, full.log with milliseconds) gives the time each packet to the resident was
sent: frame k of the recording is packet k. The greeting is found in the recording by its
loudness envelope (the PBX's prompt file greeting.wav), so the frame where the prompt file ends is
known; the silence the caller hears is from the time of that frame's packet to the first loud packet
after it (silent frames and unsent ones alike).
"""

from __future__ import annotations

import array
import re
import time
import wave
from datetime import datetime
from pathlib import Path

from tests.pbx.conftest import Phones
from tests.pbx.phones import wav_rms
from tests.pbx.stack import Stack

ZOYA = "+74951110001"
BLOCK = 0.02  # seconds of one loudness block
QUIET = 150.0  # rms below this: silence (G.711 of digital silence is ~0; speech and music are ~1000s)
MAX_GAP = 0.3  # seconds of silence allowed between the end of the greeting and the music


def envelope(path: Path) -> list[float]:
    """RMS of each BLOCK of a 16-bit mono WAV."""
    with wave.open(str(path)) as w:
        rate, raw = w.getframerate(), w.readframes(w.getnframes())
    samples, step = array.array("h", raw), int(rate * BLOCK)
    return [(sum(s * s for s in samples[i:i + step]) / step) ** 0.5 for i in range(0, len(samples) - step + 1, step)]


def loud(env: list[float]) -> list[bool]:
    return [x >= QUIET for x in env]


def find_prompt(heard: list[bool], prompt: list[bool], within: int) -> int:
    """The block of `heard` where `prompt` starts: the offset (< `within`) where the two agree most."""
    def agreement(at: int) -> int:
        return sum(1 for i, p in enumerate(prompt) if at + i < len(heard) and heard[at + i] == p)
    return max(range(min(within, len(heard))), key=agreement)


def sent_packets(log: str) -> list[float]:
    """Times (seconds) of the RTP packets Asterisk logged as sent (`rtp set debug`)."""
    times = []
    for line in log.splitlines():
        if "Sent RTP packet" in line:
            stamp = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\]", line)
            if stamp:
                times.append(datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp())
    return times


def test_the_music_follows_the_greeting_without_a_gap(stack: Stack, phones: Phones) -> None:
    greeting = Path(stack.pbx["OPENADS_PBX_HOME"]) / "data" / "sounds" / "ru" / "openads" / "greeting.wav"
    prompt = loud(envelope(greeting))
    phones.dispatcher("201")  # rung once the caller is queued; nobody answers
    resident = phones.resident(ZOYA)
    log_from = stack.pbx_log_size("full.log")
    stack.cli("rtp set debug on")  # only the resident has media: the dispatcher is rung, never answers
    try:
        resident.dial(phones.hotline_uri())
        resident.wait("CALL_ESTABLISHED", 20)
        time.sleep(len(prompt) * BLOCK + 4)  # the greeting, then some music
        resident.hangup()
        resident.wait("CALL_CLOSED", 5)
    finally:
        stack.cli("rtp set debug off")
    sent = sent_packets(stack.pbx_log(log_from, "full.log"))
    [wav] = resident.heard()[-1:]
    heard = loud(envelope(wav))
    start = find_prompt(heard, prompt, within=int(3 / BLOCK))
    matched = sum(1 for i, p in enumerate(prompt) if start + i < len(heard) and heard[start + i] == p) / len(prompt)
    assert matched > 0.9, f"the greeting is not found in what the caller heard ({matched:.0%} agreement)"
    end = start + len(prompt)  # the end of the prompt file (its own trailing silence included)
    music = next((i for i in range(end, len(heard)) if heard[i]), len(heard))
    assert abs(len(sent) - len(heard)) <= 5, f"{len(sent)} packets sent, {len(heard)} frames heard"
    gap = sent[min(music, len(sent) - 1)] - sent[end - 1] - BLOCK
    pauses = sorted(b - a - BLOCK for a, b in zip(sent, sent[1:], strict=False))[-3:]
    print(f"greeting from frame {start}, prompt ends frame {end}, music from frame {music} "
          f"({(music - end) * BLOCK * 1000:.0f} ms of silent frames): gap {gap * 1000:.0f} ms; "
          f"longest pauses in sending: {[round(p * 1000) for p in pauses]} ms")
    assert music < len(heard) and wav_rms(wav, music * BLOCK, music * BLOCK + 2) > QUIET, "no music after the greeting"
    assert gap <= MAX_GAP, f"{gap * 1000:.0f} ms of silence between the greeting and the music"
