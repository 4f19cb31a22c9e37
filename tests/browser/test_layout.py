"""Every page, every role, at the screens dispatchers use (1366×768 first, 1920×1080, a 390 px phone):
no sideways scrolling of the page, the console's journal shows ten rows on the first screen, house
numbers are never cut, every menu item can be reached. Screenshots go to $OPENADS_SCREENSHOTS
(CI keeps var/screens) or the test's tmp dir."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from models.organization import Role
from tests import factories as f
from tests.browser.conftest import browser_login

pytestmark = pytest.mark.browser

VIEWPORTS = {"1366x768": (1366, 768), "1920x1080": (1920, 1080), "390x844": (390, 844)}
STREETS = ["ул. Академика Обручева", "Ленинградский проспект", "ул. Мира", "ул. Новослободская",
           "Варшавское шоссе", "ул. Строителей"]

# Pages that only answer POST/export files, or need state the walk does not make.
SKIP_ENDPOINTS = {"panel.export_journal", "panel.logout", "panel.events_stream", "panel.console_zone"}

JS_PAGE_STATE = """() => {
  const doc = document.scrollingElement;
  const cut = [];
  for (const td of document.querySelectorAll('td.c-addr')) {
    const r = td.getBoundingClientRect();
    if (!r.width || !r.height || r.bottom < 0 || r.top > innerHeight) continue;
    if (td.scrollWidth > td.clientWidth + 1) cut.push(td.innerText);
  }
  return {scrollWidth: doc.scrollWidth, innerWidth: innerWidth, cut: cut};
}"""

# Overlaps: every pair of visible interactive or text elements, neither inside the other, whose boxes
# (each line box of a wrapped link; clipped to the scroll boxes they sit in) share more than 1 px both
# ways. Closed menus and panels are not rendered, so their overlays (which open over the page by
# design) are not compared; hidden elements neither. Also a link or button cut sideways by the box it
# sits in (the console's zones scroll, and cut what does not wrap).
JS_OVERLAPS = r"""() => {
  const SEL = 'a, button, input:not([type=hidden]), select, textarea, label, summary, th, td, h1, h2, h3, h4, legend, p, dt, dd, .chip, .mark, kbd';
  const TOL = 1;
  const clipOf = el => {
    // The box an element can be seen in: its ancestors that clip (scroll boxes, overflow hidden).
    let c = {l: -1e9, t: -1e9, r: 1e9, b: 1e9};
    for (let e = el.parentElement; e && e !== document.body; e = e.parentElement) {
      const st = getComputedStyle(e);
      if (st.overflowX !== 'visible' || st.overflowY !== 'visible') {
        const r = e.getBoundingClientRect();
        c = {l: Math.max(c.l, r.left), t: Math.max(c.t, r.top), r: Math.min(c.r, r.right), b: Math.min(c.b, r.bottom)};
      }
    }
    return c;
  };
  const name = el => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += '#' + el.id;
    else if (el.classList.length) s += '.' + [...el.classList].join('.');
    const text = (el.innerText || el.value || el.getAttribute('aria-label') || '').trim().replace(/\s+/g, ' ').slice(0, 25);
    return text ? `${s} «${text}»` : s;
  };
  const items = [], cut = [];
  for (const el of document.querySelectorAll(SEL)) {
    // checkVisibility: not rendered also inside a closed <details> (its content is skipped, yet has boxes)
    if (el.closest('.visually-hidden, .default-submit') || !el.checkVisibility({visibilityProperty: true})) continue;
    if (getComputedStyle(el).display === 'contents') continue;
    const c = clipOf(el);
    const rects = [];
    // a link or button cut sideways by the box it sits in (a table's own sideways scroll box is by design)
    if (el.matches('a, button, summary, input, select') && !el.closest('.scroll-x')) {
      const r = el.getBoundingClientRect();
      if (r.width && (r.left < c.l - TOL || r.right > c.r + TOL)) cut.push(name(el));
    }
    for (const r of el.getClientRects()) {
      const q = {l: Math.max(r.left, c.l), t: Math.max(r.top, c.t), r: Math.min(r.right, c.r), b: Math.min(r.bottom, c.b)};
      if (q.r - q.l > TOL && q.b - q.t > TOL) rects.push(q);
    }
    if (rects.length) items.push({el, rects});
  }
  const found = cut.map(n => `${n} is cut`);
  for (let i = 0; i < items.length; i++) {
    for (let j = i + 1; j < items.length; j++) {
      const a = items[i], b = items[j];
      if (a.el.contains(b.el) || b.el.contains(a.el)) continue;
      let hit = false;
      for (const p of a.rects) {
        for (const q of b.rects) {
          const w = Math.min(p.r, q.r) - Math.max(p.l, q.l), h = Math.min(p.b, q.b) - Math.max(p.t, q.t);
          if (w > TOL && h > TOL) { hit = true; break; }
        }
        if (hit) break;
      }
      if (hit) found.push(`${name(a.el)} × ${name(b.el)}`);
      if (found.length >= 20) return found;
    }
  }
  return found;
}"""

JS_TEXTS = r"""() => {
  // Everything a person can read: the title, the text (closed menus and panels opened first),
  // options, and the attributes a browser shows or reads out.
  // Left out: data quoted verbatim (translate="no": a user agent, a login) and what HTML marks as
  // computer text (<code> a command, <kbd> a key cap, <samp>).
  // A <select> is read through its options (its innerText would list them all, quoted or not).
  const opened = [], quoted = [...document.querySelectorAll('[translate="no"], code, kbd, samp, select')];
  for (const d of document.querySelectorAll('details:not([open])')) { d.open = true; opened.push(d); }
  for (const el of quoted) el.style.display = 'none';
  const out = [document.title, document.body.innerText];
  for (const el of quoted) el.style.removeProperty('display');
  for (const o of document.querySelectorAll('option')) if (!o.closest('[translate="no"]')) out.push(o.text);
  for (const el of document.querySelectorAll('[placeholder], [title], [aria-label], [alt], input[type=submit], input[type=button], input[type=reset]')) {
    if (el.closest('[translate="no"]')) continue;
    for (const a of ['placeholder', 'title', 'aria-label', 'alt']) if (el.hasAttribute(a)) out.push(el.getAttribute(a));
    if (el.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(el.type)) out.push(el.value);
  }
  for (const d of opened) d.open = false;
  return out.join('\n');
}"""


# Latin words a Russian dispatcher may read: proper names and the identifiers of the trade, each
# shown as such (a product, a protocol, a standard). Anything else in Latin letters is an English
# leftover. Kept short on purpose: a new entry needs a reason here.
ALLOWED_WORDS = {
    "OpenADS",  # the product's name
    "Asterisk", "SIP", "PJSIP", "ARI", "AMI", "AGI", "FastAGI",  # the PBX and its interfaces (telephony pages)
    "API", "ID", "URL", "TOTP", "QR", "SMS", "UTC", "Excel", "CSV",  # standards and file formats named as such
    "SpeechKit",  # the speech synthesis service (a product's name)
}
# Not words at all: e-mail addresses, URLs and paths, file names and extensions, template
# placeholders ({number}), identifiers joined by a slash (PJSIP/201, Europe/Moscow), tokens with a
# digit or an underscore (logins, E.164, UTF-8, codes), single letters (keyboard keys «m», «p»).
# Text a page quotes verbatim as data (a browser's user agent, a login) is marked translate="no", and
# commands and key caps are in <code>/<kbd>: JS_TEXTS does not read them.
NOT_WORDS = re.compile(
    r"\S+@\S+\.\w+|https?://\S+|(?<![\w/])/[\w./{}<>-]+|[\w.-]*\.(?:xlsx|csv|wav|svg|ico|json|txt|pdf|conf)\b"
    r"|\{\w+\}|\b[A-Za-z]\w*(?:/[\w.-]+)+|\b[A-Za-z0-9_.-]*[\d_][A-Za-z0-9_.-]*")
EMOJI = re.compile("[\U0001F000-\U0001FAFF\uFE0F]")
LATIN_WORD = re.compile(r"(?<![^\W\d_])[A-Za-z]{2,}(?![^\W\d_])")


def english_words(text: str) -> set[str]:
    """The Latin words of `text` that are neither allowed names nor identifiers."""
    return {w for w in LATIN_WORD.findall(NOT_WORDS.sub(" ", text)) if w not in ALLOWED_WORDS}


def test_english_word_check_catches_leftovers_and_spares_names() -> None:
    assert english_words("Статус: sent (demo history)") == {"sent", "demo", "history"}
    assert english_words("Категория не найдена. Submit") == {"Submit"}
    assert not english_words("OpenADS на Asterisk: PJSIP/201, admin_a, +79161234567, E.164, ops@example.ru, "
                             "https://ads.example/api/v1, журнал.xlsx, клавиша m, корп. Б")


def _pages(app: Any, role: Role, cards: list[str]) -> list[str]:
    """Every GET page of the panel without URL arguments, plus the cards of what _seed made."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.arguments or rule.endpoint in SKIP_ENDPOINTS:
            continue
        if not rule.endpoint.startswith(("panel.", "simulator.")) or rule.rule.startswith(("/api", "/static")):
            continue
        if any(part in rule.rule for part in ("/row", "/stream", "/zone", "/export", ".xlsx", ".json", "/lookup",
                                              "/search")):
            continue
        urls.append(rule.rule)
    return sorted(set(urls + cards))


