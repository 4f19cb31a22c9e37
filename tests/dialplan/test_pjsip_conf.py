"""Static checks of dialplan/pjsip.conf and the providers' files as Asterisk reads them: the
`#include` expanded where it stands (main/config.c), then every `[name](template)` must name a
category defined above it, or Asterisk rejects the whole file ("Inheritance requested, but
category '...' does not exist"): no trunk and no phones."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIALPLAN = ROOT / "dialplan"
PJSIP = DIALPLAN / "pjsip.conf"
PROVIDERS = sorted((DIALPLAN / "providers").glob("*.conf"))


@dataclass(frozen=True)
class Category:
    name: str
    template: bool  # (!)
    bases: tuple[str, ...]  # the templates it inherits from, in order
    options: dict[str, str]
    where: str  # file:line


def expand(path: Path, text: str | None = None, *, depth: int = 0) -> list[tuple[str, str]]:
    """(file:line, line) with every `#include`/`#tryinclude` replaced by the included file's lines,
    paths relative to the including file's directory (as Asterisk does for /etc/asterisk)."""
    assert depth < 5, "include loop"
    out: list[tuple[str, str]] = []
    lines = (text if text is not None else path.read_text(encoding="utf-8")).splitlines()
    for lineno, raw in enumerate(lines, 1):
        if m := re.match(r"^\s*#(try)?include\s+\"?([^\"]+?)\"?\s*$", raw):
            included = path.parent / m.group(2)
            if not included.exists():
                assert m.group(1), f"{path.name}:{lineno}: #include {m.group(2)}: no such file"
                continue
            out.extend(expand(included, depth=depth + 1))
        else:
            out.append((f"{path.relative_to(DIALPLAN)}:{lineno}", raw))
    return out


def parse(lines: list[tuple[str, str]]) -> list[Category]:
    """Categories in file order. Raises like Asterisk on an inheritance from an unknown category."""
    categories: list[Category] = []
    defined: set[str] = set()
    current: Category | None = None
    for where, raw in lines:
        body = raw.split(";", 1)[0].strip()
        if not body:
            continue
        if m := re.fullmatch(r"\[([^\]]+)\](?:\(([^)]*)\))?", body):
            flags = [f.strip() for f in (m.group(2) or "").split(",") if f.strip()]
            bases = tuple(f for f in flags if f not in ("!", "+"))
            for base in bases:
                if base not in defined:
                    raise AssertionError(f"{where}: [{m.group(1)}] inherits from [{base}], which is not "
                                         "defined above it: Asterisk rejects the whole pjsip.conf")
            current = Category(m.group(1), "!" in flags, bases, {}, where)
            categories.append(current)
            defined.add(current.name)
            continue
        assert current is not None, f"{where}: option outside a category: {raw!r}"
        name, sep, value = body.partition("=")
        assert sep, f"{where}: not an option: {raw!r}"
        current.options[name.strip().rstrip(">").strip()] = value.strip()
    return categories


def with_provider(provider: Path) -> str:
    """pjsip.conf as the docs tell the admin to install it: the provider's `;#include` uncommented."""
    text = PJSIP.read_text(encoding="utf-8")
    line = f";#include providers/{provider.name}"
    assert text.count(line) == 1, f"pjsip.conf has no commented {line!r}"
    return text.replace(line, line[1:])


def effective(categories: list[Category], name: str, type_: str) -> dict[str, str]:
    """The options of section `name` of type `type_`, templates applied (later ones win)."""
    by_name = {c.name: c for c in categories if c.template}

    def resolve(c: Category) -> dict[str, str]:
        merged: dict[str, str] = {}
        for base in c.bases:
            merged.update(resolve(by_name[base]))
        merged.update(c.options)
        return merged

    matches = [resolve(c) for c in categories if c.name == name and not c.template]
    [opts] = [o for o in matches if o.get("type") == type_]
    return opts


@pytest.mark.parametrize("provider", PROVIDERS, ids=[p.stem for p in PROVIDERS])
def test_with_each_provider_included_every_template_is_defined_before_it_is_used(provider: Path) -> None:
    categories = parse(expand(PJSIP, with_provider(provider)))
    assert any(c.name == "trunk-operator" and c.where.startswith("providers/") for c in categories)
    endpoint = effective(categories, "trunk-operator", "endpoint")
    assert endpoint["context"] == "openads-from-trunk"
    assert endpoint["rtp_timeout"] == "60" and endpoint["rtp_timeout_hold"] == "300"


def test_the_shipped_file_parses_and_its_phones_use_the_templates() -> None:
    categories = parse(expand(PJSIP))  # the includes are commented out as shipped
    phones = [c for c in categories if c.bases == ("openads-dispatcher-phone",)]
    assert [c.name for c in phones] == ["201", "202", "203"]
    for phone in phones:
        assert effective(categories, phone.name, "endpoint")["context"] == "openads-dispatchers"


def test_the_include_order_check_catches_an_include_above_the_templates() -> None:
    text = with_provider(PROVIDERS[0])
    include = f"#include providers/{PROVIDERS[0].name}"
    moved = text.replace(include, "").replace("[openads-trunk-endpoint](!)", include + "\n[openads-trunk-endpoint](!)")
    with pytest.raises(AssertionError, match="not defined above it"):
        parse(expand(PJSIP, moved))


def test_outbound_registration_never_gives_up() -> None:
    """Defaults max_retries=10 and auth_rejection_permanent=yes leave the trunk unregistered until a
    reload after a ten-minute outage or one 401/403."""
    registering = 0
    for provider in PROVIDERS:
        categories = parse(expand(PJSIP, with_provider(provider)))
        if not any(c.name == "trunk-operator" and "openads-trunk-registration" in c.bases for c in categories):
            continue  # a trunk by IP (generic-ip.conf)
        registering += 1
        reg = effective(categories, "trunk-operator", "registration")
        assert int(reg["max_retries"]) >= 10000 and reg["auth_rejection_permanent"] == "no", provider.name
    assert registering >= 2


def test_outbound_auth_takes_the_operators_realm() -> None:
    """`realm=` on an outbound auth answers only a challenge with exactly that realm: an operator
    challenging with another one makes REGISTER/INVITE loop on 401."""
    for provider in PROVIDERS:
        categories = parse(expand(PJSIP, with_provider(provider)))
        auths = [c for c in categories if c.name == "trunk-operator" and "openads-trunk-auth" in c.bases]
        for auth in auths:
            assert "realm" not in auth.options, provider.name
