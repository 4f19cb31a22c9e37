"""Response headers every page and API answer carries, the session cookie's Secure flag, and which
reverse proxy is believed about the client's address (issue 10, item 7).

The Content-Security-Policy is strict: scripts and styles only from our own static files, no
inline <script>, no on...= handlers, no style="" attributes (tests/web/test_security_headers.py
parses every template for them). The panel's JS may still set CSS properties through the CSSOM
(`el.style.setProperty`), which CSP does not restrict.

Behind a reverse proxy `request.remote_addr` is the proxy's address unless ProxyFix trusts its
X-Forwarded-* headers: OPENADS_PROXY_HOPS says how many proxies to trust (0, the default, trusts
none, so a client cannot forge its address into the recordings' access log).
"""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from openads.config import WebSettings

CSP = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))


def csp_with_images(origin: str) -> str:
    """The policy with images allowed from one more origin too (the map's tile server, decision 0044)."""
    return CSP.replace("img-src 'self'", f"img-src 'self' {origin}")


HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP level 2
    # Journal filters (phone numbers, names) travel in query strings: never to another site.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), geolocation=(), microphone=(), payment=(), usb=()",
}
HSTS = "max-age=31536000"


def init_app(app: Flask, web: WebSettings) -> None:
    app.config["SESSION_COOKIE_SECURE"] = web.cookie_secure
    if web.proxy_hops:
        hops = web.proxy_hops
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response
