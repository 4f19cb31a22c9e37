"""docs/install.md on a real Debian 12 with systemd as PID 1 (issue 12 B.1): `make test-install`.

A fresh Debian 12 (debootstrap, cached; tests/install_vm/nspawn.py) boots in systemd-nspawn; the
doc's ```sh blocks run inside, in order, as root, in one shell per group of sections (section 2's
DB_PASSWORD lives until section 4, as the doc says). What cannot run in a container is substituted,
and only that (each substitution is named where it is made):

- section 4: `<адрес репозитория OpenADS>` → a bare clone of this checkout (HEAD plus uncommitted
  changes of tracked files), bind-mounted read-only; the `nano` edit is skipped (the doc's values
  stay: ads.example.ru, smtp.example.ru — nothing is mailed);
- section 6: `openads user add` reads the password from OPENADS_PASSWORD, as the doc says for a script;
- section 7: certbot (no public DNS) → a self-signed certificate at the paths the doc's nginx
  configuration reads, trusted by the container (so the doc's `curl -fsS https://...` runs as is);
  `ads.example.ru` → 127.0.0.1 in /etc/hosts;
- section 8: `journalctl -f` runs without -f (it never ends);
- section 9: no Asterisk: the `asterisk` user its package would create is added by hand;
  openads-ari cannot connect and must keep retrying (never `failed`);
- section 10: the rsync block runs on the backup server, not here;
- section 11: `git checkout <новая версия>` → the commit already checked out.

Timings go to stdout (pytest -s) and to <cache>/timings.json.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.install_vm.nspawn import CACHE, Container, base_root
from tests.ops.test_install import DOC, ROOT, code_blocks, section

# Each step may take minutes (apt, pip); the module fixture installs in its setup.
pytestmark = pytest.mark.timeout(1800)

PASSWORD = "Ds8-kQ2v-Lm4x-Install"
HOST = "ads.example.ru"
SERVICES = ("openads-web.service", "openads-worker.service")
TIMINGS: dict[str, float] = {}


class Step:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.t0 = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        TIMINGS[self.name] = round(time.monotonic() - self.t0, 1)
        print(f"\n[install-vm] {self.name}: {TIMINGS[self.name]} s", flush=True)


def blocks(title: str) -> list[str]:
    return code_blocks(section(title), "sh")


def replace_once(script: str, old: str, new: str) -> str:
    assert script.count(old) == 1, f"the doc no longer has {old!r}: update the substitution in this test"
    return script.replace(old, new)


def run(box: Container, script: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return box.sh("set -eo pipefail\n" + script, **kw)  # type: ignore[arg-type]


def show(box: Container, unit: str, *props: str) -> dict[str, str]:
    out = box.sh(f"systemctl show {unit} -p {','.join(props)}").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_for(box: Container, script: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + timeout
    while True:
        done = box.sh(script, check=False)
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(0.5)


def healthy(box: Container, timeout: float = 30) -> None:
    for unit in (*SERVICES, "openads.target"):
        done = wait_for(box, f"systemctl is-active {unit}", timeout)
        assert done.stdout.strip() == "active", (unit, done.stdout, box.sh(f"journalctl -u {unit} -n 30 --no-pager",
                                                                          check=False).stdout)
    done = wait_for(box, f"curl -fsS https://{HOST}/status", timeout)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"status": "ok"}


# --- the container ---------------------------------------------------------------------------------------


def bare_clone(into: Path) -> str:
    """A bare repository of this checkout whose HEAD is the checkout's tracked files (committed or not)."""
    subprocess.run(["git", "clone", "--bare", "-q", str(ROOT), str(into)], check=True)
    sha = subprocess.run(["git", "-C", str(ROOT), "stash", "create"], capture_output=True, text=True,
                         check=True).stdout.strip()
    if not sha:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
    else:  # the stash commit's objects live in the checkout's repository only
        subprocess.run(["git", "-C", str(ROOT), "push", "-q", str(into), f"{sha}:refs/heads/install-test"], check=True)
    subprocess.run(["git", "-C", str(into), "update-ref", "refs/heads/install-test", sha], check=True)
    subprocess.run(["git", "-C", str(into), "symbolic-ref", "HEAD", "refs/heads/install-test"], check=True)
    return sha


