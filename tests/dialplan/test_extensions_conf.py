"""Static checks of the dialplan templates: no dangling Goto, unknown variable or undocumented
placeholder reaches a telecom admin. No Asterisk needed: a small parser of extensions.conf."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from openads import channel_vars as cv

ROOT = Path(__file__).resolve().parents[2]
DIALPLAN = ROOT / "dialplan"
EXTENSIONS = DIALPLAN / "extensions.conf"
NOT_CONTEXTS = {"general", "globals"}
JUMPS = ("Goto", "GotoIf", "Gosub", "GosubIf", "Dial", "Stasis")


@dataclass
class Line:
    context: str
    exten: str
    label: str | None
    app: str
    lineno: int


@dataclass
class Dialplan:
    contexts: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # context -> exten -> labels
    lines: list[Line] = field(default_factory=list)
    globals: dict[str, str] = field(default_factory=dict)
    comments_before: dict[str, str] = field(default_factory=dict)


def split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside (), [], {} (so ${EXTEN:1} and $[a:b] stay whole)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def parse(path: Path) -> Dialplan:
    dp = Dialplan()
    context, exten, comment = "", "", ""
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith(";"):
            comment += stripped + "\n"
            continue
        body = split_top(raw, ";")[0].strip()
        if not body:
            continue
        if m := re.fullmatch(r"\[([^\]]+)\]", body):
            context = m.group(1)
            dp.comments_before[context] = comment
            dp.contexts.setdefault(context, {})
            comment = ""
            continue
        comment = ""
        if context == "globals":
            name, _, value = body.partition("=")
            dp.globals[name.strip()] = value.strip()
            continue
        if context in NOT_CONTEXTS:
            continue
        m = re.fullmatch(r"(exten|same)\s*=>\s*(.*)", body)
        assert m, f"line {lineno}: not a dialplan line: {raw!r}"
        fields = split_top(m.group(2), ",")
        if m.group(1) == "exten":
            exten = fields.pop(0).strip()
        prio = fields.pop(0).strip()
        app = ",".join(fields).strip()
        label_m = re.fullmatch(r"[n\d]+(?:\((\w+)\))?", prio)
        assert label_m, f"line {lineno}: bad priority {prio!r}"
        dp.contexts[context].setdefault(exten, set())
        if label_m.group(1):
            dp.contexts[context][exten].add(label_m.group(1))
        dp.lines.append(Line(context, exten, label_m.group(1), app, lineno))
    return dp


def calls(app: str) -> list[tuple[str, str]]:
    """Every (application, arguments) in a priority, including those nested in ExecIf(...)."""
    found = []
    for m in re.finditer(r"\b(" + "|".join(JUMPS) + r")\(", app):
        depth, i = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(app[i], 0)
            i += 1
        found.append((m.group(1), app[m.end(): i - 1]))
    return found


def pattern_matches(pattern: str, exten: str) -> bool:
    if not pattern.startswith("_"):
        return pattern == exten
    rx = ""
    chars = iter(pattern[1:])
    for ch in chars:
        if ch == "[":
            rx += "[" + "".join(iter(lambda: next(chars), "]")) + "]"
        else:
            rx += {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}.get(ch, re.escape(ch))
    return re.fullmatch(rx, exten) is not None


def has_exten(dp: Dialplan, context: str, exten: str) -> bool:
    if exten in dp.contexts[context]:  # the extension itself (a label jump within it)
        return True
    if "${" in exten:  # computed: any pattern extension may take it
        return any(e.startswith("_") for e in dp.contexts[context])
    return any(pattern_matches(e, exten) for e in dp.contexts[context])


def destinations(dp: Dialplan, line: Line) -> list[tuple[str, str, str | None]]:
    """(context, exten, label) targets of one priority's Goto/GotoIf/Gosub, of a hangup handler it
    pushes (`Set(CHANNEL(hangup_handler_push)=context,exten,priority)`) and of the subroutines its
    Dial() runs on the called channel (options U(context) and b(context^exten^priority))."""
    out: list[tuple[str, str, str | None]] = []
    if m := re.search(r"CHANNEL\(hangup_handler_(?:push|wipe)\)=([^)]+)\)$", line.app):
        ctx, exten, prio = [p.strip() for p in split_top(m.group(1), ",")]
        out.append((ctx, exten, None if prio.isdigit() else prio))
    for app, args in calls(line.app):
        if app == "Dial":
            options = split_top(args, ",")[2] if len(split_top(args, ",")) > 2 else ""
            for _opt, sub in re.findall(r"\b([Ub])\(([^)]*)\)", options):
                parts = sub.split("^")
                if len(parts) >= 3:
                    out.append((parts[0], parts[1], None if parts[2].isdigit() else parts[2]))
                else:
                    out.append((parts[0], "s", None))
    for app, args in calls(line.app):
        if app not in ("Goto", "GotoIf", "Gosub", "GosubIf"):
            continue
        targets = [args]
        if app.endswith("If"):
            _cond, _, rest = args.partition("?")
            targets = [t for t in split_top(rest, ":") if t]
        for target in targets:
            parts = [p.strip() for p in split_top(target, ",")]
            if len(parts) == 3:
                ctx, exten, prio = parts
            elif len(parts) == 2:
                ctx, (exten, prio) = line.context, parts
            else:
                ctx, exten, prio = line.context, line.exten, parts[0]
            out.append((ctx, exten, None if prio.isdigit() else prio))
    return out


@pytest.fixture(scope="module")
def dp() -> Dialplan:
    return parse(EXTENSIONS)


def test_the_expected_contexts_exist(dp: Dialplan) -> None:
    assert set(dp.contexts) - NOT_CONTEXTS == {
        "openads-from-trunk", "openads-lookup", "openads-fallback", "openads-fallback-answered",
        "openads-fallback-end", "openads-dispatchers", "openads-outbound", "openads-test",
    }


def test_every_goto_and_gosub_leads_to_an_existing_context_extension_and_label(dp: Dialplan) -> None:
    checked = 0
    for line in dp.lines:
        for ctx, exten, label in destinations(dp, line):
            where = f"line {line.lineno}: {line.app}"
            assert ctx in dp.contexts, f"{where}: no context [{ctx}]"
            assert has_exten(dp, ctx, exten), f"{where}: no extension {exten} in [{ctx}]"
            if label is not None and "${" not in exten:
                labels = set().union(*(v for e, v in dp.contexts[ctx].items() if e == exten or pattern_matches(e, exten)))
                assert label in labels, f"{where}: no label {label} in [{ctx}] {exten}"
            checked += 1
    assert checked >= 15


def test_every_dial_to_a_local_channel_uses_an_existing_context(dp: Dialplan) -> None:
    dial_strings = [args for line in dp.lines for app, args in calls(line.app) if app == "Dial"]
    dial_strings += list(dp.globals.values())
    assert dial_strings
    for dial in dial_strings:
        for ctx in re.findall(r"Local/[^@,&]+@([\w-]+)", dial):
            assert ctx in dp.contexts, f"Dial({dial}): no context [{ctx}]"


def test_stasis_enters_the_openads_app_with_a_known_flow(dp: Dialplan) -> None:
    stasis = [args for line in dp.lines for app, args in calls(line.app) if app == "Stasis"]
    assert stasis == ["openads,inbound,${OPENADS_DID}"]


FALLBACK_DIAL = "Dial(${OPENADS_DISPATCHERS},${OPENADS_RING_TIMEOUT},m(openads)U(openads-fallback-answered))"


def test_stasis_failure_falls_back_to_ringing_dispatchers(dp: Dialplan) -> None:
    trunk = [line.app for line in dp.lines if line.context == "openads-from-trunk" and line.exten == "_X."]
    after = trunk[[i for i, app in enumerate(trunk) if app.startswith("Stasis(")][0] + 1:]
    assert "Goto(openads-fallback,s,1)" in after
    fallback = [line.app for line in dp.lines if line.context == "openads-fallback"]
    assert "Gosub(openads-lookup,s,1)" in fallback
    assert "MixMonitor(${OPENADS_RECORDING})" in fallback
    assert FALLBACK_DIAL in fallback
    assert "VoiceMail(${OPENADS_VOICEMAIL_BOX},s)" in fallback
    assert fallback.index("MixMonitor(${OPENADS_RECORDING})") < fallback.index(FALLBACK_DIAL) < fallback.index(
        "VoiceMail(${OPENADS_VOICEMAIL_BOX},s)")


def test_the_fallback_reports_how_each_call_ended_from_a_hangup_handler(dp: Dialplan) -> None:
    """A Dial() without the g option hangs the caller up after a conversation, and a caller who
    speaks a voice message hangs up: lines after Dial()/VoiceMail() never run for those calls. The
    outcome therefore leaves in a hangup handler, pushed before Answer() (so it runs whoever hangs
    up, whenever), and nothing after the Dial() pretends to record it."""
    fallback = [line.app for line in dp.lines if line.context == "openads-fallback"]
    push = "Set(CHANNEL(hangup_handler_push)=openads-fallback-end,s,1)"
    assert push in fallback
    assert fallback.index(push) < fallback.index("Answer()") < fallback.index(FALLBACK_DIAL)
    after_dial = fallback[fallback.index(FALLBACK_DIAL) + 1:]
    assert not any("CDR(" in app or "ANSWER" in app for app in after_dial), after_dial

    handler = [line.app for line in dp.lines if line.context == "openads-fallback-end"]
    assert handler[-1] == "Return()"  # a hangup handler runs as a Gosub
    [event] = [args for app in handler for name, args in [app.split("(", 1)] if name == "UserEvent"]
    name, *fields = split_top(event[:-1], ",")
    headers = dict(f.split(": ", 1) for f in fields)
    assert name == "OpenadsFallbackEnd"
    assert headers == {
        "UniqueID": "${UNIQUEID}", "LinkedID": "${CHANNEL(linkedid)}", "DialStatus": "${DIALSTATUS}",
        "AnsweredBy": "${DIALEDPEERNAME}", "VMStatus": "${VMSTATUS}", "VMFile": "${VM_MESSAGEFILE}",
        "Recording": "${OPENADS_RECORDING}",
    }
    # The ARI app reads exactly these headers (ari_app/presence.py parse_fallback_end).
    from ari_app.presence import FALLBACK_END, parse_fallback_end

    assert name == FALLBACK_END
    end = parse_fallback_end({"Event": "UserEvent", "UserEvent": name, **{h: f"<{h}>" for h in headers}})
    assert end is not None
    assert (end.unique_id, end.linked_id, end.dial_status, end.answered_by, end.vm_status, end.vm_file,
            end.recording) == ("<UniqueID>", "<LinkedID>", "<DIALSTATUS>", "<AnsweredBy>", "<VMSTATUS>",
                               "<VMFile>", "<Recording>")

    # The moment a dispatcher picks up: set on the caller's CDRs by the Dial's U() subroutine.
    answered = [line.app for line in dp.lines if line.context == "openads-fallback-answered"]
    assert answered == ["NoOp(OpenADS fallback answered by ${CHANNEL} for uniqueid ${CHANNEL(linkedid)})",
                        "Set(MASTER_CHANNEL(CDR(openads_answered_at))=${EPOCH})", "Return()"]
    assert {line.exten for line in dp.lines if line.context in ("openads-fallback-answered",
                                                                  "openads-fallback-end")} == {"s"}


def test_the_hangup_handler_leaves_the_outcome_in_cdr_variables_before_its_event(dp: Dialplan) -> None:
    """For master.db (cdr_sqlite3_custom), which Asterisk writes while `openads ari` is down: the
    same values as the UserEvent, on the caller's last CDR (cdr.conf endbeforehexten=no)."""
    handler = [line.app for line in dp.lines if line.context == "openads-fallback-end"]
    sets = {m.group(1): m.group(2) for app in handler if (m := re.fullmatch(r"Set\(CDR\((\w+)\)=(.*)\)", app))}
    assert sets == {
        "openads_dialstatus": "${DIALSTATUS}", "openads_answered_by": "${DIALEDPEERNAME}",
        "openads_vmstatus": "${VMSTATUS}", "openads_vmfile": "${VM_MESSAGEFILE}",
        "openads_recording": "${OPENADS_RECORDING}", "openads_did": "${OPENADS_DID}",
    }
    assert max(i for i, app in enumerate(handler) if app.startswith("Set(CDR(")) < next(
        i for i, app in enumerate(handler) if app.startswith("UserEvent("))
    # Those are exactly the columns ari_app/cdr_source.py takes as "the hangup handler's record".
    from ari_app.cdr_source import END_COLUMNS

    assert set(END_COLUMNS) <= set(sets)
    cdr_conf = (DIALPLAN / "cdr.conf").read_text(encoding="utf-8")
    assert re.search(r"^endbeforehexten\s*=\s*no\s*$", cdr_conf, re.M)
    assert not re.search(r"^endbeforehexten\s*=\s*yes", cdr_conf, re.M)


