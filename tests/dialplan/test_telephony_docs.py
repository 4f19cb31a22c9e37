"""docs/telephony.md against the templates: the install commands it gives work on them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIALPLAN = ROOT / "dialplan"
DOCS = (ROOT / "docs" / "telephony.md").read_text(encoding="utf-8")
INSTALL = DOCS[DOCS.index("## 3. Установка файлов"):DOCS.index("## 4. Что заполнить")]
TEMPLATES = [DIALPLAN / f for f in ("pjsip.conf", "ari.conf", "manager.conf", "voicemail.conf")] + sorted(
    (DIALPLAN / "providers").glob("*.conf"))


def envsubst(text: str, names: set[str]) -> str:
    """`envsubst "$VARS"`: only the listed names are replaced, everything else is left as is."""
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: "value" if m.group(1) in names else m.group(0), text)


def test_the_placeholder_check_is_empty_after_the_documented_envsubst() -> None:
    [vars_line] = re.findall(r"^VARS='([^']+)'$", INSTALL, re.M)
    names = set(re.findall(r"\$\{(\w+)\}", vars_line))
    [grep] = re.findall(r"grep -rn '([^']+)'", INSTALL)
    # The BRE of the doc as a Python regex: \+ is "one or more", \$ and \{ are literal.
    pattern = re.compile(grep.replace(r"\+", "+").replace("{", r"\{").replace("}", r"\}"))
    for template in TEMPLATES:
        text = template.read_text(encoding="utf-8")
        assert pattern.search(text) or "${" not in text, f"{template.name}: the check would not see a placeholder"
        left = [line for line in envsubst(text, names).splitlines() if pattern.search(line)]
        assert left == [], f"{template.name}: the documented check is not empty after envsubst: {left}"


def test_the_provider_include_is_uncommented_by_the_documented_sed() -> None:
    [sed] = re.findall(r"sed -i 's\|\^([^|]+)\|([^|]+)\|'", INSTALL)
    pjsip = (DIALPLAN / "pjsip.conf").read_text(encoding="utf-8")
    assert re.search("^" + re.escape(sed[0]) + "$", pjsip, re.M)
    assert sed[1] == sed[0].lstrip(";")


def test_config_files_with_passwords_get_the_asterisk_group_before_they_lose_world_read() -> None:
    chown = INSTALL.index("chown root:asterisk /etc/asterisk/*.conf /etc/asterisk/providers/*.conf")
    assert chown < INSTALL.index("chmod 640 /etc/asterisk/*.conf /etc/asterisk/providers/*.conf")


def test_the_modules_listed_exist_and_cover_what_the_dialplan_uses() -> None:
    need = DOCS[DOCS.index("## 2. Что нужно"):DOCS.index("## 3. Установка файлов")]
    assert "func_pjsip_header" not in need  # no such module: PJSIP_HEADER is res_pjsip_header_funcs
    for module in ("res_pjsip_header_funcs", "func_cut", "res_manager_devicestate", "app_exec", "func_logic",
                   "func_cdr", "res_http_websocket", "res_ari_channels", "res_stasis_recording", "app_userevent",
                   "func_channel", "app_stack", "cdr_manager"):
        assert f"`{module}`" in need, module


def test_the_env_section_names_the_outbound_settings() -> None:
    env = DOCS[DOCS.index("### Настройки OpenADS (`.env`)"):DOCS.index("## 5.")]
    assert "ARI_TRUNK=trunk-operator" in env
    assert "ARI_OUTBOUND_ENDPOINT" in env and "Local/{number}@openads-outbound/n" in env


def test_the_fallback_recordings_stay_deletable_by_openads() -> None:
    assert "UMask=0002" in INSTALL and "setfacl -d -m g:openads:rwx" in INSTALL
