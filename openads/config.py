"""One typed settings object read from the environment, with demo defaults.

Every variable is documented in `.env.example`.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from models.files import SECRET_MODE, private_dir
from models.rules.access import MAX_TOKEN_DAYS, LoginLimits, SessionLimits

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    pass


def _var_dir() -> Path:
    path = Path(os.environ.get("OPENADS_VAR_DIR", ROOT / "var"))
    try:
        return private_dir(path)
    except OSError as exc:  # e.g. the default ./var of a read-only code directory (ProtectSystem=strict)
        raise ConfigError(f"OPENADS_VAR_DIR: cannot create {path} ({exc.strerror}); set OPENADS_VAR_DIR to a "
                          "directory the service may write, e.g. /var/lib/openads (docs/install.md)") from None


def _secret_key(var_dir: Path) -> str:
    """SECRET_KEY from env, else generated once and kept in var/ (so sessions survive restarts).
    The file is created 0600 at once (never readable in between); of two processes starting
    together, the second reads the first one's key."""
    env = os.environ.get("SECRET_KEY")
    if env:
        return env
    key_file = var_dir / "secret_key"
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, SECRET_MODE)
    except FileExistsError:
        return key_file.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"SECRET_KEY is not set and {key_file} cannot be created ({exc.strerror}); set "
                          "SECRET_KEY (openssl rand -hex 32) or make OPENADS_VAR_DIR writable") from None
    with os.fdopen(fd, "w") as out:
        out.write(key)
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
class PushSettings:
    """Web Push to executors' devices (decision 0043): the VAPID key pair (`openads push keys`
    makes one). Private key "" = push not configured (push messages stay pending, logged)."""

    vapid_private_key: str = ""  # base64url of the raw P-256 private key (OPENADS_VAPID_PRIVATE_KEY)
    vapid_public_key: str = ""  # base64url of the uncompressed public point: the app's applicationServerKey
    subject: str = "mailto:openads@localhost"  # who runs this server (the push service may write)
    ttl_seconds: int = 3600
    timeout: float = 10.0

    @property
    def configured(self) -> bool:
        return bool(self.vapid_private_key and self.vapid_public_key)


def push_settings() -> PushSettings:
    return PushSettings(
        vapid_private_key=os.environ.get("OPENADS_VAPID_PRIVATE_KEY", "").strip(),
        vapid_public_key=os.environ.get("OPENADS_VAPID_PUBLIC_KEY", "").strip(),
        subject=os.environ.get("OPENADS_VAPID_SUBJECT") or "mailto:" + os.environ.get("SMTP_FROM", "openads@localhost"),
        ttl_seconds=_int("OPENADS_PUSH_TTL_SECONDS", 3600),
    )


@dataclass(frozen=True)
class SmsSettings:
    """SMS gateway (`openads/providers/sms/`). provider "" = not configured (SMS stay pending)."""

    provider: str = ""  # smsru | smsc | fake
    sender: str = ""  # approved sender name (alpha-name); "" = the gateway's default
    timeout: float = 10.0
    smsru_api_id: str = ""
    smsru_url: str = "https://sms.ru"
    smsc_login: str = ""
    smsc_password: str = ""
    smsc_api_key: str = ""
    smsc_url: str = "https://smsc.ru"


@dataclass(frozen=True)
class SpeechSettings:
    """Speech providers (`openads/providers/speech/`): TTS for prompts, STT for the rating answer."""

    provider: str = "espeak"  # yandex | espeak | fake
    # STT other than the provider's: "" = the provider's own (none for espeak), yandex | fake. The demo
    # sets fake: its Asterisk (the ARI emulator) keeps the resident's words in the recordings.
    recognizer: str = ""
    speechkit_api_key: str = ""
    speechkit_iam_token: str = ""
    speechkit_folder_id: str = ""
    speechkit_voice: str = "alena"
    speechkit_stt_url: str = "https://stt.api.cloud.yandex.net"
    speechkit_tts_url: str = "https://tts.api.cloud.yandex.net"
    timeout: float = 10.0
    espeak_voice: str = "ru"
    prompts_dir: Path = ROOT / "var" / "prompts"