def test_the_ami_user_receives_the_fallback_user_event() -> None:
    conf = (DIALPLAN / "manager.conf").read_text(encoding="utf-8")
    [read_line] = re.findall(r"^\s*read\s*=\s*(.+)$", conf, re.M)
    assert {c.strip() for c in read_line.split(",")} >= {"call", "system", "reporting", "cdr", "user"}
    [event_filter] = re.findall(r"^\s*eventfilter\s*=\s*(.+)$", conf, re.M)
    for event in ("UserEvent", "Cdr", "DeviceStateChange", "ContactStatus", "PeerStatus", "FullyBooted"):
        assert re.search(event_filter.strip(), f"Event: {event}"), event


EMERGENCY = ("101", "102", "103", "104", "112")


def routes_of(dp: Dialplan, context: str, exten: str) -> list[str]:
    """Priority 1 of every extension of `context` that matches `exten` (exact or pattern)."""
    first = {}
    for line in dp.lines:
        if line.context == context:
            first.setdefault(line.exten, line.app)
    return [app for e, app in first.items() if pattern_matches(e, exten)]


def test_dispatchers_reach_emergency_numbers_through_the_trunk_and_phones_are_not_numbered_like_them(
    dp: Dialplan,
) -> None:
    for number in EMERGENCY:
        routes = routes_of(dp, "openads-dispatchers", number)
        assert routes and set(routes) == {"Goto(openads-outbound,${EXTEN},1)"}, (number, routes)
        assert any(pattern_matches(e, number) for e in dp.contexts["openads-outbound"])
    phones = re.findall(r"PJSIP/(\w+)", dp.globals["OPENADS_DISPATCHERS"])
    pjsip = (DIALPLAN / "pjsip.conf").read_text(encoding="utf-8")
    assert phones
    for phone in phones:
        assert phone not in EMERGENCY and not phone.startswith("1"), phone
        assert re.search(rf"^\[{phone}\]\(openads-dispatcher-phone\)", pjsip, re.M), phone
        # A dispatcher dials a colleague by the same number.
        assert routes_of(dp, "openads-dispatchers", phone)[0].startswith("NoOp(OpenADS internal call")
    for section in re.findall(r"^\[(\w+)\]\(openads-dispatcher-phone\)", pjsip, re.M):
        assert section not in EMERGENCY and not section.startswith("1"), section