@pytest.fixture(scope="module")
def box() -> Iterator[Container]:
    if os.geteuid() != 0:
        pytest.skip("needs root (systemd-nspawn)")
    t0 = time.monotonic()
    work = CACHE / f"run-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    caches = {name: CACHE / name for name in ("apt", "pip", "npm")}
    for path in caches.values():
        (path / "partial").mkdir(parents=True, exist_ok=True)
    box = Container("oadsinst", work,
                    binds={str(caches["apt"]): "/var/cache/apt/archives", str(caches["pip"]): "/root/.cache/pip",
                           str(caches["npm"]): "/root/.npm"},
                    binds_ro={str(work / "openads.git"): "/srv/openads.git"})
    box.commit = bare_clone(work / "openads.git")  # type: ignore[attr-defined]
    try:
        with Step("debootstrap (cached) and copy of the base"):
            base_root()
            box.copy_base()
        with Step("boot"):
            box.boot()
        yield box
    finally:
        box.cleanup(keep_root=bool(os.environ.get("OPENADS_INSTALL_KEEP")))
        if not os.environ.get("OPENADS_INSTALL_KEEP"):
            subprocess.run(["rm", "-rf", str(work)], check=False)
        TIMINGS["whole run"] = round(time.monotonic() - t0, 1)
        (CACHE / "timings.json").write_text(json.dumps(TIMINGS, indent=1, ensure_ascii=False))
        print("\n[install-vm] timings: " + json.dumps(TIMINGS, ensure_ascii=False), flush=True)


# --- the doc, section by section ------------------------------------------------------------------------


def test_sections_1_to_5_install_packages_database_code_settings_and_units(box: Container) -> None:
    (packages,) = blocks("1. Пакеты")
    database, redis = blocks("2. PostgreSQL") + blocks("3. Redis")
    code, settings = blocks("4. Пользователь")
    (units,) = blocks("5. Службы systemd")
    code = replace_once(code, "<адрес репозитория OpenADS>", "/srv/openads.git")  # substitution: the repository
    with Step("section 1: apt inside"):
        run(box, packages, timeout=1200)
    with Step("sections 2-5: database, pip, npm, settings, units"):
        done = run(box, "\n".join([database, redis, code, settings, units]), timeout=1500)
    assert "PONG" in done.stdout
    assert box.sh("git -C /opt/openads rev-parse HEAD").stdout.strip() == box.commit  # type: ignore[attr-defined]
    ls = box.sh("stat -c '%U:%G %a %n' /etc/openads/openads.env /var/lib/openads /var/backups/openads "
                "/usr/local/bin/openads /etc/systemd/system/openads-web.service").stdout.split("\n")
    assert ls[:4] == ["root:openads 640 /etc/openads/openads.env", "openads:openads 750 /var/lib/openads",
                      "openads:openads 750 /var/backups/openads", "root:root 755 /usr/local/bin/openads"]
    assert box.sh("systemctl is-enabled openads-web.service", check=False).stdout.strip() == "disabled"


def test_section_6_database_admin_and_services_under_systemd(box: Container) -> None:
    admin, start = blocks("6. База")
    with Step("section 6"):
        run(box, admin, env={"OPENADS_PASSWORD": PASSWORD})
        done = run(box, start, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"status": "ok"}
    for unit in (*SERVICES, "openads.target"):
        assert box.sh(f"systemctl is-active {unit}").stdout.strip() == "active"
        assert box.sh(f"systemctl is-enabled {unit}").stdout.strip() == "enabled"
    # the services run as openads, not root
    assert box.sh("ps -o user= -p $(systemctl show -p MainPID --value openads-web)").stdout.strip() == "openads"


def test_section_7_nginx_and_https(box: Container) -> None:
    certbot, enable = blocks("7. nginx")
    (nginx,) = code_blocks(section("7. nginx"), "nginx")
    cert = re.search(r"ssl_certificate\s+(\S+);", nginx).group(1)  # type: ignore[union-attr]
    key = re.search(r"ssl_certificate_key\s+(\S+);", nginx).group(1)  # type: ignore[union-attr]
    assert certbot.startswith("certbot certonly")
    # substitution: certbot → a self-signed certificate where the doc's nginx configuration reads it,
    # trusted by the container; the name resolves to this machine.
    run(box, f"""
echo '127.0.0.1 {HOST}' >> /etc/hosts
mkdir -p $(dirname {cert})
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN={HOST} -addext subjectAltName=DNS:{HOST} \
  -keyout {key} -out {cert} 2>/dev/null
cp {cert} /usr/local/share/ca-certificates/{HOST}.crt && update-ca-certificates >/dev/null
""")
    box.sh("cat > /etc/nginx/sites-available/openads", input_=nginx)
    with Step("section 7"):
        done = run(box, enable, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"status": "ok"}
    # HTTP → HTTPS, the login page, the proxy headers (Secure cookie behind OPENADS_PROXY_HOPS=1)
    assert box.sh(f"curl -sS -o /dev/null -w '%{{http_code}} %{{redirect_url}}' http://{HOST}/login").stdout \
        == f"301 https://{HOST}/login"
    page = box.sh(f"curl -fsS -D - https://{HOST}/login").stdout
    assert 'name="password"' in page and "Set-Cookie:" in page.replace("set-cookie:", "Set-Cookie:")
    assert re.search(r"(?i)^set-cookie:.*;\s*secure", page, re.M), page[:1500]
    assert "HTTP/2 200" in page