def _seed_recording_logs(s: Any, org: Any, call: Any, player: Any) -> None:
    """A play in the access log and a purge in the purge log (the «Записи разговоров» report)."""
    from datetime import timedelta

    from models.base import utcnow
    from models.recording import PurgeRule, Recording, RecordingAccess, RecordingAction, RecordingPurge

    rec = Recording(organization_id=org.id, call_id=call.id, path=f"{org.id}/2026/01/{call.id}.wav", size_bytes=48000,
                    created_at=utcnow() - timedelta(days=100), deleted_at=utcnow(), deleted_reason="срок хранения 90 дн.")
    s.add(rec)
    s.flush()
    s.add(RecordingAccess(organization_id=org.id, recording_id=rec.id, user_id=player.id, action=RecordingAction.PLAY,
                          at=utcnow() - timedelta(days=2), ip="192.0.2.10"))
    s.add(RecordingPurge(organization_id=org.id, recording_id=rec.id, call_id=call.id, path=rec.path, size_bytes=48000,
                         rule=PurgeRule.RETENTION, retention_days=90, started_at=utcnow(), purged_at=utcnow(),
                         note="файл уже отсутствовал"))


def _seed(db: Any, world: Any) -> tuple[Any, Any, int, list[str]]:
    from datetime import timedelta

    from models.base import utcnow

    with db.write() as s:
        org = s.merge(world.org_a)
        cats = list(world.cats_a.values())
        admin = f.make_user(s, [org], Role.ADMIN, login="admin_a", full_name="Адамов Адам Адамович")
        inspector = f.make_user(s, [org], Role.INSPECTOR, login="inspector_a", full_name="Инспекторова Инна Ивановна")
        houses = [f.make_house(s, org, address=f"г. Москва, {street}, д. {119 + i}, корп. 2")
                  for i, street in enumerate(STREETS)]
        first = None
        for n in range(24):
            house = houses[n % len(houses)]
            t = f.make_ticket(s, org, cats[n % len(cats)], house_id=house.id, reporter_name="Иванова Мария Петровна",
                              reporter_phone="+79161234567", description="Течь из-под ванны, заливает соседей снизу",
                              now=utcnow() - timedelta(minutes=10 * n), executor_id=world.executor_a.id)
            first = first or t.id
        # Interruptions of this month (the «Перерывы в подаче услуг» report): one over the limit, one going on.
        f.make_incident(s, houses[0], title="Прорыв ГВС", utility="hot_water", started_at=utcnow() - timedelta(hours=7),
                        liquidated_at=utcnow() - timedelta(hours=1))
        f.make_incident(s, houses[1], title="Нет электричества в подъезде 2", utility="electricity",
                        started_at=utcnow() - timedelta(minutes=40))
        missed = f.make_missed_call(s, org, "+79165550000", waited_seconds=30)
        call = f.make_inbound_call(s, org, "+79165550001")
        _seed_recording_logs(s, org, call, world.dispatcher_a)
        cards = [f"/tickets/{first}", f"/missed-calls/{missed.id}", f"/calls/{call.id}",
                 f"/admin/organizations/{org.id}", f"/admin/organizations/{org.id}/categories",
                 f"/admin/categories/{cats[0].id}", f"/admin/organizations/{org.id}/telephony",
                 f"/admin/organizations/{org.id}/telephony/status", f"/admin/users/{world.dispatcher_a.id}"]
    return admin, inspector, first, cards


