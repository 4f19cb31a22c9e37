from tests.emulator.ari.pytest_plugin import ari_emulator, make_ari_emulator  # noqa: F401
