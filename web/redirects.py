"""The one check for every `next` / "back" redirect of the panel (issue 10, item 2: open redirect).

A target is followed only when it is a path on this host *as the browser will read it*. Werkzeug
sends `Location` through `iri_to_uri`, which drops a tab: `/\t/evil.example` went out as
`//evil.example`, a protocol-relative URL to another host. Browsers also drop tabs and newlines
anywhere and read a backslash as a slash. So the target is refused when it holds a backslash,
whitespace or any control/format character (a zero-width space in `java\u200bscript:`), and
otherwise judged after Werkzeug's own normalisation: no scheme, no host, one leading slash — in
the normalised form and in its percent-decoded path (`/%2F%2Fevil` is refused too, whatever a
proxy in front may decode).
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote, urlsplit

from flask import request
from werkzeug.urls import iri_to_uri

MAX_LENGTH = 2000


def _has_unsafe_char(text: str) -> bool:
    return any(ch == "\\" or ch.isspace() or unicodedata.category(ch)[0] == "C" for ch in text)


def _is_local_path(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and url.startswith("/") and not url.startswith("//")


def safe_next(raw: str | None, default: str) -> str:
    """`raw` (normalised as Werkzeug will send it) when it is a path on this host, else `default`."""
    if not raw or len(raw) > MAX_LENGTH or _has_unsafe_char(raw) or not _is_local_path(raw):
        return default
    uri = iri_to_uri(raw)
    if not _is_local_path(uri):
        return default
    path = unquote(urlsplit(uri).path)
    if _has_unsafe_char(path) or not _is_local_path(path):
        return default
    return uri


def next_target(default: str) -> str:
    """The request's `next` (a form field, else the query string), made safe by `safe_next`."""
    return safe_next(request.form.get("next") or request.args.get("next"), default)