# One test per role (about 40 pages × 3 screens each, screenshotted and checked), so that the suite's
# processes share them.
@pytest.mark.timeout(300)
@pytest.mark.parametrize("role", ["admin", "manager", "dispatcher", "executor", "inspector"])
def test_every_page_fits_every_screen_for_every_role(
    live_server: Any, chromium: Any, db: Any, world: Any, screenshots_dir: Path, role: str
) -> None:
    admin, inspector, _ticket_id, cards = _seed(db, world)
    user = {"admin": admin, "manager": world.manager_a, "dispatcher": world.dispatcher_a,
            "executor": world.executor_a, "inspector": inspector}[role]
    problems: list[str] = []
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    try:
        page = browser_login(ctx, live_server.url, user.login)
        urls = _pages(live_server.app, user.role, cards)
        for url in urls:
            for vp_name, (w, h) in VIEWPORTS.items():
                page.set_viewport_size({"width": w, "height": h})
                resp = page.goto(live_server.url + url, wait_until="domcontentloaded")
                if resp is None or resp.status in (403, 404):
                    break  # not this role's page
                state = page.evaluate(JS_PAGE_STATE)
                name = f"{role}-{vp_name}-{url.strip('/').replace('/', '_') or 'console'}.png"
                page.screenshot(path=str(screenshots_dir / name))
                where = f"{role} {vp_name} {url}"
                if resp.status >= 500:
                    problems.append(f"{where}: HTTP {resp.status}")
                if state["scrollWidth"] > state["innerWidth"]:
                    problems.append(f"{where}: page is {state['scrollWidth']} px wide")
                if state["cut"]:
                    problems.append(f"{where}: addresses cut: {state['cut'][:3]}")
                overlaps = page.evaluate(JS_OVERLAPS)
                if overlaps:
                    problems.append(f"{where}: elements overlap: {overlaps[:5]}")
                # the words: the desktop markup is the same at both sizes, the phone's differs
                text = page.evaluate(JS_TEXTS) if vp_name != "1920x1080" else ""
                if EMOJI.search(text):  # no emoji font on many desktops (and none in headless Chromium)
                    problems.append(f"{where}: emoji: {EMOJI.findall(text)[:5]}")
                english = english_words(text)
                if english:
                    seen = [re.search(rf".{{0,30}}\b{w}\b.{{0,30}}", text) for w in sorted(english)[:8]]
                    problems.append(f"{where}: English words: {[m.group(0) if m else '' for m in seen]}")
                if url == "/":
                    problems += _check_home(page, where, vp_name, role)
                    page.screenshot(path=str(screenshots_dir / name.replace(".png", "-menu.png")))
    finally:
        ctx.close()
    assert not problems, "\n".join(problems)


