"""Server-rendered dispatcher panel (Russian UI)."""

from flask import Blueprint

bp = Blueprint("panel", __name__, template_folder="../templates")

# Route modules register themselves on `bp`; imported after it exists.
from web.panel import account, calls, console, exchange, incidents, jobs, views  # noqa: E402,F401
from web.panel import admin as _admin  # noqa: E402,F401
from web.panel import admin_telephony as _admin_telephony  # noqa: E402,F401
from web.panel import admin_users as _admin_users  # noqa: E402,F401
from web.panel import analytics as _analytics  # noqa: E402,F401
from web.panel import dispatch as _dispatch  # noqa: E402,F401
from web.panel import inspection as _inspection  # noqa: E402,F401
from web.panel import interruptions as _interruptions  # noqa: E402,F401
from web.panel import recording_logs as _recording_logs  # noqa: E402,F401
from web.panel import settings as _settings  # noqa: E402,F401
