"""docs/install.md and deploy/ (issue 12 B.1): the units deploy/install-units.sh renders pass
`systemd-analyze verify` and its security review, run existing `openads` commands with the
settings .env.example documents; the doc's `openads` commands run verbatim through the installed
command on a scratch database; deploy/backup.sh and the doc's restore drill work on PostgreSQL;
the doc's nginx configuration passes `nginx -t`."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from models.db import Database
from models.organization import Membership, Organization, Role, User
from tests import factories as f
from tests.conftest import until

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
TEMPLATES = ROOT / "deploy" / "systemd"
VENV = Path(sys.executable).parent.parent  # the venv whose bin/openads the units run
SERVICES = {"openads-web": "web", "openads-worker": "worker", "openads-ari": "ari", "openads-agi": "agi",
            "openads-ari-watchdog": "ari-watchdog"}
PASSWORD = "Ds8-kQ2v-Lm4x"

needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze not installed (Debian package systemd)")


def code_blocks(text_: str, lang: str) -> list[str]:
    return [m.group(1) for m in re.finditer(rf"^```{lang}\n(.*?)^```", text_, re.M | re.S)]


def section(title: str) -> str:
    start = DOC.index(f"## {title}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start:end if end > 0 else None]


def heredocs(target: str) -> list[str]:
    """The bodies of `cat >> <target> <<ENV ... ENV` blocks of the doc."""
    return re.findall(rf"^cat >> {re.escape(target)} <<'?ENV'?\n(.*?)^ENV$", DOC, re.M | re.S)


def unit(path: Path) -> dict[str, list[str]]:
    """key → values of a unit file (every section; repeated keys keep every value)."""
    values: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def documented(name: str) -> bool:
    return re.search(rf"^#?{re.escape(name)}=", ENV_EXAMPLE, re.M) is not None


# --- the installed settings and units --------------------------------------------------------------


def write_settings(path: Path, database_url: str, data: Path) -> None:
    """What the doc makes of /etc/openads/openads.env (a copy of .env.example plus its block, run by
    bash as the doc has it), then this test's database and directories (later lines win)."""
    (block,) = heredocs("/etc/openads/openads.env")[:1]
    shutil.copyfile(ROOT / ".env.example", path)
    script = f"cat >> {shlex.quote(str(path))} <<ENV\n{block}ENV\n"
    subprocess.run(["bash", "-euc", script], check=True, env={**os.environ, "DB_PASSWORD": "test-db-password"})
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"DATABASE_URL={database_url}\nOPENADS_VAR_DIR={data / 'var'}\n"
                  f"OPENADS_RECORDINGS_DIR={data / 'recordings'}\nREDIS_URL=\n")