def test_a_real_admin_action_over_https_writes_to_postgresql(box: Container) -> None:
    issued = box.sh("openads user token issue admin --scope settings --name install-test").stdout
    token = issued.strip().splitlines()[-1]
    body = json.dumps({"name": "УК Проверка установки", "short_name": "УК Проверка"})
    done = box.sh(f"curl -fsS -X POST -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' "
                  f"--data-binary @- https://{HOST}/api/v1/admin/organizations", input_=body)
    created = json.loads(done.stdout)
    assert created["short_name"] == "УК Проверка"
    rows = box.sh("runuser -u postgres -- psql -d openads -Atc \"SELECT short_name FROM organizations ORDER BY id\"")
    assert rows.stdout.split("\n")[:2] == ["УК Пример", "УК Проверка"]


def test_section_8_journald_has_the_services_logs(box: Container) -> None:
    with Step("section 8"):
        for script in blocks("8. Журналы"):
            run(box, script.replace("journalctl -u openads-web -f", "journalctl -u openads-web"))  # substitution: no -f
    web = box.sh("journalctl -u openads-web --no-pager -o cat").stdout
    assert web.strip(), "openads-web wrote nothing to the journal"
    assert box.sh("journalctl -u openads-worker --no-pager -o cat").stdout.strip()
    assert box.sh("cat /etc/systemd/journald.conf.d/openads.conf").stdout == "[Journal]\nSystemMaxUse=2G\n"


def test_a_killed_service_comes_back(box: Container) -> None:
    before = show(box, "openads-web", "MainPID", "NRestarts")
    box.sh("systemctl kill -s KILL openads-web")
    t0 = time.monotonic()
    done = wait_for(box, f"curl -fsS https://{HOST}/status", 20)
    back = time.monotonic() - t0
    assert done.returncode == 0, box.sh("journalctl -u openads-web -n 30 --no-pager").stdout
    after = show(box, "openads-web", "MainPID", "NRestarts", "ActiveState")
    assert after["ActiveState"] == "active" and after["MainPID"] != before["MainPID"]
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    TIMINGS["openads-web back after SIGKILL"] = round(back, 1)


def test_a_bad_setting_fails_with_exit_2_and_is_not_restarted(box: Container) -> None:
    # A second settings file (later EnvironmentFile= wins): SQLite without OPENADS_ALLOW_SQLITE.
    run(box, """
printf 'DATABASE_URL=sqlite:////var/lib/openads/x.sqlite3\\n' > /etc/openads/bad.env
mkdir -p /run/systemd/system/openads-worker.service.d
printf '[Service]\\nEnvironmentFile=/etc/openads/bad.env\\n' > /run/systemd/system/openads-worker.service.d/bad.conf
systemctl daemon-reload
systemctl restart openads-worker || true
""")
    wait_for(box, "systemctl is-failed openads-worker", 15)
    time.sleep(5)  # longer than RestartSec: a restart would have happened
    state = show(box, "openads-worker", "ActiveState", "Result", "ExecMainStatus", "NRestarts")
    journal = box.sh("journalctl -u openads-worker -n 20 --no-pager -o cat").stdout
    run(box, "rm -r /run/systemd/system/openads-worker.service.d /etc/openads/bad.env; systemctl daemon-reload; "
             "systemctl reset-failed openads-worker; systemctl start openads-worker")
    assert state == {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "2", "NRestarts": "0"}, journal
    assert "OPENADS_ALLOW_SQLITE" in journal
    assert box.sh("systemctl is-active openads-worker").stdout.strip() == "active"


def test_the_hardening_level_is_what_the_doc_claims(box: Container) -> None:
    assert "(`systemd-analyze security openads-web`, уровень «OK»)" in DOC
    for unit in ("openads-web", "openads-worker", "openads-ari", "openads-agi", "openads-ari-watchdog"):
        last = box.sh(f"systemd-analyze security --no-pager {unit}").stdout.strip().splitlines()[-1]
        assert re.search(r"exposure level for \S+: \d+\.\d+ OK", last), last
    # In the web service's mount namespace the code is read-only and the data directory writable.
    pid = box.sh("systemctl show -p MainPID --value openads-web").stdout.strip()
    code = box.sh(f"nsenter -t {pid} -m touch /opt/openads/x", check=False)
    assert code.returncode != 0 and "Read-only file system" in code.stderr, code.stderr
    box.sh(f"nsenter -t {pid} -m sh -c 'touch /var/lib/openads/x && rm /var/lib/openads/x'")


