"""Issue 12's acceptance on the real Asterisk: from an empty database, the commands of
docs/install.md (section 6, read from the file itself) and then only the panel, as a person in a
browser would use it, set up an organization with its hotline, a dispatcher, the dispatcher's
phone and a category; a resident's call to the hotline then rings that phone, and the answered
call is in the journal with the organization and the dispatcher.

Nothing here writes settings to the database or uses the demo: the only direct write is the
harness's CDR cursor (`skip_earlier_cdrs`: the test PBX keeps its CDR table across runs).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select

from models.call import CallOutcome
from models.organization import Organization, User
from models.ticket import Category
from tests.pbx.conftest import Phones
from tests.pbx.phones import free_port
from tests.pbx.stack import (
    ROOT,
    Panel,
    Stack,
    fresh_database_url,
    paused_stacks,
    pbx_env,
    skip_earlier_cdrs,
    wait_until,
)

ADMIN_PASSWORD = "Zvezda-Severa-2026"  # what the administrator types when `openads user add` asks
RESIDENT = "+74951110001"  # the trunk's first test account (tests/pbx/conftest.py `operator`)
SECTION = "## 6. База и первый администратор"


def install_commands() -> list[list[str]]:
    """The `openads ...` lines of docs/install.md's section 6 (database and first administrator)."""
    text = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line) for line in block.splitlines() if line.startswith("openads ")]
    assert ["openads", "db", "upgrade"] in [c[:3] for c in commands], block
    assert any(c[1:3] == ["user", "add"] and "admin" in c for c in commands), block
    return commands


@pytest.fixture(scope="module")
def fresh() -> Iterator[Stack]:
    """OpenADS on the test PBX with an empty database of its own (migrations only); any other
    stack's processes are paused meanwhile."""
    subprocess.run([str(ROOT / "pbx" / "run.sh"), "start"], check=True)
    env = pbx_env()
    home = Path(env["OPENADS_PBX_HOME"]) / "openads-install"
    home.mkdir(parents=True, exist_ok=True)
    with paused_stacks():
        st = Stack(pbx=env, home=home, database_url=fresh_database_url(home, "openads_pbx_install"),
                   web_port=free_port())
        try:
            yield st
        finally:
            st.stop_all()
            st.db.dispose()


def enrol_second_factor(panel: Panel) -> None:
    """The administrator is sent to enrol TOTP (OPENADS_REQUIRE_2FA, on by default): the secret
    from the page into an authenticator app, its code back."""
    client = panel.client
    page = client.get("/")
    assert page.status_code == 302 and page.headers["Location"].endswith("/account/two-factor"), page.text[:300]
    started = panel.submit("/account/two-factor", "/account/two-factor/start")
    assert started.status_code == 302, started.text[:300]
    page_text = client.get("/account/two-factor").text
    secret = re.search(r'id="totp-secret">([^<]+)<', page_text).group(1).replace(" ", "")  # type: ignore[union-attr]
    done = panel.submit("/account/two-factor", "/account/two-factor/confirm", otp=pyotp.TOTP(secret).now())
    assert done.status_code == 200 and "Двухфакторный вход включён" in done.text, done.text[:500]
    assert client.get("/").status_code == 200


def created_id(response: object, pattern: str) -> int:
    location = response.headers.get("Location", "")  # type: ignore[attr-defined]
    found = re.search(pattern, location)
    assert response.status_code == 302 and found, (response.status_code, location,  # type: ignore[attr-defined]
                                                   response.text[:800])  # type: ignore[attr-defined]
    return int(found.group(1))