def install_units(tmp_path: Path, env_file: Path, *extra: str,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    user = subprocess.run(["id", "-un"], check=True, capture_output=True, text=True).stdout.strip()
    return subprocess.run(
        [str(ROOT / "deploy" / "install-units.sh"), "--venv", str(VENV), "--user", user, "--env-file", str(env_file),
         "--dest", str(tmp_path / "units"), "--bin-dir", str(tmp_path / "bin"),
         "--backup-dir", str(tmp_path / "backups"), *extra],
        capture_output=True, text=True, env=env)


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed (the doc's SECRET_KEY)")
    write_settings(tmp_path / "openads.env", f"sqlite:///{tmp_path / 'x.sqlite3'}", tmp_path / "data")
    done = install_units(tmp_path, tmp_path / "openads.env")
    assert done.returncode == 0, done.stderr
    return tmp_path


def test_install_units_renders_every_template_with_the_chosen_paths(installed: Path) -> None:
    units = installed / "units"
    assert sorted(p.name for p in units.iterdir()) == sorted(p.name for p in TEMPLATES.iterdir())
    for path in units.iterdir():
        body = path.read_text(encoding="utf-8")
        assert not re.search(r"@[A-Z_]+@", body), path.name
        assert f"file://{ROOT}/docs/install.md" in body
    for name, command in SERVICES.items():
        values = unit(units / f"{name}.service")
        assert values["ExecStart"] == [f"{VENV}/bin/openads {command}"]
        assert values["EnvironmentFile"] == [str(installed / "openads.env")]
        assert values["ReadWritePaths"] == [f"{installed / 'data' / 'var'} {installed / 'data' / 'recordings'}"]
    backup = unit(units / "openads-backup.service")
    assert backup["ExecStart"] == [f"{ROOT}/deploy/backup.sh {installed / 'backups'}"]
    assert backup["ReadWritePaths"] == [str(installed / "backups")]
    wrapper = installed / "bin" / "openads"
    assert wrapper.stat().st_mode & 0o777 == 0o755
    assert f'. "{installed / "openads.env"}"' in wrapper.read_text(encoding="utf-8")


def test_the_recordings_inside_the_data_directory_need_no_second_writable_path(tmp_path: Path) -> None:
    env_file = tmp_path / "openads.env"
    env_file.write_text("OPENADS_VAR_DIR=/var/lib/openads\nOPENADS_RECORDINGS_DIR=/var/lib/openads/recordings\n"
                        "OPENADS_PROMPTS_DIR=/srv/prompts\n", encoding="utf-8")
    assert install_units(tmp_path, env_file).returncode == 0
    assert unit(tmp_path / "units" / "openads-ari.service")["ReadWritePaths"] == ["/var/lib/openads /srv/prompts"]


@pytest.mark.parametrize(("settings", "message"), [
    ("OPENADS_RECORDINGS_DIR=/var/lib/openads/recordings\n", "does not set OPENADS_VAR_DIR"),
    ("OPENADS_VAR_DIR=/var/lib/openads\n", "does not set OPENADS_RECORDINGS_DIR"),
    ("OPENADS_VAR_DIR=var\nOPENADS_RECORDINGS_DIR=/r\n", "OPENADS_VAR_DIR must be an absolute path"),
    ("OPENADS_VAR_DIR=/var/lib/open%ads\nOPENADS_RECORDINGS_DIR=/r\n", "must not contain"),
])
def test_install_units_refuses_settings_the_services_could_not_run_with(
    tmp_path: Path, settings: str, message: str
) -> None:
    env_file = tmp_path / "openads.env"
    env_file.write_text(settings, encoding="utf-8")
    done = install_units(tmp_path, env_file)
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "units").exists() or not any((tmp_path / "units").iterdir())


def test_install_units_takes_the_paths_from_the_settings_file_not_from_its_own_environment(tmp_path: Path) -> None:
    """systemd gives the services the file's values only: a variable of the administrator's shell
    must not stand in for one the file lacks."""
    env_file = tmp_path / "openads.env"
    env_file.write_text("OPENADS_RECORDINGS_DIR=/var/lib/openads/recordings\n", encoding="utf-8")
    done = install_units(tmp_path, env_file, env={**os.environ, "OPENADS_VAR_DIR": "/srv/from-the-shell"})
    assert done.returncode == 1 and "does not set OPENADS_VAR_DIR" in done.stderr, done.stdout


def test_install_units_needs_the_settings_file_and_the_installed_venv(tmp_path: Path) -> None:
    missing = install_units(tmp_path, tmp_path / "absent.env")
    assert missing.returncode == 1 and "make it from .env.example first" in missing.stderr
    (tmp_path / "openads.env").write_text("OPENADS_VAR_DIR=/v\nOPENADS_RECORDINGS_DIR=/r\n", encoding="utf-8")
    no_venv = install_units(tmp_path, tmp_path / "openads.env", "--venv", str(tmp_path / "nowhere"))
    assert no_venv.returncode == 1 and "install OpenADS into" in no_venv.stderr


@needs_systemd_analyze
def test_the_rendered_units_pass_systemd_analyze_verify(installed: Path) -> None:
    units = sorted(str(p) for p in (installed / "units").iterdir())
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True)
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "openads" in line]
    assert done.returncode == 0 and not ours, done.stdout + done.stderr
    # The check sees a mistake in this environment: one unknown key is reported.
    broken = installed / "broken" / "openads-web.service"
    broken.parent.mkdir()
    broken.write_text((installed / "units" / "openads-web.service").read_text().replace(
        "NoNewPrivileges=yes", "NoNewPrivilege=yes"), encoding="utf-8")
    seen = subprocess.run(["systemd-analyze", "verify", "--man=no", str(broken)], capture_output=True, text=True)
    assert "Unknown key 'NoNewPrivilege'" in seen.stderr


@needs_systemd_analyze
@pytest.mark.parametrize("name", [*SERVICES, "openads-backup"])
def test_each_service_is_hardened(installed: Path, name: str) -> None:
    path = installed / "units" / f"{name}.service"
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=30", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr  # exposure 3.0 or lower ("OK")
    values = unit(path)
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
                       "UMask": "0027"}.items():
        assert values[key] == [value], key


