"""Pick provider adapters by configuration (SMS_PROVIDER, SPEECH_PROVIDER; see .env.example).

- `make_sms_sender(settings)` → an SmsSender, or None when SMS is not configured.
- `make_synthesizer(settings)` → a SpeechSynthesizer (SpeechKit, espeak-ng or fake).
- `make_recognizer(settings)` → a SpeechRecognizer (SPEECH_RECOGNIZER, else the provider's own),
  or None: without SpeechKit the robot asks for the rating by keypad only (issue 4).
- `make_prompt_cache(settings)` → the TTS prompt cache over the configured synthesizer.
"""

from __future__ import annotations

from collections.abc import Callable

from models.ports import SmsSender, SpeechRecognizer, SpeechSynthesizer
from openads.config import SmsSettings, SpeechSettings
from openads.providers.sms.fake import FakeSms
from openads.providers.sms.smsc import Smsc
from openads.providers.sms.smsru import SmsRu
from openads.providers.speech.cache import PromptCache
from openads.providers.speech.espeak import EspeakNg
from openads.providers.speech.fake import FakeSpeech
from openads.providers.speech.yandex import SpeechKit

SMS_PROVIDERS: dict[str, Callable[[SmsSettings], SmsSender]] = {
    "smsru": SmsRu,
    "smsc": Smsc,
    "fake": FakeSms,
}

SYNTHESIZERS: dict[str, Callable[[SpeechSettings], SpeechSynthesizer]] = {
    "yandex": SpeechKit,
    "espeak": EspeakNg,
    "fake": FakeSpeech,
}

RECOGNIZERS: dict[str, Callable[[SpeechSettings], SpeechRecognizer]] = {
    "yandex": SpeechKit,
    "fake": FakeSpeech,
}


def make_sms_sender(settings: SmsSettings) -> SmsSender | None:
    if not settings.provider:
        return None
    try:
        factory = SMS_PROVIDERS[settings.provider]
    except KeyError:
        raise ValueError(f"unknown SMS provider {settings.provider!r}; known: {', '.join(SMS_PROVIDERS)}") from None
    return factory(settings)


def make_synthesizer(settings: SpeechSettings) -> SpeechSynthesizer:
    try:
        factory = SYNTHESIZERS[settings.provider]
    except KeyError:
        raise ValueError(f"unknown speech provider {settings.provider!r}; known: {', '.join(SYNTHESIZERS)}") from None
    return factory(settings)


def make_recognizer(settings: SpeechSettings) -> SpeechRecognizer | None:
    factory = RECOGNIZERS.get(settings.recognizer or settings.provider)
    return factory(settings) if factory else None


def make_prompt_cache(settings: SpeechSettings, synthesizer: SpeechSynthesizer | None = None) -> PromptCache:
    return PromptCache(synthesizer or make_synthesizer(settings), settings.prompts_dir, provider=settings.provider)