SMS_PROVIDER_NAMES = ("smsru", "smsc", "fake")
SPEECH_PROVIDER_NAMES = ("yandex", "espeak", "fake")
SPEECH_RECOGNIZER_NAMES = ("yandex", "fake")


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _lease_seconds() -> float:
    lease = _float("OPENADS_OUTBOX_LEASE_SECONDS", 300.0)
    if lease < 10:
        raise ConfigError(f"OPENADS_OUTBOX_LEASE_SECONDS must be at least 10 (a send's timeout fits in it), got {lease:g}")
    return lease


def _sms_settings() -> SmsSettings:
    provider = (os.environ.get("SMS_PROVIDER") or "").strip().lower()
    if provider and provider not in SMS_PROVIDER_NAMES:
        raise ConfigError(f"SMS_PROVIDER must be one of {', '.join(SMS_PROVIDER_NAMES)}, got {provider!r}")
    settings = SmsSettings(
        provider=provider,
        sender=os.environ.get("SMS_SENDER", ""),
        timeout=_float("SMS_TIMEOUT", 10.0),
        smsru_api_id=os.environ.get("SMSRU_API_ID", ""),
        smsru_url=(os.environ.get("SMSRU_URL") or "https://sms.ru").rstrip("/"),
        smsc_login=os.environ.get("SMSC_LOGIN", ""),
        smsc_password=os.environ.get("SMSC_PASSWORD", ""),
        smsc_api_key=os.environ.get("SMSC_API_KEY", ""),
        smsc_url=(os.environ.get("SMSC_URL") or "https://smsc.ru").rstrip("/"),
    )
    if provider == "smsru" and not settings.smsru_api_id:
        raise ConfigError("SMS_PROVIDER=smsru needs SMSRU_API_ID")
    if provider == "smsc" and not (settings.smsc_api_key or (settings.smsc_login and settings.smsc_password)):
        raise ConfigError("SMS_PROVIDER=smsc needs SMSC_LOGIN and SMSC_PASSWORD (or SMSC_API_KEY)")
    return settings


def _speech_settings(var_dir: Path) -> SpeechSettings:
    api_key = os.environ.get("SPEECHKIT_API_KEY", "")
    iam_token = os.environ.get("SPEECHKIT_IAM_TOKEN", "")
    # Not set: SpeechKit when it has credentials, else espeak-ng (offline TTS, keypad-only rating).
    provider = (os.environ.get("SPEECH_PROVIDER") or ("yandex" if api_key or iam_token else "espeak")).strip().lower()
    if provider not in SPEECH_PROVIDER_NAMES:
        raise ConfigError(f"SPEECH_PROVIDER must be one of {', '.join(SPEECH_PROVIDER_NAMES)}, got {provider!r}")
    recognizer = (os.environ.get("SPEECH_RECOGNIZER") or "").strip().lower()
    if recognizer and recognizer not in SPEECH_RECOGNIZER_NAMES:
        raise ConfigError(f"SPEECH_RECOGNIZER must be one of {', '.join(SPEECH_RECOGNIZER_NAMES)}, got {recognizer!r}")
    folder_id = os.environ.get("SPEECHKIT_FOLDER_ID", "")
    for name, value in (("SPEECH_PROVIDER", provider), ("SPEECH_RECOGNIZER", recognizer)):
        if value == "yandex" and not (api_key or iam_token):
            raise ConfigError(f"{name}=yandex needs SPEECHKIT_API_KEY (or SPEECHKIT_IAM_TOKEN)")
    if "yandex" in (provider, recognizer) and iam_token and not api_key and not folder_id:
        raise ConfigError("SPEECHKIT_IAM_TOKEN needs SPEECHKIT_FOLDER_ID")
    return SpeechSettings(
        provider=provider,
        recognizer=recognizer,
        speechkit_api_key=api_key,
        speechkit_iam_token=iam_token,
        speechkit_folder_id=folder_id,
        speechkit_voice=os.environ.get("SPEECHKIT_VOICE") or "alena",
        speechkit_stt_url=(os.environ.get("SPEECHKIT_STT_URL") or "https://stt.api.cloud.yandex.net").rstrip("/"),
        speechkit_tts_url=(os.environ.get("SPEECHKIT_TTS_URL") or "https://tts.api.cloud.yandex.net").rstrip("/"),
        timeout=_float("SPEECHKIT_TIMEOUT", 10.0),
        espeak_voice=os.environ.get("ESPEAK_VOICE") or "ru",
        prompts_dir=Path(os.environ.get("OPENADS_PROMPTS_DIR") or var_dir / "prompts"),
    )


