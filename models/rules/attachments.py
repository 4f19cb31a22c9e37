"""The content type a ticket's file is kept and served with (issue 10, item 10).

Files are always served as downloads (`Content-Disposition: attachment`, `nosniff`); on top of
that only passive types keep the type the uploader's browser declared. Anything that a browser
could run — HTML, SVG, XML (may carry script), JavaScript, or a type we do not know — is kept and
served as `application/octet-stream`, also when only the file name says so (`photo.svg` declared
`image/png`). The upload is accepted either way: a resident's SVG floor plan is evidence too.
"""

from __future__ import annotations

from pathlib import PurePath

OCTET_STREAM = "application/octet-stream"

PASSIVE_TYPES = frozenset({
    "image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff", "image/heic", "image/heif",
    "application/pdf", "text/plain", "text/csv",
    "application/msword", "application/vnd.ms-excel", "application/rtf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
    "application/zip",
})
PASSIVE_PREFIXES = ("audio/", "video/")

# Extensions a browser or the desktop opens as a page or a script whatever the declared type.
ACTIVE_SUFFIXES = frozenset({
    ".html", ".htm", ".xhtml", ".xht", ".shtml", ".mht", ".mhtml", ".svg", ".svgz", ".xml", ".xsl", ".xslt",
    ".js", ".mjs", ".hta", ".swf",
})


def safe_content_type(declared: str | None, filename: str) -> str:
    """`declared` (without parameters, lower-cased) if it is passive and the name is not active,
    else `application/octet-stream`."""
    mime = (declared or "").split(";", 1)[0].strip().lower()
    if PurePath(filename or "").suffix.lower() in ACTIVE_SUFFIXES:
        return OCTET_STREAM
    if mime in PASSIVE_TYPES or (mime.startswith(PASSIVE_PREFIXES) and "xml" not in mime):
        return mime
    return OCTET_STREAM
