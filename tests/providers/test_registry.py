"""Provider choice from the environment (SMS_PROVIDER, SPEECH_PROVIDER, credentials)."""

from __future__ import annotations

from pathlib import Path

import pytest

from openads.config import ConfigError, load_settings
from openads.providers.registry import make_prompt_cache, make_recognizer, make_sms_sender, make_synthesizer
from openads.providers.sms.fake import FakeSms
from openads.providers.sms.smsc import Smsc
from openads.providers.sms.smsru import SmsRu
from openads.providers.speech.espeak import EspeakNg
from openads.providers.speech.fake import FakeSpeech
from openads.providers.speech.yandex import SpeechKit

VARS = ("SMS_PROVIDER", "SMSRU_API_ID", "SMSC_LOGIN", "SMSC_PASSWORD", "SMSC_API_KEY", "SPEECH_PROVIDER",
        "SPEECH_RECOGNIZER", "SPEECHKIT_API_KEY", "SPEECHKIT_IAM_TOKEN", "SPEECHKIT_FOLDER_ID", "OPENADS_PROMPTS_DIR")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENADS_VAR_DIR", str(tmp_path / "var"))


def test_without_configuration_no_sms_espeak_tts_and_keypad_only_rating(tmp_path: Path) -> None:
    settings = load_settings()
    assert make_sms_sender(settings.sms) is None
    assert isinstance(make_synthesizer(settings.speech), EspeakNg)
    assert make_recognizer(settings.speech) is None
    assert make_prompt_cache(settings.speech).directory == tmp_path / "var" / "prompts"


@pytest.mark.parametrize(
    ("env", "cls"),
    [
        ({"SMS_PROVIDER": "smsru", "SMSRU_API_ID": "k"}, SmsRu),
        ({"SMS_PROVIDER": "smsc", "SMSC_LOGIN": "l", "SMSC_PASSWORD": "p"}, Smsc),
        ({"SMS_PROVIDER": "SMSC", "SMSC_API_KEY": "k"}, Smsc),
        ({"SMS_PROVIDER": "fake"}, FakeSms),
    ],
)
def test_sms_provider_is_picked_by_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], cls: type) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert isinstance(make_sms_sender(load_settings().sms), cls)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SMS_PROVIDER": "smsaero"}, "SMS_PROVIDER must be one of smsru, smsc, fake"),
        ({"SMS_PROVIDER": "smsru"}, "SMS_PROVIDER=smsru needs SMSRU_API_ID"),
        ({"SMS_PROVIDER": "smsc", "SMSC_LOGIN": "l"}, "SMS_PROVIDER=smsc needs SMSC_LOGIN and SMSC_PASSWORD"),
        ({"SPEECH_PROVIDER": "yandex"}, "SPEECH_PROVIDER=yandex needs SPEECHKIT_API_KEY"),
        ({"SPEECHKIT_IAM_TOKEN": "t1"}, "SPEECHKIT_IAM_TOKEN needs SPEECHKIT_FOLDER_ID"),
        ({"SPEECH_PROVIDER": "rhvoice"}, "SPEECH_PROVIDER must be one of yandex, espeak, fake"),
        ({"SPEECH_RECOGNIZER": "espeak"}, "SPEECH_RECOGNIZER must be one of yandex, fake"),
        ({"SPEECH_RECOGNIZER": "yandex"}, "SPEECH_RECOGNIZER=yandex needs SPEECHKIT_API_KEY"),
    ],
)
def test_bad_provider_configuration_fails_fast(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_a_speechkit_key_selects_speechkit_for_tts_and_stt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEECHKIT_API_KEY", "AQVN-key")
    speech = load_settings().speech
    assert speech.provider == "yandex"
    tts, stt = make_synthesizer(speech), make_recognizer(speech)
    assert isinstance(tts, SpeechKit) and isinstance(stt, SpeechKit)
    tts.close()
    stt.close()


def test_fake_speech_for_tests_and_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEECH_PROVIDER", "fake")
    speech = load_settings().speech
    assert isinstance(make_synthesizer(speech), FakeSpeech)
    assert isinstance(make_recognizer(speech), FakeSpeech)


def test_espeak_tts_with_the_fake_recognizer_as_the_demo_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEECH_RECOGNIZER", "fake")
    speech = load_settings().speech
    assert (speech.provider, speech.recognizer) == ("espeak", "fake")
    assert isinstance(make_synthesizer(speech), EspeakNg)
    assert isinstance(make_recognizer(speech), FakeSpeech)