def _check_home(page: Any, where: str, vp_name: str, role: str) -> list[str]:
    problems: list[str] = []
    if vp_name == "1366x768" and role != "executor":
        above = page.evaluate("""() => [...document.querySelectorAll('#journal-rows tr.row')]
            .filter(tr => { const r = tr.getBoundingClientRect(); return r.height && r.bottom <= innerHeight; }).length""")
        if above < 10:
            problems.append(f"{where}: only {above} journal rows on the first screen")
    if vp_name != "390x844" and role != "executor":  # the compact row needs no sideways scrolling on a desktop
        box = page.evaluate("() => { const b = document.querySelector('.journal-box'); return [b.scrollWidth, b.clientWidth]; }")
        if box[0] > box[1] + 1:
            problems.append(f"{where}: the journal is {box[0]} px wide in a {box[1]} px column")
    problems += _check_nav(page, where)
    return problems


def _check_nav(page: Any, where: str) -> list[str]:
    """Every menu link can be reached: opened through the menu button and the groups, inside the screen."""
    problems: list[str] = []
    toggle = page.locator("#nav-toggle")
    if toggle.is_visible():
        toggle.click()
    links = page.locator("#mainnav a, #mainnav button")
    for i in range(links.count()):
        link = links.nth(i)
        group = link.locator("xpath=ancestor::details[1]")
        if group.count() and not group.evaluate("d => d.open"):
            group.locator(":scope > summary").click()
        label = re.sub(r"\s+", " ", link.inner_text()).strip()
        if not link.is_visible():
            problems.append(f"{where}: menu item «{label}» cannot be reached")
            continue
        box = link.bounding_box()
        width = page.evaluate("innerWidth")
        if box["x"] < 0 or box["x"] + box["width"] > width + 1:
            problems.append(f"{where}: menu item «{label}» is outside the screen")
    return problems