@dataclass(frozen=True)
class WebSettings:
    """The web server (`openads web`) and what it trusts; every value has an OPENADS_* variable."""

    threads: int = 16  # request threads per process (the event streams use none)
    read_timeout: int = 15  # seconds for a request's headers, and between two parts of its body
    max_connections: int = 2000  # open connections per process before 503
    sse_per_user: int = 10  # open event streams per user (per process without Redis)
    sse_per_ip: int = 100  # open event streams per client address (per process without Redis)
    # Reverse proxies in front whose X-Forwarded-For/-Proto/-Host are trusted; 0 = none.
    proxy_hops: int = 0
    cookie_secure: bool = False  # the session cookie only over HTTPS
    db_retry_after: int = 5  # seconds a client is told to wait (Retry-After) while the database is down
    # Seconds a request waits for a database another writer holds (SQLite's busy timeout, PostgreSQL's
    # lock_timeout) before it answers 503 with the form as typed (decision 0024).
    db_busy_timeout: float = 5.0


def web_settings(env: Mapping[str, str] | None = None, base_url: str = "") -> WebSettings:
    """The OPENADS_WEB_*, OPENADS_SSE_*, OPENADS_PROXY_HOPS and OPENADS_SESSION_COOKIE_SECURE
    variables (from `env`, default os.environ), validated. The cookie is Secure by default when
    the panel's external address (`base_url`) is https."""
    env = os.environ if env is None else env
    raw_secure = (env.get("OPENADS_SESSION_COOKIE_SECURE") or "").strip().lower()
    return WebSettings(
        threads=_bounded_int(env, "OPENADS_WEB_THREADS", 16, 1, 256),
        read_timeout=_bounded_int(env, "OPENADS_WEB_READ_TIMEOUT", 15, 1, 300),
        max_connections=_bounded_int(env, "OPENADS_WEB_MAX_CONNECTIONS", 2000, 100, 100_000),
        sse_per_user=_bounded_int(env, "OPENADS_SSE_MAX_PER_USER", 10, 1, 1000),
        sse_per_ip=_bounded_int(env, "OPENADS_SSE_MAX_PER_IP", 100, 1, 100_000),
        proxy_hops=_bounded_int(env, "OPENADS_PROXY_HOPS", 0, 0, 5),
        db_retry_after=_bounded_int(env, "OPENADS_WEB_DB_RETRY_AFTER", 5, 1, 600),
        db_busy_timeout=_bounded_float(env, "OPENADS_WEB_DB_BUSY_TIMEOUT", 5.0, 0.1, 600.0),
        cookie_secure=raw_secure in ("1", "true", "yes", "on") if raw_secure else base_url.startswith("https://"),
    )


