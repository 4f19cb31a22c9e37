"""What `openads ari` tells the other processes about the telephony: its heartbeat (connections,
trunk, phones) and the test calls an administrator asks for (decision 0029).

`openads ari` runs in its own process, often on the Asterisk machine; the panel's status page must
work without Redis. So the ARI app writes one `ari_status` row every few seconds, and a test call
is a `test_calls` row the panel writes and the ARI app dials (as a panel callback is).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, OrgOwned, UTCDateTime, utcnow


class AriStatus(Base):
    """The heartbeat of one `openads ari` (one row per ARI application name): written every
    `ARI_STATUS_SECONDS` (5 s). Not an organization's: the web shows each organization the states
    of its own phones only. `endpoints`: {"PJSIP/201": "free" | "ringing" | "busy" | "offline"}
    for every endpoint Asterisk knows; `trunk`: {"endpoint", "state", "registration",
    "registration_at", "detail"}."""

    __tablename__ = "ari_status"

    app: Mapped[str] = mapped_column(String(80), primary_key=True)
    host: Mapped[str] = mapped_column(String(200), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    interval_seconds: Mapped[int] = mapped_column(Integer, default=5)
    ari_connected: Mapped[bool] = mapped_column(Boolean, default=False)
    ari_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when `ari_connected` last changed
    ari_error: Mapped[str | None] = mapped_column(Text)
    ami_configured: Mapped[bool] = mapped_column(Boolean, default=False)
    ami_connected: Mapped[bool] = mapped_column(Boolean, default=False)
    ami_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    trunk: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    endpoints: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class TestCallStatus(enum.StrEnum):
    PENDING = "pending"  # written by the panel, not yet taken by `openads ari`
    RINGING = "ringing"  # the phone rings
    ANSWERED = "answered"  # picked up: the prompt played
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"  # could not ring (offline, unknown endpoint), or `openads ari` never took it

    __test__ = False  # not a pytest test class, despite its name


TEST_CALL_TITLES_RU: dict[TestCallStatus, str] = {
    TestCallStatus.PENDING: "ждёт openads ari",
    TestCallStatus.RINGING: "звонит",
    TestCallStatus.ANSWERED: "ответили, подсказка прозвучала",
    TestCallStatus.NO_ANSWER: "нет ответа",
    TestCallStatus.BUSY: "занято или отклонён",
    TestCallStatus.FAILED: "не удалось позвонить",
}
TEST_CALL_OPEN = frozenset({TestCallStatus.PENDING, TestCallStatus.RINGING})


class TestCall(OrgOwned, Base):
    """A test call to a dispatcher's phone: rings it and plays the test prompt when answered."""

    __tablename__ = "test_calls"
    __table_args__ = (Index("test_calls__idx__status_requested", "status", "requested_at"),)
    __test__ = False  # not a pytest test class, despite its name

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(80))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[TestCallStatus] = mapped_column(
        Enum(TestCallStatus, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e]),
        default=TestCallStatus.PENDING)
    channel_id: Mapped[str | None] = mapped_column(String(64))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[str] = mapped_column(String(200), default="")
