"""One typed settings object read from the environment, with demo defaults.

Every variable is documented in `.env.example`.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    pass


def _var_dir() -> Path:
    path = Path(os.environ.get("OPENADS_VAR_DIR", ROOT / "var"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _secret_key(var_dir: Path) -> str:
    """SECRET_KEY from env, else generated once and kept in var/ (so sessions survive restarts)."""
    env = os.environ.get("SECRET_KEY")
    if env:
        return env
    key_file = var_dir / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _ari_url() -> str | None:
    raw = (os.environ.get("ARI_URL") or "").strip()
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")):
        raise ConfigError(f"ARI_URL must start with http:// or https://, got {raw!r}")
    return raw


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False
    sender: str = "openads@localhost"
    timeout: int = 10


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None
    secret_key: str
    var_dir: Path
    recordings_dir: Path
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    session_minutes: int = 12 * 60
    max_upload_mb: int = 20
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    base_url: str = "http://127.0.0.1:8080"
    # FastAGI server (`openads agi`) and the AMI connection (dispatchers' presence, Cdr events).
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_user: str = "openads"
    ami_secret: str | None = None
    # Asterisk ARI (`openads ari`). ari_url None = not configured (demo runs the emulator).
    ari_url: str | None = None
    ari_user: str = "openads"
    ari_password: str = ""
    ari_app: str = "openads"


def load_settings() -> Settings:
    var_dir = _var_dir()
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{var_dir / 'openads.sqlite3'}"
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://"):]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]
    smtp = SmtpSettings(
        host=os.environ.get("SMTP_HOST", "localhost"),
        port=_int("SMTP_PORT", 25),
        user=os.environ.get("SMTP_USER") or None,
        password=os.environ.get("SMTP_PASSWORD") or None,
        starttls=_bool("SMTP_STARTTLS", False),
        ssl=_bool("SMTP_SSL", False),
        sender=os.environ.get("SMTP_FROM", "openads@localhost"),
        timeout=_int("SMTP_TIMEOUT", 10),
    )
    port = _int("OPENADS_WEB_PORT", 8080)
    host = os.environ.get("OPENADS_WEB_HOST", "127.0.0.1")
    return Settings(
        database_url=database_url,
        redis_url=os.environ.get("REDIS_URL") or None,
        secret_key=_secret_key(var_dir),
        var_dir=var_dir,
        recordings_dir=Path(os.environ.get("OPENADS_RECORDINGS_DIR", ROOT / "recordings")),
        smtp=smtp,
        session_minutes=_int("OPENADS_SESSION_MINUTES", 12 * 60),
        max_upload_mb=_int("OPENADS_MAX_UPLOAD_MB", 20),
        web_host=host,
        web_port=port,
        base_url=os.environ.get("OPENADS_BASE_URL", f"http://{host}:{port}"),
        agi_host=os.environ.get("AGI_HOST", "127.0.0.1"),
        agi_port=_int("AGI_PORT", 4573),
        ami_host=os.environ.get("AMI_HOST", "127.0.0.1"),
        ami_port=_int("AMI_PORT", 5038),
        ami_user=os.environ.get("AMI_USER", "openads"),
        ami_secret=os.environ.get("AMI_SECRET") or None,
        ari_url=_ari_url(),
        ari_user=os.environ.get("ARI_USER") or "openads",
        ari_password=os.environ.get("ARI_PASSWORD", ""),
        ari_app=os.environ.get("ARI_APP") or "openads",
    )