def test_outbound_caller_id_is_sent_as_digits_only(dp: Dialplan) -> None:
    outbound = [line.app for line in dp.lines if line.context == "openads-outbound"]
    [cid] = [app for app in outbound if app.startswith("Set(CALLERID(num)=")]
    assert cid.startswith("Set(CALLERID(num)=${FILTER(0123456789,")
    assert "OPENADS_OUTBOUND_CALLERID" in cid and "OPENADS_DEFAULT_CALLERID" in cid
    assert dp.globals["OPENADS_DEFAULT_CALLERID"].isdigit()


def test_comments_say_how_the_ari_app_dials_out() -> None:
    text = EXTENSIONS.read_text(encoding="utf-8")
    assert "PJSIP/<number>@trunk-operator" in text
    assert "Local/<number>@openads-outbound/n" in text
    assert "Local/<number>@openads-outbound ->" not in text


def test_lookup_calls_the_fastagi_route_and_defaults_to_failed(dp: Dialplan) -> None:
    lookup = [line.app for line in dp.lines if line.context == "openads-lookup"]
    assert "AGI(agi://${OPENADS_AGI_HOST}:${OPENADS_AGI_PORT}/lookup_caller,${OPENADS_DID})" in lookup
    assert any("Set(OPENADS_AGI_STATUS=FAILED)" in app and "AGISTATUS" in app for app in lookup)
    assert lookup[-1] == "Return()"
    from agi.server import ROUTES

    for line in dp.lines:
        for route in re.findall(r"AGI\(agi://[^/]+/(\w+)", line.app):
            assert route in ROUTES, f"line {line.lineno}: no FastAGI route {route}"