def test_an_organization_set_up_from_the_panel_alone_rings_its_dispatcher(fresh: Stack, tmp_path: Path) -> None:
    st = fresh
    # --- docs/install.md, section 6: the database and the first administrator --------------------------------
    for command in install_commands():
        done = st.openads(*command[1:], check=False, OPENADS_PASSWORD=ADMIN_PASSWORD)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    skip_earlier_cdrs(st)
    st.start_all()
    admin_login = next(c[c.index("--login") + 1] for c in install_commands() if c[1:3] == ["user", "add"])

    # --- the panel, as the administrator ----------------------------------------------------------------------
    admin = st.panel(admin_login, ADMIN_PASSWORD)
    enrol_second_factor(admin)
    assert 'id="org-new"' in admin.client.get("/admin").text
    did = st.pbx["OPENADS_PBX_DID"]  # what the operator's trunk sends: 74950000000
    hotline = f"+7 ({did[1:4]}) {did[4:7]}-{did[7:9]}-{did[9:]}"
    org_id = created_id(admin.submit(
        "/admin/organizations/new", "/admin/organizations/new", name="УК «Северная»", short_name="Северная",
        timezone="Europe/Moscow", hotlines=hotline, municipality_emails="edds@sever.example",
        call_window_start="09:00", call_window_end="20:00", recording_retention_days="90", around_the_clock="1"),
        r"/admin/organizations/(\d+)$")

    user_page = admin.submit("/admin/users/new", "/admin/users/new", login="sever201",
                             full_name="Лебедева Ирина Олеговна", email="", phone="", role="dispatcher",
                             organization_ids=str(org_id))
    assert user_page.status_code == 200, user_page.text[:800]
    temporary = re.search(r'id="secret">([^<]+)<', user_page.text).group(1)  # type: ignore[union-attr]

    telephony = f"/admin/organizations/{org_id}/telephony"
    saved = admin.submit(telephony, telephony, wait_limit_seconds="25", ring_strategy="ringall", ring_retry_seconds="",
                         moh_class="", voicemail_enabled="1", auto_callback_delay_seconds="0",
                         greeting_text="", voicemail_offer_text="")
    assert saved.status_code == 302, saved.text[:800]
    options = re.findall(r'<option value="(\d+)"[^>]*>([^<]+)</option>', admin.client.get(telephony).text)
    [dispatcher_id] = [int(v) for v, title in options if "(sever201)" in title]
    added = admin.submit(telephony, f"{telephony}/phones", endpoint="PJSIP/201", user_id=str(dispatcher_id),
                         rings="1", is_current="1")
    assert added.status_code == 302, added.text[:800]
    assert "PJSIP/201" in admin.client.get(telephony).text

    categories = f"/admin/organizations/{org_id}/categories"
    made = admin.submit(f"{categories}/new", f"{categories}/new", name="Не работает домофон", code="",
                        resolve_minutes="1440", localize_minutes="", window_start="", window_end="")
    assert made.status_code == 302, made.text[:800]
    assert "Не работает домофон" in admin.client.get(categories).text
    admin.close()

    # What the panel wrote (read only): the organization, its number, the dispatcher, the category.
    with st.read() as s:
        org = s.get(Organization, org_id)
        assert org is not None and org.hotlines == [f"+{did}"]
        assert s.get(User, dispatcher_id).organization_ids == [org_id]
        category = s.scalar(select(Category).where(Category.organization_id == org_id,
                                                   Category.name == "Не работает домофон"))
        assert category is not None and category.resolve_minutes == 1440

    # --- a resident calls the hotline: the dispatcher's phone rings; the one nobody set up does not -----------
    phones = Phones(st, tmp_path / "phones")
    try:
        d201, d202 = phones.dispatcher("201"), phones.dispatcher("202")
        resident = phones.resident(RESIDENT)
        resident.dial(phones.hotline_uri())
        d201.wait("CALL_INCOMING", 20)
        call = wait_until("the call in the journal", lambda: next(
            (c for c in st.calls() if c.phone == RESIDENT), None), 10)
        assert call.organization_id == org_id
        d201.answer()
        d201.wait("CALL_ESTABLISHED", 5)
        resident.wait("CALL_ESTABLISHED", 5)
        assert not d202.saw("CALL_INCOMING")  # PJSIP/202 is registered but is no phone of the organization
        # They talk: the journal has the answer, and Asterisk bridges the resident with PJSIP/201.
        wait_until("the answer in the journal", lambda: next(
            (c for c in st.calls() if c.id == call.id and c.answered_at is not None), None), 10)
        wait_until("resident and dispatcher bridged", lambda: any(
            call.channel_id in b["channels"] and len(b["channels"]) >= 2 for b in st.bridges()), 10)
        resident.hangup()
        d201.wait("CALL_CLOSED", 5)
        done = st.ended_call(call.id)
        assert (done.organization_id, done.outcome, done.answered_by_id, done.dispatcher_endpoint) == (
            org_id, CallOutcome.ANSWERED, dispatcher_id, "PJSIP/201")
    finally:
        phones.stop()
        for ch in st.channels():
            st.ari("DELETE", f"/channels/{ch['id']}")

    # --- the dispatcher's first login (the temporary password, then their own): the call in their journal ----
    dispatcher = st.panel("sever201", temporary)
    own = dispatcher.submit("/account/password", "/account/password", current_password=temporary,
                            new_password="Lebedeva-Sever-201", repeat_password="Lebedeva-Sever-201")
    assert own.status_code == 302, own.text[:800]
    journal = dispatcher.client.get("/calls")
    assert journal.status_code == 200
    row = journal.text.split(f'id="call-row-{call.id}"', 1)[1].split("</tr>", 1)[0]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    assert ">Северная<" in cells[1] and "Лебедева Ирина Олеговна" in cells[6] and "Отвечен" in cells[8], row
    assert (cells[3], cells[4]) == ("+7 495 111-00-01", "+7 495 000-00-00"), row
    dispatcher.close()
