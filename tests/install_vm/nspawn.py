"""A throwaway Debian 12 booted with systemd as PID 1 (systemd-nspawn), for `make test-install`.

The host needs root, systemd-container, debootstrap and iptables; it needs neither systemd nor a
system D-Bus (hence --keep-unit --register=no; commands go in with nsenter). The base root file
system is made once by debootstrap into the cache (or taken from OPENADS_INSTALL_BASE) and never
changed: every run copies it. The apt, pip and npm caches of the container are bind-mounted from
the cache directory, so a second run downloads almost nothing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

CACHE = Path(os.environ.get("OPENADS_INSTALL_CACHE", Path.home() / ".cache" / "openads-install-vm"))
MIRROR = "http://deb.debian.org/debian"
PACKAGES = "systemd,systemd-sysv,dbus,ca-certificates,iproute2"
# The host's egress may intercept TLS with its own CA (/usr/local/share/ca-certificates): the container
# trusts the same CAs, and its shells get the host's CA settings of pip and npm (which use their own
# bundles otherwise).
CA_DIR = Path("/usr/local/share/ca-certificates")
CA_ENV = ("PIP_CERT", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_root() -> Path:
    """The pristine Debian 12 root: OPENADS_INSTALL_BASE, or debootstrap'ed once into the cache."""
    given = os.environ.get("OPENADS_INSTALL_BASE")
    if given:
        return Path(given)
    root = CACHE / "base-bookworm"
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["debootstrap", f"--include={PACKAGES}", "bookworm", str(root), MIRROR], check=True,
                       stdout=subprocess.DEVNULL)
        (root / ".complete").touch()
    return root


def host_nameserver() -> str:
    for line in Path("/etc/resolv.conf").read_text().splitlines():
        if line.startswith("nameserver"):
            return line.split()[1]
    return "1.1.1.1"


class Container:
    """One booted container on a private /24 (10.<net>.0.1 the host, .2 the container)."""

    def __init__(self, name: str, workdir: Path, binds: dict[str, str], binds_ro: dict[str, str],
                 net: int = 78) -> None:
        self.name, self.workdir, self.binds, self.binds_ro = name, workdir, binds, binds_ro
        self.root = workdir / "root"
        self.log = workdir / "nspawn.log"
        self.host_ip, self.ip, self.subnet = f"10.{net}.0.1", f"10.{net}.0.2", f"10.{net}.0.0/24"
        self.iface = f"ve-{name}"[:15]
        self.proc: subprocess.Popen[bytes] | None = None
        self.nat = ["-t", "nat", "-A", "POSTROUTING", "-s", self.subnet, "!", "-o", self.iface, "-j", "MASQUERADE"]
        self.nat_added = False

    def copy_base(self) -> None:
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.root)], check=True)
        subprocess.run(["cp", "-a", str(base_root()), str(self.root)], check=True)
        for inside in [*self.binds.values(), *self.binds_ro.values()]:
            (self.root / inside.lstrip("/")).mkdir(parents=True, exist_ok=True)

    def boot(self, timeout: float = 60) -> None:
        args = ["systemd-nspawn", "-q", "--keep-unit", "--register=no", "-D", str(self.root), "-M", self.name,
                "--network-veth", "-b"]
        args += [f"--bind={host}:{inside}" for host, inside in self.binds.items()]
        args += [f"--bind-ro={host}:{inside}" for host, inside in self.binds_ro.items()]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            if self.pid1() and self.sh("systemctl is-system-running --wait", check=False,
                                       timeout=timeout).stdout.strip() in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the container did not boot: " + self.log.read_text()[-2000:])
            time.sleep(0.5)
        self.network()

    def pid1(self) -> int | None:
        assert self.proc is not None
        found = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        return int(found[0]) if found else None

    def network(self) -> None:
        subprocess.run(["ip", "addr", "replace", f"{self.host_ip}/24", "dev", self.iface], check=True)
        subprocess.run(["ip", "link", "set", self.iface, "up"], check=True)
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
        if not self.nat_added:
            subprocess.run(["iptables", *self.nat], check=True)
            self.nat_added = True
        self.sh(f"ip addr replace {self.ip}/24 dev host0 && ip link set host0 up && "
                f"ip route replace default via {self.host_ip} && "
                f"echo 'nameserver {host_nameserver()}' > /etc/resolv.conf")
        if CA_DIR.is_dir() and any(CA_DIR.glob("*.crt")):
            inside = self.root / CA_DIR.relative_to("/")
            inside.mkdir(parents=True, exist_ok=True)
            for crt in CA_DIR.glob("*.crt"):
                shutil.copyfile(crt, inside / f"host-{crt.name}")
            self.sh("update-ca-certificates >/dev/null")

    def sh(self, script: str, check: bool = True, timeout: float = 900, env: dict[str, str] | None = None,
           input_: str | None = None) -> subprocess.CompletedProcess[str]:
        """bash -c SCRIPT as root inside, with a root login's plain environment (UTF-8 locale)."""
        pid = self.pid1()
        assert pid, "the container is not running"
        base = {"HOME": "/root", "PATH": PATH, "LANG": "C.UTF-8", "TERM": "dumb", "USER": "root", "LOGNAME": "root",
                "SHELL": "/bin/bash",
                **{k: os.environ[k] for k in CA_ENV if os.environ.get(k, "").startswith("/etc/ssl/")}, **(env or {})}
        cmd = ["nsenter", "-t", str(pid), "-a", "env", "-i",
               *[f"{k}={v}" for k, v in base.items()], "bash", "-c", "cd /root || exit\n" + script]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input_, cwd="/",
                              stdin=None if input_ is not None else subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"inside {self.name}: exit {done.returncode}\n$ {script}\n"
                                 f"--- stdout\n{done.stdout[-6000:]}\n--- stderr\n{done.stderr[-6000:]}")
        return done

    def stop(self, timeout: float = 60) -> None:
        """Power off (SIGTERM to nspawn: systemd shuts the container down) and wait."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def wait_exit(self, timeout: float = 90) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def cleanup(self, keep_root: bool = False) -> None:
        self.stop()
        if self.nat_added:
            subprocess.run(["iptables", *self.nat[:2], "-D", *self.nat[3:]], check=False)
            self.nat_added = False
        if not keep_root:
            subprocess.run(["rm", "-rf", "--one-file-system", str(self.root)], check=False)


def quote(*args: str) -> str:
    return " ".join(shlex.quote(a) for a in args)
