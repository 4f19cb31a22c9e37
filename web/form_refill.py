"""Put what a user typed back into the form of a page that was drawn without it (decision 0024).

`refill(page_html, ...)` finds the page's POST forms whose action is the address the values were
sent to and gives their controls those values: inputs get `value`, text areas their text, select
options and checkboxes `selected`/`checked` (an unchecked checkbox is not sent, so it comes back
unchecked). A value for which the form has no control goes back as a hidden input, and a select
without the sent option gets it, so sending the form again loses nothing. Password fields and the
CSRF token are never filled (the page's own fresh token stays). A `<details>` holding the form is
opened, and a notice goes at the top of `<main>`.

A streaming rewrite over the standard library's HTML tokenizer: every tag it does not change is
copied as written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from html import escape
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

NEVER_FILLED = ("csrf_token",)
SECRET_PARTS = ("password", "secret", "token", "otp")  # otp: a second-factor or recovery code
UNFILLED_INPUT_TYPES = frozenset({"submit", "button", "image", "reset", "file"})
CHECKED_INPUT_TYPES = frozenset({"checkbox", "radio"})

Attrs = list[tuple[str, str | None]]


def is_secret(name: str) -> bool:
    """A field whose value is never written back into a page (passwords, tokens, secrets)."""
    return name in NEVER_FILLED or any(part in name.lower() for part in SECRET_PARTS)


def _tag(tag: str, attrs: Attrs) -> str:
    parts = [tag] + [name if value is None else f'{name}="{escape(value, quote=True)}"' for name, value in attrs]
    return "<" + " ".join(parts) + ">"


def _get(attrs: Attrs, name: str) -> str | None:
    return next((v for k, v in attrs if k == name), None)


def _set(attrs: Attrs, name: str, value: str | None, present: bool = True) -> Attrs:
    """`attrs` with `name` set to `value` (None: a bare boolean attribute), or removed."""
    out = [(k, v) for k, v in attrs if k != name]
    if present:
        out.append((name, value))
    return out


class _Refill(HTMLParser):
    def __init__(self, *, page_url: str, action: str, values: Iterable[tuple[str, str]], notice: str) -> None:
        super().__init__(convert_charrefs=False)
        self.page_url = page_url
        self.action = _normal(action)
        self.values = [(k, v) for k, v in values if not is_secret(k)]
        self.notice = notice
        self.out: list[str] = []
        self.details: list[tuple[int, Attrs]] = []  # open <details>: (index in out, attributes)
        self.top: dict[str, int] = {}  # "main"/"body" → index in out just after its start tag
        self.matched = 0
        self.in_form = False
        self.queues: dict[str, list[str]] = {}
        self.seen: set[str] = set()
        self.select: tuple[str, set[str], set[str]] | None = None  # name, wanted, found
        self.textarea: str | None = None  # the value replacing the current text area's text

    # --- tags ---------------------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: Attrs) -> None:
        raw = self.get_starttag_text() or _tag(tag, attrs)
        if tag == "details":
            self.details.append((len(self.out), attrs))
        elif tag == "form" and not self.in_form and self._targets(attrs):
            self._enter_form()
            for index, details_attrs in self.details:
                self.out[index] = _tag("details", _set(details_attrs, "open", None))
            raw = _tag("form", _set(attrs, "data-kept", "1"))
        elif self.in_form and tag in ("input", "button", "select", "option", "textarea"):
            raw = self._control(tag, attrs, raw)
        self.out.append(raw)
        if tag in ("main", "body"):
            self.top.setdefault(tag, len(self.out))

    def handle_startendtag(self, tag: str, attrs: Attrs) -> None:
        if self.in_form and tag == "input":
            self.out.append(self._control(tag, attrs, self.get_starttag_text() or _tag(tag, attrs)))
        else:
            self.out.append(self.get_starttag_text() or _tag(tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == "details" and self.details:
            self.details.pop()
        elif tag == "textarea" and self.textarea is not None:
            self.out.append(escape(self.textarea, quote=False))
            self.textarea = None
        elif tag == "select" and self.select is not None:
            name, wanted, found = self.select
            for value in sorted(wanted - found):  # sent, but not offered by this drawing of the page
                if value:
                    self.out.append(_tag("option", [("value", value), ("selected", None)]) + escape(value) + "</option>")
            self.select = None
        elif tag == "form" and self.in_form:
            for name, queue in self.queues.items():
                if name not in self.seen:  # no control for it here: sent again as it was
                    self.out.extend(_tag("input", [("type", "hidden"), ("name", name), ("value", v)]) for v in queue)
            self.in_form = False
        self.out.append(f"</{tag}>")

    # --- everything else is copied as written -------------------------------------------------------

    def handle_data(self, data: str) -> None:
        if self.textarea is None:
            self.out.append(data)

    def handle_entityref(self, name: str) -> None:
        if self.textarea is None:
            self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        if self.textarea is None:
            self.out.append(f"&#{name};")

    def handle_comment(self, data: str) -> None:
        self.out.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.out.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.out.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.out.append(f"<![{data}]>")

    # --- the form -----------------------------------------------------------------------------------

    def _targets(self, attrs: Attrs) -> bool:
        method = (_get(attrs, "method") or "get").lower()
        return method == "post" and _normal(urljoin(self.page_url, _get(attrs, "action") or "")) == self.action

    def _enter_form(self) -> None:
        self.in_form = True
        self.matched += 1
        self.seen = set()
        queues: dict[str, list[str]] = defaultdict(list)
        for name, value in self.values:
            queues[name].append(value)
        self.queues = dict(queues)

    def _control(self, tag: str, attrs: Attrs, raw: str) -> str:
        if tag == "option":
            return self._option(attrs, raw)
        name = _get(attrs, "name")
        if tag == "button":
            if name:
                self.seen.add(name)  # a button's value is chosen by pressing it again
            return raw
        if tag == "input":
            kind = (_get(attrs, "type") or "text").lower()
            if name and kind in UNFILLED_INPUT_TYPES:
                self.seen.add(name)  # a button's value is chosen by pressing it again
            if not name or name in NEVER_FILLED or kind in UNFILLED_INPUT_TYPES:
                return raw
            self.seen.add(name)
            if kind == "password" or is_secret(name):
                return _tag(tag, _set(attrs, "value", None, present=False))
            sent = self.queues.get(name, [])
            if kind in CHECKED_INPUT_TYPES:
                return _tag(tag, _set(attrs, "checked", None, present=(_get(attrs, "value") or "on") in sent))
            if not sent:
                return raw
            return _tag(tag, _set(attrs, "value", sent.pop(0)))
        if not name or name in NEVER_FILLED:
            return raw
        self.seen.add(name)
        sent = self.queues.get(name, [])
        if tag == "select":
            self.select = (name, set(sent), set())
            return raw
        # textarea
        if sent and not is_secret(name):
            self.textarea = sent.pop(0)
        return raw

    def _option(self, attrs: Attrs, raw: str) -> str:
        if self.select is None:
            return raw
        value = _get(attrs, "value")
        if value is None:  # our templates always give options a value; an option without one is left alone
            return raw
        _name, wanted, found = self.select
        chosen = value in wanted and value not in found
        if chosen:
            found.add(value)
        return _tag("option", _set(attrs, "selected", None, present=chosen))

    def result(self) -> str:
        at = self.top.get("main", self.top.get("body", 0))
        return "".join(self.out[:at]) + self.notice + "".join(self.out[at:])


def _normal(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.path.rstrip("/") or "/", parts.query


def refill(page_html: str, *, page_url: str, action: str, values: Iterable[tuple[str, str]],
           notice: str) -> str | None:
    """`page_html` (drawn at `page_url`) with its POST forms to `action` holding `values` (name,
    value pairs as sent, repeated names kept in order) and `notice` (HTML) at the top of its
    `<main>`; None when the page has no such form."""
    parser = _Refill(page_url=page_url, action=action, values=values, notice=notice)
    parser.feed(page_html)
    parser.close()
    if not parser.matched:
        return None
    return parser.result()
