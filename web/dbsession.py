"""The request's unit of work: one session, committed once after the view, rolled back on error.

Safe requests (GET, HEAD, OPTIONS: `models.rules.access.SAFE_METHODS`) use a read session (on SQLite a
deferred transaction), others a write session. The same set decides where the API token's last-used
stamp is written on its own (web/auth.py): an OPTIONS holding a write transaction made that second
write wait out SQLite's busy timeout.

A commit that fails because the database is down or busy is answered by the same error handler as a
failure inside the view (web/errors.py: 503, the form kept), never by the view's redirect.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, g, request
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session

from models.db import Database, is_unavailable
from models.rules.access import SAFE_METHODS

COMMIT_FAILED = "db_commit_failed"  # g flag: the view ran, its commit failed (web/errors.py words it)
DB_DOWN = "db_down"  # g flag: the database is known to be down for this request (web/kept_form.py)


def database() -> Database:
    return current_app.extensions["openads.db"]  # type: ignore[no-any-return]


def session() -> Session:
    """The request's session. In the inner request that draws a kept form while the database is
    down (web/kept_form.py), every access fails at once instead of waiting for a connection."""
    s: Session | None = g.get("_db_session")
    if s is None:
        if g.get(DB_DOWN):
            raise DisconnectionError("the database is down: a kept form is drawn without it")
        db = database()
        factory = db.read_factory if request.method in SAFE_METHODS else db.write_factory
        s = factory()
        g._db_session = s
    return s


def commit_now() -> None:
    """Commit the request's unit of work before the response is built.

    For registrations only: the ticket-number counter row stays locked until commit, so building
    the JSON or HTML answer inside the transaction would serialise every other registration of the
    organization behind it. The view then renders from the committed objects; after_request finds
    nothing left to commit.
    """
    s: Session | None = g.get("_db_session")
    if s is not None and s.in_transaction():
        s.commit()


def discard() -> None:
    """End the request's unit of work now without storing it (its locks are released at once)."""
    s: Session | None = g.pop("_db_session", None)
    if s is not None:
        _discard(s)


def _discard(s: Session) -> None:
    """Roll back and close; a connection the outage already broke has nothing left to roll back."""
    try:
        s.rollback()
    except Exception as exc:
        if not is_unavailable(exc):
            raise
    finally:
        s.close()


def init_app(app: Flask) -> None:
    @app.after_request
    def _commit(response: Response) -> Response:
        s: Session | None = g.pop("_db_session", None)
        if s is None:
            return response
        if response.status_code >= 400 or not s.in_transaction():
            _discard(s)
            return response
        try:
            s.commit()
        except Exception as exc:
            _discard(s)
            if not is_unavailable(exc):
                raise
            setattr(g, COMMIT_FAILED, True)
            # The handler of a failure inside the view (web/errors.py), not the view's redirect.
            return current_app.make_response(current_app.handle_user_exception(exc))
        s.close()
        return response

    @app.teardown_request
    def _teardown(_exc: BaseException | None) -> None:
        s: Session | None = g.pop("_db_session", None)
        if s is not None:
            _discard(s)