def test_section_9_telephony_services_without_asterisk(box: Container) -> None:
    acl, env, start = blocks("9. Телефония")
    box.sh("useradd --system --home-dir /var/lib/asterisk --shell /usr/sbin/nologin asterisk")  # substitution
    with Step("section 9"):
        run(box, "\n".join([acl, env]))
        run(box, start)
    assert wait_for(box, "ss -ltn | grep -q '127.0.0.1:4573 '", 20).returncode == 0, \
        box.sh("journalctl -u openads-agi -n 30 --no-pager").stdout
    assert box.sh("systemctl is-active openads-agi").stdout.strip() == "active"
    time.sleep(8)
    for unit in ("openads-ari", "openads-ari-watchdog"):
        state = show(box, unit, "ActiveState", "SubState", "NRestarts")
        journal = box.sh(f"journalctl -u {unit} -n 40 --no-pager -o cat").stdout
        print(f"\n[install-vm] {unit}: {state}\n{journal[-1500:]}")
        assert state["ActiveState"] in ("active", "activating"), (state, journal)
    ari = box.sh("journalctl -u openads-ari --no-pager -o cat").stdout
    assert "ARI: http://127.0.0.1:8088 app=openads" in ari
    assert re.search(r"WARNING .*ARI events: .*8088", ari), ari[-2000:]  # why it is not connected
    watchdog = box.sh("journalctl -u openads-ari-watchdog --no-pager -o cat").stdout
    assert "watching the lock /var/lib/openads/ari.lock" in watchdog, watchdog[-2000:]
    # The watchdog sweeps Asterisk only while `openads ari` leaves its lock free past the grace (the
    # three services start together, in any order): stopped, the app frees it, and the watchdog's
    # journal says why it could not take over the calls.
    box.sh("systemctl stop openads-ari")
    swept = wait_for(box, "journalctl -u openads-ari-watchdog --no-pager -o cat | grep -q 'ARI is unreachable'", 20)
    assert swept.returncode == 0, box.sh("journalctl -u openads-ari-watchdog -n 20 --no-pager -o cat").stdout
    box.sh("systemctl start openads-ari")
    assert wait_for(box, "journalctl -u openads-ari-watchdog --no-pager -o cat | grep -q 'holds the lock again'",
                    20).returncode == 0


def test_section_10_backup_and_the_restore_drill(box: Container) -> None:
    timer, rsync, drill, restore = blocks("10. Резервные копии")
    assert rsync.startswith("rsync")  # runs on the backup server
    with Step("section 10: backup"):
        done = run(box, timer)
    assert re.search(r"openads-\d{8}T\d{6}Z\.dump", done.stdout), done.stdout
    assert show(box, "openads-backup.service", "Result")["Result"] == "success"
    assert "openads-backup.timer" in done.stdout
    with Step("section 10: restore drill"):
        done = run(box, drill)
    rows = [line.split("|") for line in done.stdout.splitlines() if "|" in line]
    assert [r[0] for r in rows] == ["openads", "openads_restore_check"]
    assert rows[0][1:] == rows[1][1:]
    with Step("section 10: restore"):
        run(box, restore)
    healthy(box)
    assert box.sh("runuser -u postgres -- psql -d openads -Atc 'SELECT count(*) FROM organizations'").stdout.strip() \
        == "2"


def test_section_11_upgrade(box: Container) -> None:
    (upgrade,) = blocks("11. Обновление")
    upgrade = replace_once(upgrade, "<новая версия>", box.commit)  # type: ignore[attr-defined] # substitution
    with Step("section 11: upgrade"):
        run(box, upgrade, timeout=900)
    healthy(box)
    assert box.sh("systemctl --failed --no-legend --plain").stdout.strip() == ""
    box.sh("openads db check")


def test_after_a_reboot_everything_is_back(box: Container) -> None:
    with Step("reboot"):
        box.sh("systemctl reboot", check=False)
        code = box.wait_exit(120)
        assert code in (0, 133), code  # nspawn exits on reboot (133): start it again from the same root
        box.boot()
        healthy(box, 60)
    for unit in ("nginx", "postgresql", "redis-server", "openads-agi", "openads-backup.timer"):
        assert wait_for(box, f"systemctl is-active {unit}", 30).stdout.strip() == "active", unit
    assert box.sh("systemctl show -p ActiveState --value openads-ari").stdout.strip() in ("active", "activating")
    assert box.sh("systemctl --failed --no-legend --plain").stdout.strip() == ""
    # section 8: the journal is kept on disk, so the previous boot's logs are still there
    assert box.sh("journalctl -b -1 -u openads-web --no-pager -o cat", check=False).stdout.strip()
