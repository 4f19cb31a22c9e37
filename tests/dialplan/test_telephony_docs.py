"""docs/telephony.md and dialplan/install.sh against the templates: the installer the docs give
works on them (run here into a temporary directory, as the real-PBX tests run it)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIALPLAN = ROOT / "dialplan"
INSTALL_SH = DIALPLAN / "install.sh"
DOCS = (ROOT / "docs" / "telephony.md").read_text(encoding="utf-8")
INSTALL = DOCS[DOCS.index("## 3. Установка файлов"):DOCS.index("## 4. Что заполнить")]
PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")

VALUES = {
    "DISPATCHER_201_PASSWORD": "p201", "DISPATCHER_202_PASSWORD": "p202", "DISPATCHER_203_PASSWORD": "p203",
    "ARI_PASSWORD": "ari-pw", "AMI_SECRET": "ami-pw", "VOICEMAIL_PIN": "2468", "TRUNK_HOST": "sip.example.net",
    "TRUNK_LOGIN": "123456-100", "TRUNK_PASSWORD": "trunk-pw", "TRUNK_DID": "74951234567", "TRUNK_MATCH": "192.0.2.0/24",
}

needs_envsubst = pytest.mark.skipif(shutil.which("envsubst") is None, reason="envsubst (gettext-base) not installed")


def install(tmp_path: Path, provider: str, values: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "telephony.env"
    env_file.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items()), encoding="utf-8")
    sounds = tmp_path / "sounds"
    (sounds / "ru" / "openads").mkdir(parents=True, exist_ok=True)
    for line in (DIALPLAN / "sounds" / "prompts.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):  # recorded prompts already there: nothing to synthesise
            (sounds / "ru" / "openads" / f"{line.split(chr(9))[0]}.wav").write_bytes(b"RIFF-recorded")
    env = {k: v for k, v in os.environ.items() if k not in VALUES and not k.startswith("OPENADS_")}
    return subprocess.run(
        [str(INSTALL_SH), "--env", str(env_file), "--dest", str(tmp_path / "etc"), "--provider", provider,
         "--sounds", str(sounds), "--spool", str(tmp_path / "spool"), "--recordings", str(tmp_path / "rec"), *extra],
        capture_output=True, text=True, env=env)


@needs_envsubst
@pytest.mark.parametrize("provider", ["zadarma", "mango", "generic-ip"])
def test_the_installer_leaves_no_placeholder_and_enables_exactly_its_provider(tmp_path: Path, provider: str) -> None:
    done = install(tmp_path, provider, VALUES)
    assert done.returncode == 0, done.stderr
    etc = tmp_path / "etc"
    for conf in etc.rglob("*.conf"):
        if conf.name == "extensions.conf":
            continue  # the dialplan's own ${...} are Asterisk's
        assert not PLACEHOLDER.search(conf.read_text(encoding="utf-8")), conf
    pjsip = (etc / "pjsip.conf").read_text(encoding="utf-8")
    assert re.findall(r"^#include (\S+)$", pjsip, re.M) == [f"providers/{provider}.conf"]
    assert "password=p201" in pjsip and "bind=0.0.0.0:5060" in pjsip
    assert "external_media_address" not in pjsip  # no PUBLIC_IP: no NAT lines
    assert "bindport = 8088" in (etc / "http.conf").read_text() and "port = 5038" in (etc / "manager.conf").read_text()
    assert "[ru]" in (etc / "indications.conf").read_text()
    box = tmp_path / "spool" / "voicemail" / "openads"
    assert box.is_symlink() and box.resolve() == (tmp_path / "rec" / "voicemail" / "openads").resolve()
    for d in (tmp_path / "rec", tmp_path / "rec" / "voicemail", tmp_path / "rec" / "voicemail" / "openads"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o2770, d  # recordings: no access for others
    assert oct((etc / "ari.conf").stat().st_mode & 0o777) in ("0o600", "0o640")


@needs_envsubst
def test_a_missing_value_changes_nothing_and_names_it(tmp_path: Path) -> None:
    values = {k: v for k, v in VALUES.items() if k != "AMI_SECRET"}
    done = install(tmp_path, "zadarma", values)
    assert done.returncode == 1
    assert "AMI_SECRET" in done.stderr
    assert not (tmp_path / "etc").exists()


@needs_envsubst
def test_globals_nat_and_ports_from_the_env_file(tmp_path: Path) -> None:
    values = dict(VALUES, PUBLIC_IP="203.0.113.10", LOCAL_NET="192.168.1.0/24", HTTP_PORT="28088",
                  OPENADS_RING_TIMEOUT="90", OPENADS_DISPATCHERS="PJSIP/201&PJSIP/202")
    done = install(tmp_path, "generic-ip", values)
    assert done.returncode == 0, done.stderr
    ext = (tmp_path / "etc" / "extensions.conf").read_text(encoding="utf-8")
    assert "\nOPENADS_RING_TIMEOUT=90\n" in ext and "\nOPENADS_DISPATCHERS=PJSIP/201&PJSIP/202\n" in ext
    assert "\nOPENADS_AGI_PORT=4573\n" in ext  # not given: the default stays
    pjsip = (tmp_path / "etc" / "pjsip.conf").read_text(encoding="utf-8")
    assert "external_media_address=203.0.113.10" in pjsip and "local_net=192.168.1.0/24" in pjsip
    assert "bindport = 28088" in (tmp_path / "etc" / "http.conf").read_text()


def test_the_docs_install_with_the_installer_and_its_placeholders_are_documented() -> None:
    assert "dialplan/install.sh --env telephony.env --provider zadarma" in INSTALL
    documented = set(PLACEHOLDER.findall(DOCS[DOCS.index("## 4. Что заполнить"):DOCS.index("### `[globals]`")]))
    used = set()
    for template in [*DIALPLAN.glob("*.conf"), *(DIALPLAN / "providers").glob("*.conf")]:
        if template.name != "extensions.conf" and template.name != "cdr_sqlite3_custom.conf":
            used |= set(PLACEHOLDER.findall(template.read_text(encoding="utf-8")))
    used -= {"CDR_DB_HOST", "CDR_DB_NAME", "CDR_DB_PASSWORD"}  # the ODBC files: section 7, not the installer
    assert used <= documented, used - documented
    script = INSTALL_SH.read_text(encoding="utf-8")
    for name in used:
        assert name in script, name


def test_prompts_the_installer_synthesises_are_the_documented_texts() -> None:
    readme = (DIALPLAN / "sounds" / "README.md").read_text(encoding="utf-8")
    for line in (DIALPLAN / "sounds" / "prompts.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, text = line.split("\t")
            assert f"| `{name}` |" in readme and text in readme, name


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
    # group openads may delete, others may not even read (issue 10, item 10)
    assert "UMask=0007" in INSTALL and "UMask=0002" not in INSTALL
    assert "setfacl -d -m g:openads:rwx,o::-" in INSTALL


def test_the_connection_check_is_the_websocket_not_the_app_list() -> None:
    check = DOCS[DOCS.index("## 8. Проверка"):]
    assert 'asterisk -rx "ari show websocket sessions"' in check
    assert 'asterisk -rx "ari show apps"' not in check


def test_voicemail_settings_do_not_make_asterisk_warn() -> None:
    """app_voicemail warns "maxsilence should be less than minsecs" when maxsilence (s) >= minsecs."""
    conf = dict(re.findall(r"^(\w+)\s*=\s*(\S+)", (DIALPLAN / "voicemail.conf").read_text(encoding="utf-8"), re.M))
    if "maxsilence" in conf and "minsecs" in conf:
        assert int(conf["maxsilence"]) < int(conf["minsecs"])


@pytest.mark.parametrize("doc", ["README.md", "docs/telephony.md", ".env.example", "dialplan/README.md"])
def test_every_install_path_names_the_cdr_table_as_a_required_step(doc: str) -> None:
    """Issue 11, item 3: without Asterisk's CDR table, calls that end while `openads ari` is down
    cannot be reconciled; every documented installation sets it up, none calls it optional."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    blocks = [b for b in re.split(r"\n\s*\n", text) if "ASTERISK_CDR_URL" in b]
    assert blocks, f"{doc} does not name ASTERISK_CDR_URL"
    assert any("обязател" in b.lower() for b in blocks), f"{doc} does not say the CDR table is required"
    assert not re.search(r"(необязательн|по желанию|optional)[^\n]*CDR|CDR[^\n]*(необязательн|по желанию|optional)",
                         text, re.I)


def test_the_installation_section_has_the_cdr_table_as_its_required_step() -> None:
    assert "Обязательный шаг после скрипта — таблица CDR" in INSTALL
    assert "ASTERISK_CDR_URL" in INSTALL
