"""The ARI emulator fixtures (`ari_emulator`, `make_ari_emulator`) for the call simulator page's tests."""

from tests.emulator.ari.pytest_plugin import ari_emulator, make_ari_emulator  # noqa: F401
