"""Speech providers: Yandex SpeechKit (HTTP API v1), espeak-ng (offline TTS), fake; the prompt cache."""