@pytest.mark.parametrize(("name", "command"), SERVICES.items())
def test_each_service_runs_an_existing_openads_command_and_restarts_unless_misconfigured(
    installed: Path, name: str, command: str
) -> None:
    values = unit(installed / "units" / f"{name}.service")
    (exec_start,) = values["ExecStart"]
    args = shlex.split(exec_start)[1:]
    assert args == [command]
    done = subprocess.run([sys.executable, "-m", "openads.cli", *args, "--help"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert values["Restart"] == ["always"]
    assert values["RestartSec"] == (["1"] if command in ("ari", "ari-watchdog") else ["2"])
    assert values["RestartPreventExitStatus"] == ["2"]  # openads/cli.py: 2 = bad setting
    assert values["StartLimitIntervalSec"] == ["0"]
    assert values["User"] and values["Group"]
    # The watchdog stays up while openads.target restarts (it covers `openads ari` meanwhile).
    if command == "ari-watchdog":
        assert "PartOf" not in values and values["WantedBy"] == ["multi-user.target"]
    else:
        assert values["PartOf"] == ["openads.target"] and values["WantedBy"] == ["openads.target"]


def test_openads_web_tells_systemd_it_is_ready_once_it_accepts_connections(installed: Path, tmp_path: Path) -> None:
    """Type=notify: `systemctl start openads-web` returns when the port accepts connections, so the doc's
    `curl .../status` right after `systemctl enable --now` works (Type=exec: refused, make test-install)."""
    assert unit(installed / "units" / "openads-web.service")["Type"] == ["notify"]
    notify = tmp_path / "notify"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENADS_", "DATABASE_URL", "SECRET_KEY"))}
    env.update(NOTIFY_SOCKET=str(notify), DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}", OPENADS_ALLOW_SQLITE="1",
               OPENADS_VAR_DIR=str(tmp_path / "var"), OPENADS_WEB_WORKERS="1", PYTHONPATH=str(ROOT))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify))
        listener.settimeout(60)
        proc = subprocess.Popen([sys.executable, "-m", "openads.cli", "web", "--port", str(port)], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            message = listener.recv(4096).decode()
            assert "READY=1" in message.split("\n")
            socket.create_connection(("127.0.0.1", port), timeout=1).close()  # at once: no "connection refused"
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


def test_every_unit_the_doc_names_is_shipped() -> None:
    named = set(re.findall(r"\bopenads(?:-[a-z-]+)?\.(?:service|timer|target)\b", DOC))
    assert {"openads.target", "openads-web.service", "openads-backup.timer"} <= named
    assert named <= {p.name for p in TEMPLATES.iterdir()}


def test_the_settings_the_doc_and_the_units_use_are_documented_in_env_example() -> None:
    blocks = heredocs("/etc/openads/openads.env")
    assert len(blocks) == 2  # section 4 (the base), section 9 (telephony)
    names = [re.match(r"([A-Z][A-Z0-9_]*)=", line).group(1)  # type: ignore[union-attr]
             for block in blocks for line in block.splitlines() if re.match(r"[A-Z][A-Z0-9_]*=", line)]
    assert {"DATABASE_URL", "SECRET_KEY", "OPENADS_VAR_DIR", "OPENADS_RECORDINGS_DIR", "REDIS_URL",
            "OPENADS_BASE_URL", "OPENADS_PROXY_HOPS", "ARI_URL", "ARI_PASSWORD", "AMI_SECRET",
            "ASTERISK_CDR_URL"} <= set(names)
    # What install-units.sh and backup.sh read from the settings file is there too.
    scripts = (ROOT / "deploy" / "install-units.sh").read_text() + (ROOT / "deploy" / "backup.sh").read_text()
    read = set(re.findall(r"\$\{((?:OPENADS|ARI|DATABASE)_[A-Z_]*|DATABASE_URL)[:}]", scripts))
    assert {"OPENADS_VAR_DIR", "OPENADS_BACKUP_KEEP_DAYS", "DATABASE_URL"} <= read
    for name in [*names, *read]:
        assert documented(name), f"{name} is not in .env.example"
    # The base block asks PostgreSQL and the data directories of section 4's table.
    base = blocks[0]
    assert "DATABASE_URL=postgresql://openads:${DB_PASSWORD}@127.0.0.1:5432/openads" in base
    assert "OPENADS_VAR_DIR=/var/lib/openads\n" in base and "OPENADS_RECORDINGS_DIR=/var/lib/openads/recordings" in base


# --- the doc's openads commands on a scratch database ---------------------------------------------


def pg_server() -> str | None:
    """A PostgreSQL server URL for scratch databases: the suite's, else 127.0.0.1:5432, else None."""
    env = os.environ.get("DATABASE_URL", "")
    if env.startswith(("postgres://", "postgresql")):
        return "postgresql+psycopg://" + env.split("://", 1)[1]
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return "postgresql+psycopg://127.0.0.1:5432/postgres"
    except OSError:
        return None


@pytest.fixture
def scratch_pg() -> Iterator[str]:
    server = pg_server()
    if server is None:
        pytest.skip("no PostgreSQL (DATABASE_URL or 127.0.0.1:5432)")
    from tests.conftest import _pg_database

    yield from _pg_database(server)


@pytest.fixture
def scratch_url(tmp_path: Path) -> Iterator[str]:
    """PostgreSQL, as the doc has it, where there is one; else SQLite (the commands are not services)."""
    if pg_server() is None:
        yield f"sqlite:///{tmp_path / 'install.sqlite3'}"
        return
    from tests.conftest import _pg_database

    yield from _pg_database(pg_server())  # type: ignore[arg-type]


def doc_commands() -> list[str]:
    return [line for block in code_blocks(DOC, "sh") for line in block.splitlines() if line.startswith("openads ")]


def serve_web(env: dict[str, str]) -> None:
    """`openads web` through the installed command answers /status, then stops on SIGTERM."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(["openads", "web", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)

    def up() -> bool:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return conn.recv(100).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    try:
        until(up, timeout=60, interval=0.2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_the_docs_openads_commands_run_verbatim_through_the_installed_command(
    tmp_path: Path, scratch_url: str
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed (the doc's SECRET_KEY)")
    commands = doc_commands()
    assert {"openads db upgrade", "openads db check"} <= set(commands)
    assert any(c.startswith("openads org add ") for c in commands)
    assert any(c.startswith("openads user add ") and "--role admin" in c for c in commands)
    write_settings(tmp_path / "openads.env", scratch_url, tmp_path / "data")
    assert install_units(tmp_path, tmp_path / "openads.env").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENADS_", "DATABASE_URL", "SECRET_KEY"))}
    env.update(PATH=f"{tmp_path / 'bin'}:{env['PATH']}", PYTHONPATH=str(ROOT), OPENADS_PASSWORD=PASSWORD)
    for command in commands:
        done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
    # The services start with these settings (on PostgreSQL; SQLite is refused, decision 0026).
    worker = subprocess.run(["openads", "worker", "--once"], env=env, capture_output=True, text=True, timeout=120)
    if scratch_url.startswith("sqlite"):
        assert worker.returncode == 2 and "не запускается на SQLite" in worker.stderr, worker.stderr
    else:
        assert worker.returncode == 0, worker.stderr
        serve_web(env)
    db = Database(scratch_url)
    try:
        with db.read() as s:
            (org,) = s.scalars(select(Organization))
            assert (org.name, org.timezone, org.hotline_numbers, org.municipality_email) == (
                "УК Пример", "Europe/Moscow", "+74951234567", "edds@example.ru")
            admin = s.scalar(select(User).where(User.login == "admin"))
            assert admin is not None and admin.full_name == "Иванова Анна Петровна"
            assert admin.role == Role.ADMIN and admin.is_active
            assert s.scalars(select(Membership.organization_id).where(Membership.user_id == admin.id)).all() == [
                org.id]
    finally:
        db.dispose()


# --- backups --------------------------------------------------------------------------------------


def backup(url: str, directory: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "deploy" / "backup.sh"), str(directory)], capture_output=True, text=True,
                          env={**os.environ, "DATABASE_URL": url, **env}, timeout=300)


def test_backup_refuses_a_database_that_is_not_postgresql(tmp_path: Path) -> None:
    done = backup(f"sqlite:///{tmp_path / 'x.sqlite3'}", tmp_path)
    assert done.returncode == 1 and "DATABASE_URL is not PostgreSQL" in done.stderr
    assert list(tmp_path.iterdir()) == []


def _postgres_sees(database: str) -> bool:
    """The doc's drill runs `runuser -u postgres -- psql` on the local socket: root, and the same server."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return False
    done = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-Atc",
                           f"SELECT 1 FROM pg_database WHERE datname = '{database}'"],
                          capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() == "1"


