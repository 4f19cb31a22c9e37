"""openads.mailer: the exact SMTP conversation and the ProviderError codes."""

from __future__ import annotations

import pytest

from openads.config import SmtpSettings
from openads.mailer import FakeMailer, ProviderError, SmtpMailer, make_mailer
from tests.ops.conftest import SmtpServer, free_port


def settings_for(port: int) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, sender="ads@uk.example", timeout=5)


def test_smtp_mailer_sends_utf8_russian_message_with_exact_envelope(smtp_server: SmtpServer) -> None:
    smtp_server.start()
    message_id = SmtpMailer(settings_for(smtp_server.port)).send(
        "edds@city.example", "Авария: ул. Ленина, д. 10 — заявка № 2026-000001", "Течь ХВС.\nСрок: 30 минут."
    )
    assert len(smtp_server.received) == 1
    got = smtp_server.received[0]
    assert got.mail_from == "ads@uk.example"
    assert got.rcpt_tos == ["edds@city.example"]
    assert got.subject == "Авария: ул. Ленина, д. 10 — заявка № 2026-000001"
    assert got.body == "Течь ХВС.\nСрок: 30 минут.\n"
    msg = got.message
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert msg["Message-ID"] == message_id and message_id.endswith("@uk.example>")
    assert msg["From"] == "ads@uk.example" and msg["To"] == "edds@city.example"
    got.raw.decode("ascii")  # 7-bit safe on the wire: the Russian subject is RFC 2047-encoded


def test_smtp_mailer_turns_a_refused_recipient_into_provider_error_with_smtp_code(smtp_server: SmtpServer) -> None:
    smtp_server.refuse_rcpt = "550 5.1.1 mailbox unavailable"
    smtp_server.start()
    with pytest.raises(ProviderError) as info:
        SmtpMailer(settings_for(smtp_server.port)).send("nobody@city.example", "Тема", "Текст")
    assert info.value.code == "550"
    assert "mailbox unavailable" in info.value.message
    assert smtp_server.received == []


def test_smtp_mailer_reports_connect_when_server_is_down() -> None:
    with pytest.raises(ProviderError) as info:
        SmtpMailer(settings_for(free_port())).send("edds@city.example", "Тема", "Текст")
    assert info.value.code == "connect"


def test_fake_mailer_records_and_fails_on_demand() -> None:
    fake = make_mailer(settings_for(25), "fake")
    assert isinstance(fake, FakeMailer)
    assert fake.send("a@b.example", "Тема", "Текст") == "fake-1"
    fake.fail_with = ProviderError("421", "try later")
    with pytest.raises(ProviderError):
        fake.send("a@b.example", "Тема", "Текст")
    assert [m.recipient for m in fake.sent] == ["a@b.example"]
    with pytest.raises(ValueError):
        make_mailer(settings_for(25), "pigeon")
