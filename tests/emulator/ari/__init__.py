"""Stateful, spec-checked Asterisk ARI emulator (REST + events WebSocket) for tests and the demo.

See README.md in this folder for the driver API and the `/_emulator/...` HTTP controls.
"""

from .scenario import AriEmulator, LoggedRequest
from .spec import AriSpec, load_spec
from .state import Asterisk, Channel, FakeClock, RealClock, read_transcript

__all__ = [
    "AriEmulator",
    "AriSpec",
    "Asterisk",
    "Channel",
    "FakeClock",
    "LoggedRequest",
    "RealClock",
    "load_spec",
    "read_transcript",
]
