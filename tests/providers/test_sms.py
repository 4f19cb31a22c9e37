"""SMS.ru and SMSC.ru adapters against a local server that checks each request has the real
API's form (path, form fields, auth) and answers like the gateway: accepted, refused, HTTP
errors, timeouts; delivery status queries mapped to `DeliveryStatus`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from models.ports import DeliveryStatus, ProviderError, ProviderMessageId, SmsSender
from openads.config import SmsSettings
from openads.providers.sms.smsc import Smsc
from openads.providers.sms.smsru import SmsRu
from tests.providers.conftest import FakeApi, Reply

TEXT = "Заявка № 2026-000123 выполнена. Оцените работу: ответьте на звонок робота."


@pytest.fixture
def smsru(api: FakeApi) -> Iterator[SmsRu]:
    adapter = SmsRu(SmsSettings(provider="smsru", smsru_api_id="A1B2-C3D4", smsru_url=api.url, timeout=2))
    yield adapter
    adapter.close()


@pytest.fixture
def smsc(api: FakeApi) -> Iterator[Smsc]:
    adapter = Smsc(SmsSettings(provider="smsc", smsc_login="uk-alfa", smsc_password="s3cret", smsc_url=api.url, timeout=2))
    yield adapter
    adapter.close()


# --- SMS.ru ------------------------------------------------------------------------------------

def test_smsru_send_posts_api_id_number_text_json_and_returns_the_sms_id(api: FakeApi, smsru: SmsRu) -> None:
    assert isinstance(smsru, SmsSender)
    api.reply(Reply(200, {
        "status": "OK", "status_code": 100,
        "sms": {"79161234567": {"status": "OK", "status_code": 100, "sms_id": "000000-10000001"}},
        "balance": 4122.56,
    }))

    message_id = smsru.send("+79161234567", TEXT)

    assert message_id == "000000-10000001"
    req = api.last
    assert (req.method, req.path, req.params) == ("POST", "/sms/send", {})
    assert req.form == {"api_id": "A1B2-C3D4", "to": "79161234567", "msg": TEXT, "json": "1"}


def test_smsru_send_with_a_sender_name_passes_from(api: FakeApi) -> None:
    adapter = SmsRu(SmsSettings(provider="smsru", smsru_api_id="k", smsru_url=api.url, sender="UK-ALFA"))
    api.reply(Reply(200, {"status": "OK", "status_code": 100,
                          "sms": {"79161234567": {"status": "OK", "status_code": 100, "sms_id": "1-2"}}}))
    try:
        adapter.send("+79161234567", "тест")
    finally:
        adapter.close()
    assert api.last.form["from"] == "UK-ALFA"


@pytest.mark.parametrize(
    ("answer", "code", "retryable"),
    [
        ({"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"}, "200", False),
        ({"status": "ERROR", "status_code": 220, "status_text": "Сервис временно недоступен"}, "220", True),
        ({"status": "ERROR", "status_code": 201, "status_text": "Не хватает средств на лицевом счету"}, "201", True),
        ({"status": "OK", "status_code": 100, "sms": {"79161234567": {
            "status": "ERROR", "status_code": 207,
            "status_text": "На этот номер нельзя отправлять сообщения"}}}, "207", False),
    ],
)
def test_smsru_refusals_become_provider_errors_with_the_gateway_code(
    api: FakeApi, smsru: SmsRu, answer: dict[str, object], code: str, retryable: bool
) -> None:
    api.reply(Reply(200, answer))
    with pytest.raises(ProviderError) as info:
        smsru.send("+79161234567", TEXT)
    assert (info.value.provider, info.value.code, info.value.retryable) == ("smsru", code, retryable)


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (502, True), (429, True), (404, False)])
def test_smsru_http_errors(api: FakeApi, smsru: SmsRu, status: int, retryable: bool) -> None:
    api.reply(Reply(status, "<html>error</html>"))
    with pytest.raises(ProviderError) as info:
        smsru.send("+79161234567", TEXT)
    assert (info.value.code, info.value.retryable) == (str(status), retryable)


def test_smsru_non_json_answer_is_a_retryable_bad_response(api: FakeApi, smsru: SmsRu) -> None:
    api.reply(Reply(200, "100\n000000-10000000\nbalance=4122.56"))
    with pytest.raises(ProviderError) as info:
        smsru.send("+79161234567", TEXT)
    assert (info.value.code, info.value.retryable) == ("bad-response", True)


def test_smsru_timeout_is_retryable(api: FakeApi) -> None:
    adapter = SmsRu(SmsSettings(provider="smsru", smsru_api_id="k", smsru_url=api.url, timeout=0.3))
    api.reply(Reply(hang=True))
    try:
        with pytest.raises(ProviderError) as info:
            adapter.send("+79161234567", TEXT)
    finally:
        adapter.close()
    assert (info.value.provider, info.value.code, info.value.retryable) == ("smsru", "timeout", True)


def test_a_number_that_is_not_e164_is_refused_before_any_request(api: FakeApi, smsru: SmsRu, smsc: Smsc) -> None:
    for adapter in (smsru, smsc):
        with pytest.raises(ProviderError) as info:
            adapter.send("8 (916) 123-45-67", TEXT)
        assert (info.value.code, info.value.retryable) == ("bad-number", False)
    assert api.requests == []


@pytest.mark.parametrize(
    ("status_code", "expected"),
    [(100, DeliveryStatus.QUEUED), (101, DeliveryStatus.SENT), (102, DeliveryStatus.SENT),
     (103, DeliveryStatus.DELIVERED), (104, DeliveryStatus.FAILED), (108, DeliveryStatus.FAILED),
     (150, DeliveryStatus.UNKNOWN)],
)
def test_smsru_status_query_and_mapping(
    api: FakeApi, smsru: SmsRu, status_code: int, expected: DeliveryStatus
) -> None:
    api.reply(Reply(200, {"status": "OK", "status_code": 100, "sms": {
        "000000-10000001": {"status": "OK", "status_code": status_code, "cost": 0.5, "status_text": "..."}}}))

    assert smsru.status(ProviderMessageId("000000-10000001")) == expected
    assert (api.last.method, api.last.path) == ("POST", "/sms/status")
    assert api.last.form == {"api_id": "A1B2-C3D4", "sms_id": "000000-10000001", "json": "1"}


def test_smsru_status_of_an_unknown_id_is_unknown(api: FakeApi, smsru: SmsRu) -> None:
    api.reply(Reply(200, {"status": "OK", "status_code": 100, "sms": {
        "nope": {"status": "ERROR", "status_code": -1, "status_text": "Сообщение не найдено"}}}))
    assert smsru.status(ProviderMessageId("nope")) == DeliveryStatus.UNKNOWN


# --- SMSC.ru -----------------------------------------------------------------------------------

def test_smsc_send_posts_login_psw_phones_mes_fmt3_utf8_and_returns_id_with_phone(api: FakeApi, smsc: Smsc) -> None:
    assert isinstance(smsc, SmsSender)
    api.reply(Reply(200, {"id": 12345, "cnt": 2}))

    message_id = smsc.send("+79161234567", TEXT)

    assert message_id == "12345:79161234567"
    req = api.last
    assert (req.method, req.path, req.params) == ("POST", "/sys/send.php", {})
    assert req.form == {
        "login": "uk-alfa", "psw": "s3cret", "phones": "79161234567", "mes": TEXT, "fmt": "3", "charset": "utf-8",
    }


def test_smsc_api_key_replaces_login_and_password(api: FakeApi) -> None:
    adapter = Smsc(SmsSettings(provider="smsc", smsc_api_key="KEY123", smsc_url=api.url, sender="UK-ALFA"))
    api.reply(Reply(200, {"id": 7, "cnt": 1}))
    try:
        adapter.send("+79161234567", "тест")
    finally:
        adapter.close()
    assert api.last.form == {
        "apikey": "KEY123", "phones": "79161234567", "mes": "тест", "sender": "UK-ALFA", "fmt": "3", "charset": "utf-8",
    }


@pytest.mark.parametrize(
    ("answer", "code", "retryable"),
    [
        ({"error": "authorise error", "error_code": 2}, "2", False),
        ({"error": "invalid number", "error_code": 7, "id": 12}, "7", False),
        ({"error": "no money", "error_code": 3, "id": 12}, "3", True),
        ({"error": "duplicate request, wait a minute", "error_code": 9}, "9", True),
    ],
)
def test_smsc_refusals_become_provider_errors_with_the_gateway_code(
    api: FakeApi, smsc: Smsc, answer: dict[str, object], code: str, retryable: bool
) -> None:
    api.reply(Reply(200, answer))
    with pytest.raises(ProviderError) as info:
        smsc.send("+79161234567", TEXT)
    assert (info.value.provider, info.value.code, info.value.retryable) == ("smsc", code, retryable)


def test_smsc_http_500_and_timeout_are_retryable(api: FakeApi) -> None:
    adapter = Smsc(SmsSettings(provider="smsc", smsc_login="l", smsc_password="p", smsc_url=api.url, timeout=0.3))
    api.reply(Reply(500, "Internal Server Error"), Reply(hang=True))
    try:
        with pytest.raises(ProviderError) as first:
            adapter.send("+79161234567", TEXT)
        with pytest.raises(ProviderError) as second:
            adapter.send("+79161234567", TEXT)
    finally:
        adapter.close()
    assert (first.value.code, first.value.retryable) == ("500", True)
    assert (second.value.code, second.value.retryable) == ("timeout", True)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(-1, DeliveryStatus.QUEUED), (0, DeliveryStatus.SENT), (1, DeliveryStatus.DELIVERED),
     (3, DeliveryStatus.FAILED), (20, DeliveryStatus.FAILED), (22, DeliveryStatus.FAILED),
     (-3, DeliveryStatus.UNKNOWN)],
)
def test_smsc_status_query_sends_phone_and_id(api: FakeApi, smsc: Smsc, status: int, expected: DeliveryStatus) -> None:
    api.reply(Reply(200, {"status": status, "last_date": "26.11.2026 02:10:00", "last_timestamp": 1795745400, "err": 0}))

    assert smsc.status(ProviderMessageId("12345:79161234567")) == expected
    assert (api.last.method, api.last.path) == ("POST", "/sys/status.php")
    assert api.last.form == {
        "login": "uk-alfa", "psw": "s3cret", "phone": "79161234567", "id": "12345", "fmt": "3", "charset": "utf-8",
    }


def test_smsc_status_error_answer(api: FakeApi, smsc: Smsc) -> None:
    api.reply(Reply(200, {"error": "authorise error", "error_code": 2}))
    with pytest.raises(ProviderError) as info:
        smsc.status(ProviderMessageId("12345:79161234567"))
    assert (info.value.code, info.value.retryable) == ("2", False)
