"""espeak-ng TTS, the WAV helpers, the fake speech provider and the prompt cache."""

from __future__ import annotations

import io
import shutil
import struct
import wave
from pathlib import Path

import pytest

from models.ports import ProviderError, Recognition, SpeechRecognizer, SpeechSynthesizer
from openads.providers.speech.audio import Pcm, pcm_to_wav, read_wav, resample, wav_comment
from openads.providers.speech.cache import PromptCache, prompt_key, sound_uri
from openads.providers.speech.espeak import EspeakNg
from openads.providers.speech.fake import FakeSpeech, utterance

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")


def wav_info(data: bytes) -> tuple[int, int, int, int]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()


# --- espeak-ng ---------------------------------------------------------------------------------

@needs_espeak
@pytest.mark.parametrize("sox", ["sox", None], ids=["with-sox", "python-resampler"])
def test_espeak_ng_renders_russian_to_an_8khz_mono_16bit_wav(sox: str | None) -> None:
    if sox and shutil.which(sox) is None:
        pytest.skip("sox not installed")
    tts = EspeakNg(sox=sox)
    assert isinstance(tts, SpeechSynthesizer)

    audio = tts.synthesize("Спасибо, ваша оценка — четыре.")

    rate, channels, width, frames = wav_info(audio)
    assert (rate, channels, width) == (8000, 1, 2)
    assert 8000 * 1 < frames < 8000 * 10  # a short sentence: between 1 and 10 seconds
    assert len(audio) == 44 + frames * 2  # a plain header with real sizes (not streamed placeholders)
    samples = struct.unpack(f"<{frames}h", audio[44:])
    assert max(abs(s) for s in samples) > 1000  # not silence


@needs_espeak
def test_espeak_text_starting_with_a_dash_is_read_not_taken_as_an_option() -> None:
    assert wav_info(EspeakNg().synthesize("-v en пять"))[3] > 0


def test_espeak_missing_binary_is_a_permanent_provider_error() -> None:
    with pytest.raises(ProviderError) as info:
        EspeakNg(binary="espeak-ng-not-installed").synthesize("пять")
    assert (info.value.provider, info.value.code, info.value.retryable) == ("espeak", "not-installed", False)


# --- WAV helpers -------------------------------------------------------------------------------

def test_read_wav_tolerates_a_streamed_header_with_placeholder_sizes() -> None:
    pcm = struct.pack("<4h", 1, -2, 3, -4)
    header = bytearray(pcm_to_wav(pcm, 22050)[:44])
    header[4:8] = struct.pack("<I", 0x7FFFF000)
    header[40:44] = struct.pack("<I", 0x7FFFF000)

    assert read_wav(bytes(header) + pcm) == Pcm(pcm, 22050, 1)


def test_resample_22050_to_8000_keeps_duration_and_a_constant_signal() -> None:
    pcm = struct.pack("<h", 1000) * 22050

    out = resample(Pcm(pcm, 22050), 8000)

    assert out.sample_rate_hz == 8000 and len(out.data) == 8000 * 2
    assert set(struct.unpack(f"<{8000}h", out.data)) == {1000}


# --- fake --------------------------------------------------------------------------------------

def test_fake_speech_is_deterministic_and_hears_what_the_emulator_says() -> None:
    fake = FakeSpeech()
    assert isinstance(fake, SpeechRecognizer) and isinstance(fake, SpeechSynthesizer)

    first = fake.synthesize("Оцените работу")
    assert first == fake.synthesize("Оцените работу")
    assert wav_info(first)[:3] == (8000, 1, 2)
    assert fake.recognize(utterance("на пятёрку"), sample_rate_hz=8000) == Recognition("на пятёрку", 0.9)
    assert fake.recognize(b"\0" * 1600, sample_rate_hz=8000) == Recognition("")
    fake.answers[b"raw-audio"] = "три балла"
    assert fake.recognize(b"raw-audio", sample_rate_hz=8000).text == "три балла"

    fake.fail_with = ProviderError("speechkit", "500", "internal", retryable=True)
    with pytest.raises(ProviderError):
        fake.recognize(utterance("пять"), sample_rate_hz=8000)


def test_fake_speech_hears_the_words_the_emulators_phone_said_into_a_recording(tmp_path: Path) -> None:
    """The demo's recognizer: the ARI emulator records no voice, it keeps the words in the WAV."""
    from tests.emulator.ari.state import write_audio

    said, silent = tmp_path / "said.wav", tmp_path / "silent.wav"
    write_audio(said, "wav", 1.5, "оценка четыре")
    write_audio(silent, "wav", 1.5)

    fake = FakeSpeech()
    assert fake.recognize(said.read_bytes(), sample_rate_hz=8000) == Recognition("оценка четыре", 0.9)
    assert fake.recognize(silent.read_bytes(), sample_rate_hz=8000) == Recognition("")
    assert wav_comment(said.read_bytes()) == "оценка четыре" and wav_comment(b"not a wav") == ""


# --- prompt cache ------------------------------------------------------------------------------

def test_prompt_is_synthesised_once_and_resynthesised_when_the_text_changes(tmp_path: Path) -> None:
    fake = FakeSpeech()
    cache = PromptCache(fake, tmp_path / "prompts", provider="fake")
    text = "Здравствуйте! Это УК «Альфа». Оцените выполнение заявки 2026-000123 от 1 до 5."

    first = cache.get(text)
    again = cache.get(text)
    after_restart = PromptCache(fake, tmp_path / "prompts", provider="fake").get(text)

    assert first == again == after_restart
    assert fake.calls == [("synthesize", text)]
    assert first.name == prompt_key("fake", None, text) + ".wav"
    assert first.read_bytes() == fake.synthesize(text)

    changed = cache.get(text.replace("Альфа", "Бета"))
    assert changed != first and changed.exists() and first.exists()
    assert [c for c in fake.calls if c[0] == "synthesize"][-1] == ("synthesize", text.replace("Альфа", "Бета"))
    assert sorted(p.name for p in (tmp_path / "prompts").iterdir()) == sorted([first.name, changed.name])  # no temp files


def test_voice_and_provider_are_part_of_the_key(tmp_path: Path) -> None:
    fake = FakeSpeech()
    a = PromptCache(fake, tmp_path, provider="yandex")
    b = PromptCache(fake, tmp_path, provider="espeak")
    assert len({a.path_for("пять"), a.path_for("пять", "filipp"), b.path_for("пять")}) == 3


def test_sound_uri_is_the_absolute_path_without_extension(tmp_path: Path) -> None:
    cache = PromptCache(FakeSpeech(), tmp_path / "p", provider="fake")
    path = cache.get("пять")
    assert sound_uri(path) == f"sound:{tmp_path / 'p' / path.stem}"
    assert cache.sound("пять") == sound_uri(path)


def test_a_failed_synthesis_leaves_no_file_and_is_retried_next_time(tmp_path: Path) -> None:
    fake = FakeSpeech(fail_with=ProviderError("speechkit", "429", "quota", retryable=True))
    cache = PromptCache(fake, tmp_path, provider="fake")
    with pytest.raises(ProviderError):
        cache.get("пять")
    assert list(tmp_path.iterdir()) == []
    fake.fail_with = None
    assert cache.get("пять").exists()