def test_every_openads_variable_is_declared_in_channel_vars(dp: Dialplan) -> None:
    text = EXTENSIONS.read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{(OPENADS_\w+)", text))
    used |= set(re.findall(r"Set\(_{0,2}(OPENADS_\w+)=", text))
    used |= {name for name in dp.globals}
    assert used - set(cv.ALL) == set()
    assert {n for n in dp.globals} == {n for n, v in cv.ALL.items() if v.kind == "global"}
    assert "OPENADS_AGI_STATUS" in used and "OPENADS_DID" in used


def test_agi_status_values_used_in_the_dialplan_are_real(dp: Dialplan) -> None:
    text = EXTENSIONS.read_text(encoding="utf-8")
    values = set(re.findall(r'"\$\{OPENADS_AGI_STATUS\}" [!=]+ "(\w+)"', text))
    assert values and values <= {s.value for s in cv.AgiStatus}


def test_every_context_starts_with_a_comment_on_how_it_is_entered_and_what_it_expects(dp: Dialplan) -> None:
    for context in set(dp.contexts) - NOT_CONTEXTS:
        comment = dp.comments_before[context]
        assert "Entered:" in comment and "Expects:" in comment, f"[{context}] lacks its header comment"


def test_prompts_played_by_the_dialplan_are_listed_for_recording(dp: Dialplan) -> None:
    listed = (DIALPLAN / "sounds" / "README.md").read_text(encoding="utf-8")
    prompts = {p for line in dp.lines for p in re.findall(r"Playback\(openads/([\w-]+)\)", line.app)}
    assert prompts == {"fallback-greeting", "fallback-voicemail", "test-call", "test-agi-ok", "test-agi-failed"}
    for prompt in prompts:
        assert f"`{prompt}`" in listed


def test_cdr_manager_mappings_are_read_by_the_cdr_parser() -> None:
    conf = (DIALPLAN / "cdr_manager.conf").read_text(encoding="utf-8")
    headers = re.findall(r"^\s*\w+\s*=>\s*(\w+)", conf, re.M)
    parser = (ROOT / "ari_app" / "presence.py").read_text(encoding="utf-8")
    assert headers
    for header in headers:
        assert f'"{header}"' in parser, header
    # What the hangup handler sets reaches the AMI path in its UserEvent, not in Cdr events.
    cdr_vars = set(re.findall(r"CDR\((\w+)\)", EXTENSIONS.read_text(encoding="utf-8"))) - {"userfield"}
    handler_only = set(re.findall(r"CDR\((\w+)\)", _context_text("openads-fallback-end"))) - set(
        re.findall(r"CDR\((\w+)\)", EXTENSIONS.read_text(encoding="utf-8").replace(
            _context_text("openads-fallback-end"), "")))
    mapped = set(re.findall(r"^\s*(\w+)\s*=>", conf, re.M))
    assert cdr_vars - handler_only <= mapped


def _context_text(name: str) -> str:
    text = EXTENSIONS.read_text(encoding="utf-8")
    start = text.index(f"\n[{name}]\n")
    end = text.find("\n[", start + 1)
    return text[start:end if end > 0 else None]


def _sqlite_custom() -> tuple[str, list[str], list[str]]:
    conf = (DIALPLAN / "cdr_sqlite3_custom.conf").read_text(encoding="utf-8")
    options = dict(re.findall(r"^(\w+)\s*=>\s*(.+)$", conf, re.M))
    columns = [c.strip() for c in options["columns"].split(",")]
    values = re.findall(r"'([^']*)'", options["values"])
    return options["table"], columns, values


def test_master_db_gets_every_cdr_variable_of_the_dialplan_under_its_own_name() -> None:
    """cdr_sqlite3_custom.conf: one value per column, each `${CDR(<column>)}`, so the table (and a
    PostgreSQL one for cdr_pgsql, which matches columns to CDR variables by name) reads the same;
    every CDR variable the dialplan sets and the columns ari_app/cdr_source.py needs are there."""
    table, columns, values = _sqlite_custom()
    assert table == "openads_cdr"
    assert values == [f"${{CDR({c})}}" for c in columns]
    cdr_vars = set(re.findall(r"CDR\((\w+)\)", EXTENSIONS.read_text(encoding="utf-8")))
    assert cdr_vars <= set(columns)
    from ari_app.cdr_source import END_COLUMNS, REQUIRED

    assert (set(REQUIRED) - {"acctid"}) | set(END_COLUMNS) <= set(columns)  # acctid: the module's own key
    assert {"linkedid", "src", "dst", "channel", "dstchannel", "answer", "disposition", "lastapp",
            "lastdata"} <= set(columns)


def test_every_placeholder_in_the_config_templates_is_documented() -> None:
    docs = (ROOT / "docs" / "telephony.md").read_text(encoding="utf-8")
    files = [p for p in DIALPLAN.rglob("*.conf") if p.name != "extensions.conf"]
    placeholders = {m for p in files for m in re.findall(r"\$\{([A-Z0-9_]+)\}", p.read_text(encoding="utf-8"))}
    assert {"ARI_PASSWORD", "AMI_SECRET", "TRUNK_LOGIN", "TRUNK_PASSWORD", "TRUNK_HOST"} <= placeholders
    for name in placeholders:
        assert f"${{{name}}}" in docs, f"${{{name}}} is not explained in docs/telephony.md"
    for name, var in cv.ALL.items():
        if var.kind == "global":
            assert name in docs, f"{name} is not explained in docs/telephony.md"


def test_every_provider_defines_the_trunk_endpoint_the_dialplan_dials() -> None:
    dp_trunk = parse(EXTENSIONS).globals["OPENADS_TRUNK"]
    providers = sorted((DIALPLAN / "providers").glob("*.conf"))
    assert len(providers) >= 2
    pjsip = (DIALPLAN / "pjsip.conf").read_text(encoding="utf-8")
    for provider in providers:
        text = provider.read_text(encoding="utf-8")
        assert re.search(rf"^\[{dp_trunk}\]\(openads-trunk-endpoint\)", text, re.M), provider.name
        assert f"#include providers/{provider.name}" in pjsip, provider.name
        for template in re.findall(r"^\[[\w-]+\]\(([\w-]+)\)", text, re.M):
            assert f"[{template}](!)" in pjsip, f"{provider.name}: no template {template} in pjsip.conf"


def test_pattern_matching_helper() -> None:
    assert pattern_matches("_X.", "74951234567")
    assert not pattern_matches("_X.", "s")
    assert pattern_matches("_+X.", "+74951234567")
    assert pattern_matches("_1XX", "101") and not pattern_matches("_1XX", "1011")
    assert pattern_matches("_2XX", "201") and not pattern_matches("_2XX", "112")
    assert pattern_matches("_8XXXXXXXXXX", "84951234567")