@dataclass(frozen=True)
class AriCallSettings:
    """How the ARI app places and holds calls (`openads ari`); every value has an ARI_* variable."""

    # Dial string of a resident's number for callbacks: {number} (digits, no plus) and {trunk}.
    outbound_endpoint: str = "PJSIP/{number}@{trunk}"
    # The pjsip.conf endpoint of the operator's trunk (as dialplan/providers/*.conf name it).
    trunk: str = "trunk-operator"
    ring_timeout: int = 30  # seconds a dispatcher's phone rings per attempt
    moh_class: str = "openads"  # musiconhold.conf class of the queue
    voicemail_seconds: int = 120  # longest voice message
    voicemail_silence: int = 5  # silence that ends a voice message
    # Every dispatcher's phone busy, declining or unreachable: ring them all again after this long.
    ring_retry_seconds: float = 5.0
    # How often calls whose channels are gone from Asterisk are looked for and ended (the sweep).
    sweep_seconds: float = 30.0
    # How often `openads ari` writes its heartbeat for the panel's telephony status page (0: never).
    status_seconds: float = 5.0


def _bounded(env: Mapping[str, str], name: str, default: float, low: float, high: float,
             kind: Callable[[str], float], what: str) -> float:
    """`env[name]` parsed with `kind` (int or float) within [low, high]; `default` when unset."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from exc
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {raw}")
    return value


def _bounded_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return int(_bounded(env, name, default, low, high, int, "an integer"))


def _bounded_float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return float(_bounded(env, name, default, low, high, float, "a number of seconds"))


def ari_call_settings(env: Mapping[str, str] | None = None) -> AriCallSettings:
    """The ARI_* call variables (from `env`, default os.environ), validated."""
    env = os.environ if env is None else env
    template = (env.get("ARI_OUTBOUND_ENDPOINT") or "").strip() or AriCallSettings.outbound_endpoint
    if "{number}" not in template or "/" not in template:
        raise ConfigError(f"ARI_OUTBOUND_ENDPOINT must be a dial string with {{number}}, e.g. "
                          f"PJSIP/{{number}}@{{trunk}}, got {template!r}")
    try:
        template.format(number="79160000000", trunk="trunk-operator")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"ARI_OUTBOUND_ENDPOINT may use only {{number}} and {{trunk}}, got {template!r}") from exc
    trunk = (env.get("ARI_TRUNK") or "").strip() or AriCallSettings.trunk
    moh = (env.get("ARI_MOH_CLASS") or "").strip() or AriCallSettings.moh_class
    for name, value in (("ARI_TRUNK", trunk), ("ARI_MOH_CLASS", moh)):
        if any(ch.isspace() or ch in ",;()" for ch in value):
            raise ConfigError(f"{name} must be one word (a pjsip.conf / musiconhold.conf name), got {value!r}")
    return AriCallSettings(
        outbound_endpoint=template,
        trunk=trunk,
        ring_timeout=_bounded_int(env, "ARI_RING_TIMEOUT", 30, 5, 300),
        moh_class=moh,
        voicemail_seconds=_bounded_int(env, "ARI_VOICEMAIL_SECONDS", 120, 10, 600),
        voicemail_silence=_bounded_int(env, "ARI_VOICEMAIL_SILENCE", 5, 1, 60),
        ring_retry_seconds=float(_bounded_int(env, "ARI_RING_RETRY_SECONDS", 5, 1, 300)),
        sweep_seconds=float(_bounded_int(env, "ARI_SWEEP_SECONDS", 30, 5, 3600)),
        status_seconds=float(_bounded_int(env, "ARI_STATUS_SECONDS", 5, 0, 300)),
    )


@dataclass(frozen=True)
class AsteriskCdrSettings:
    """Asterisk's own CDR table (cdr_sqlite3_custom, or cdr_pgsql / cdr_adaptive_odbc into
    PostgreSQL): Asterisk writes it even while `openads ari` is down, so the calls the dialplan
    fallback handled then reach the journal (ari_app/cdr_source.py). url None = not read."""

    url: str | None = None  # SQLAlchemy URL: sqlite:////var/log/asterisk/master.db, postgresql://...
    table: str = "openads_cdr"
    poll_seconds: int = 60


_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def asterisk_cdr_settings(env: Mapping[str, str] | None = None) -> AsteriskCdrSettings:
    """ASTERISK_CDR_URL, ASTERISK_CDR_TABLE, ASTERISK_CDR_POLL_SECONDS (from `env`, default
    os.environ), validated."""
    env = os.environ if env is None else env
    url = (env.get("ASTERISK_CDR_URL") or "").strip() or None
    if url is not None and "://" not in url:
        raise ConfigError(f"ASTERISK_CDR_URL must be a database URL such as sqlite:////var/log/asterisk/master.db "
                          f"or postgresql://..., got {url!r}")
    table = (env.get("ASTERISK_CDR_TABLE") or "").strip() or AsteriskCdrSettings.table
    if not _TABLE_NAME.match(table):
        raise ConfigError(f"ASTERISK_CDR_TABLE must be a table name (letters, digits, _; schema.table), got {table!r}")
    return AsteriskCdrSettings(url=url, table=table,
                               poll_seconds=_bounded_int(env, "ASTERISK_CDR_POLL_SECONDS", 60, 5, 3600))


@dataclass(frozen=True)
class AuthSettings:
    """Logins, panel sessions and API tokens (issue 10, decision 0014)."""

    login: LoginLimits = field(default_factory=LoginLimits)
    sessions: SessionLimits = field(default_factory=SessionLimits)
    password_min_length: int = 10
    api_token_days: int = 365  # lifetime of a new token unless told otherwise; 0 = no expiry
    # Administrators and managers must sign in with a TOTP code (they are sent to enrol until they
    # do). OPENADS_REQUIRE_2FA; on by default, off by default in the demo (decision 0028).
    require_2fa: bool = True


def auth_settings(env: Mapping[str, str] | None = None) -> AuthSettings:
    """OPENADS_SESSION_MINUTES, OPENADS_SESSION_IDLE_MINUTES, OPENADS_LOGIN_*,
    OPENADS_PASSWORD_MIN_LENGTH, OPENADS_API_TOKEN_DAYS and OPENADS_REQUIRE_2FA (from `env`, default
    os.environ), validated."""
    env = os.environ if env is None else env

    def minutes(name: str, default: int, high: int) -> timedelta:
        return timedelta(minutes=_bounded_int(env, name, default, 1, high))

    return AuthSettings(
        login=LoginLimits(
            max_failures=_bounded_int(env, "OPENADS_LOGIN_MAX_FAILURES", 5, 1, 1000),
            ip_max_failures=_bounded_int(env, "OPENADS_LOGIN_IP_MAX_FAILURES", 30, 1, 100000),
            window=minutes("OPENADS_LOGIN_WINDOW_MINUTES", 15, 24 * 60),
            lockout=minutes("OPENADS_LOGIN_LOCKOUT_MINUTES", 15, 7 * 24 * 60),
        ),
        sessions=SessionLimits(
            lifetime=minutes("OPENADS_SESSION_MINUTES", 12 * 60, 31 * 24 * 60),
            idle=minutes("OPENADS_SESSION_IDLE_MINUTES", 120, 31 * 24 * 60),
        ),
        password_min_length=_bounded_int(env, "OPENADS_PASSWORD_MIN_LENGTH", 10, 8, 128),
        api_token_days=_bounded_int(env, "OPENADS_API_TOKEN_DAYS", 365, 0, MAX_TOKEN_DAYS),
        require_2fa=_env_bool(env, "OPENADS_REQUIRE_2FA", not _env_bool(env, "OPENADS_DEMO", False)),
    )


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None
    secret_key: str
    var_dir: Path
    recordings_dir: Path
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    # The outbox worker's journal of sends accepted but not yet recorded (openads/accepted_journal.py).
    outbox_journal: Path | None = None
    # How long a claimed message is the worker's before another round may try it again (a worker
    # killed mid-send): OPENADS_OUTBOX_LEASE_SECONDS, at least 10.
    outbox_lease_seconds: float = 300.0
    max_upload_mb: int = 20
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    base_url: str = "http://127.0.0.1:8080"
    web: WebSettings = field(default_factory=WebSettings)  # the server, quotas, proxy, cookie (docs/web-server.md)
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
    ari_calls: AriCallSettings = field(default_factory=AriCallSettings)
    # New calls registered (caller cards) by a child process of `openads ari` (ari_app/arrivals_process.py).
    ari_arrivals_process: bool = True
    asterisk_cdr: AsteriskCdrSettings = field(default_factory=AsteriskCdrSettings)
    # `openads demo` sets OPENADS_DEMO=1: the call simulator page is served (never in production).
    demo: bool = False
    # OPENADS_ALLOW_SQLITE=1: the services may run on SQLite (the demo, a single-user trial; decision 0026).
    allow_sqlite: bool = False
    # Resident notifications by SMS and the voice robot's speech (issue 4).
    sms: SmsSettings = field(default_factory=SmsSettings)
    speech: SpeechSettings = field(default_factory=SpeechSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    push: PushSettings = field(default_factory=PushSettings)


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
    base_url = os.environ.get("OPENADS_BASE_URL", f"http://{host}:{port}")
    return Settings(
        database_url=database_url,
        redis_url=os.environ.get("REDIS_URL") or None,
        secret_key=_secret_key(var_dir),
        var_dir=var_dir,
        recordings_dir=Path(os.environ.get("OPENADS_RECORDINGS_DIR", ROOT / "recordings")),
        smtp=smtp,
        outbox_journal=Path(os.environ.get("OPENADS_OUTBOX_JOURNAL") or var_dir / "outbox-accepted.jsonl"),
        outbox_lease_seconds=_lease_seconds(),
        max_upload_mb=_int("OPENADS_MAX_UPLOAD_MB", 20),
        web_host=host,
        web_port=port,
        base_url=base_url,
        web=web_settings(base_url=base_url),
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
        ari_calls=ari_call_settings(),
        ari_arrivals_process=_bool("ARI_ARRIVALS_PROCESS", True),
        asterisk_cdr=asterisk_cdr_settings(),
        demo=_bool("OPENADS_DEMO", False),
        allow_sqlite=_bool("OPENADS_ALLOW_SQLITE", False),
        sms=_sms_settings(),
        push=push_settings(),
        speech=_speech_settings(var_dir),
        auth=auth_settings(),
    )


def check_service_database(settings: Settings, service: str) -> None:
    """A long-running service (`openads web`, `worker`, `ari`, `agi`, `ari-watchdog`) refuses SQLite
    unless OPENADS_ALLOW_SQLITE=1 says this is the demo or a single-user trial (decision 0026):
    SQLite lets one writer in at a time, so dispatchers, an import, the worker and the telephony
    wait on each other there and fail with "database is locked" (issue 12). PostgreSQL is production."""
    if settings.allow_sqlite or not settings.database_url.startswith("sqlite"):
        return
    raise ConfigError(
        f"`openads {service}` не запускается на SQLite ({settings.database_url}).\n"
        "SQLite — только для демо и пробы одним пользователем: она пропускает одну запись за раз, и в работе "
        "(несколько диспетчеров, импорт жилфонда, обработчик очереди, телефония) запросы ждут друг друга "
        "и завершаются ошибкой «database is locked». Рабочая база АДС — PostgreSQL: задайте "
        "DATABASE_URL=postgresql://пользователь:пароль@хост:5432/база (docs/install.md). "
        "Для демо или пробы одним пользователем задайте OPENADS_ALLOW_SQLITE=1.\n"
        f"`openads {service}` refuses SQLite: it is for the demo or a single-user trial only (one writer at a "
        "time: concurrent dispatchers, imports, the worker and telephony fail with \"database is locked\"). "
        "Production runs on PostgreSQL: set DATABASE_URL=postgresql://... (docs/install.md), or "
        "OPENADS_ALLOW_SQLITE=1 for a demo or a single-user trial."
    )