def test_nightly_backup_then_the_docs_restore_drill_finds_the_same_schema_and_tickets(
    tmp_path: Path, scratch_pg: str
) -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump/pg_restore not installed (Debian package postgresql-client)")
    from models.migrate import upgrade

    upgrade(scratch_pg)
    db = Database(scratch_pg)
    try:
        with db.write() as s:
            org = f.make_org(s)
            cats = f.make_categories(s, org)
            for _ in range(3):
                f.make_ticket(s, org, cats["emergency_heating"])
    finally:
        db.dispose()
    backups = tmp_path / "backups"
    backups.mkdir()
    old = backups / "openads-20200101T023000Z.dump"
    recent = backups / "openads-20991231T023000Z.dump"
    for path, age_days in ((old, 30), (recent, 1)):
        path.write_bytes(b"x")
        stamp = time.time() - age_days * 86400
        os.utime(path, (stamp, stamp))

    done = backup(scratch_pg, backups, OPENADS_BACKUP_KEEP_DAYS="14")
    assert done.returncode == 0, done.stderr
    dumps = sorted(p for p in backups.iterdir() if p not in (recent,))
    assert len(dumps) == 1 and re.fullmatch(r"openads-\d{8}T\d{6}Z\.dump", dumps[0].name), dumps
    assert stat.S_IMODE(dumps[0].stat().st_mode) == 0o600
    assert not old.exists() and recent.exists()  # older than OPENADS_BACKUP_KEEP_DAYS: removed
    assert f"removed {old}" in done.stdout
    recent.unlink()  # the drill takes the newest dump

    database = make_url(scratch_pg).database
    assert database
    if not _postgres_sees(database):
        pytest.skip("the drill needs root and `runuser -u postgres -- psql` on the same server")
    check, role = f"openads_check_{uuid.uuid4().hex[:8]}", f"openads_role_{uuid.uuid4().hex[:8]}"
    drill = section("10. Резервные копии")
    (block,) = [b for b in code_blocks(drill, "sh") if "openads_restore_check" in b]
    for token in ("/var/backups/openads", "openads_restore_check", "--owner=openads ", "--role=openads ",
                  "for db in openads "):
        assert token in block, token
    script = (block.replace("/var/backups/openads", str(backups)).replace("openads_restore_check", check)
              .replace("--owner=openads ", f"--owner={role} ").replace("--role=openads ", f"--role={role} ")
              .replace("for db in openads ", f"for db in {database} "))
    admin = create_engine(make_url(scratch_pg).set(database="postgres"), isolation_level="AUTOCOMMIT",
                          poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
    try:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                              timeout=300, cwd="/")
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stdout.splitlines() if "|" in line]
        assert [line.split("|", 1)[0] for line in lines] == [database, check]
        live, restored = (line.split("|", 1)[1] for line in lines)
        assert restored == live and "|3|" in live  # same schema version, 3 tickets, same newest
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{check}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()
    assert not _postgres_sees(check)  # the drill drops its database itself


# --- nginx ----------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("openssl") is None,
                    reason="nginx or openssl not installed (Debian packages nginx, openssl)")
@pytest.mark.parametrize("doc", ["install.md", "web-server.md"])
def test_the_docs_nginx_configuration_passes_nginx_t_on_debians_nginx(tmp_path: Path, doc: str) -> None:
    (site,) = code_blocks((ROOT / "docs" / doc).read_text(encoding="utf-8"), "nginx")
    stream = re.search(r"location = /events/stream \{(.*?)\}", site, re.S)
    assert stream and "proxy_buffering off;" in stream.group(1) and "proxy_read_timeout 60s;" in stream.group(1)
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=ads.example.ru", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    site = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", site)
    site = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", site)
    (tmp_path / "site.conf").write_text(site, encoding="utf-8")
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
        f"http {{\n    access_log {tmp_path / 'access.log'};\n    include {tmp_path / 'site.conf'};\n}}\n",
        encoding="utf-8")
    done = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                           "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "[warn]" not in done.stderr.replace('the "user" directive makes sense only', ""), done.stderr