JS_CONTRAST = """() => {
  const parse = c => { const m = c.match(/[\\d.]+/g) || []; return m.map(Number).concat([1]).slice(0, 4); };
  const lum = ([r, g, b]) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c[3] > 0.5) return c;
    }
    return parse(getComputedStyle(document.documentElement).backgroundColor || 'rgb(255,255,255)');
  };
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!walker.currentNode.textContent.trim() || !el || seen.has(el)) continue;
    seen.add(el);
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || el.closest('[hidden], [disabled], .visually-hidden, option')) continue;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || Number(st.opacity) < 1 || st.textDecorationLine.includes('line-through')) continue;
    const fg = parse(st.color), bg = background(el);
    const a = lum(fg) + 0.05, b = lum(bg) + 0.05;
    const ratio = Math.max(a, b) / Math.min(a, b);
    const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    if (ratio < need) bad.push(`${el.tagName.toLowerCase()}.${el.className} «${el.textContent.trim().slice(0, 30)}» ${ratio.toFixed(2)}`);
  }
  return bad;
}"""


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_text_contrast_meets_wcag_aa_in_both_themes(
    live_server: Any, chromium: Any, db: Any, world: Any, theme: str
) -> None:
    admin, _inspector, ticket_id, _cards = _seed(db, world)
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    try:
        page = browser_login(ctx, live_server.url, admin.login)
        page.evaluate(f"localStorage.setItem('openads.theme', '{theme}')")
        problems = []
        for url in ("/", f"/tickets/{ticket_id}", "/calls", "/missed-calls", "/incidents", "/tickets/new"):
            page.goto(live_server.url + url, wait_until="domcontentloaded")
            assert page.evaluate("document.documentElement.dataset.theme") == theme
            problems += [f"{url}: {p}" for p in page.evaluate(JS_CONTRAST)]
        assert not problems, "\n".join(problems)
    finally:
        ctx.close()


def test_journal_columns_are_chosen_ordered_and_remembered_per_user(
    live_server: Any, chromium: Any, db: Any, world: Any
) -> None:
    from playwright.sync_api import expect

    _seed(db, world)
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    try:
        page = browser_login(ctx, live_server.url, world.dispatcher_a.login)
        heads = page.locator("#journal thead th:not([hidden])")
        expect(heads).to_have_text(["№", "Регистрация", "Адрес", "Категория", "Статус", "Срок", "Исполнитель"])
        page.click("#col-chooser > summary")
        page.check('#col-list input[data-col="reporter"]')
        page.uncheck('#col-list input[data-col="cat"]')
        page.click('#col-list button[aria-label="Исполнитель: выше"]')
        expected = ["№", "Регистрация", "Адрес", "Статус", "Исполнитель", "Срок", "Заявитель"]
        expect(heads).to_have_text(expected)
        first_row = page.locator("#journal-rows tr.row").first.locator("td:not([hidden])")
        expect(first_row).to_have_count(len(expected))
        expect(first_row.nth(4)).to_contain_text("Сидоров")  # the cells follow their headers

        page.reload()
        expect(heads).to_have_text(expected)
        expect(page.locator("#journal-rows tr.row").first.locator("td:not([hidden])").nth(4)).to_contain_text("Сидоров")

        page.click(".navgroup-user > summary")  # the same browser, another user: their own columns
        page.click("#nav-logout")
        page.wait_for_url(re.compile(r".*/login"))
        page.close()
        other = browser_login(ctx, live_server.url, world.centre_dispatcher.login)
        expect(other.locator("#journal thead th:not([hidden])")).to_have_text(
            ["№", "Регистрация", "Организация", "Адрес", "Категория", "Статус", "Срок", "Исполнитель"])
    finally:
        ctx.close()
