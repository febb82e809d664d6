"""Text as it may be stored: what senders, agents, files and models hand over, cleaned once at the
edge. NUL characters go (PostgreSQL cannot store them and nobody means them), lone UTF-16
surrogates (a JSON "\\ud800" escape, which no encoding can write) become U+FFFD, and text is put in
NFC so that one name typed two ways is one name."""

from __future__ import annotations

import unicodedata
from typing import Any

REPLACEMENT = "\ufffd"


def clean_text(value: str) -> str:
    """`value` without NUL, with each lone surrogate replaced by U+FFFD, in NFC."""
    if value.isascii():
        return value.replace("\x00", "") if "\x00" in value else value
    value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A valid high+low pair (as a CESU-8 or surrogate-escaped decoder leaves it) becomes its
        # character; a lone half cannot be written anywhere and becomes U+FFFD.
        value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return unicodedata.normalize("NFC", value)


def clean_optional(value: str | None) -> str | None:
    return clean_text(value) if isinstance(value, str) else value


def may_need_cleaning(document: bytes) -> bool:
    """Whether the strings of this JSON document may need `clean_text` once decoded: False when
    it is UTF-8 (no NUL byte: not UTF-16 or UTF-32, which `json.loads` also reads) all in ASCII
    without a \\u escape, for then every string (keys too) decodes to ASCII with no NUL (JSON
    allows no raw control character in a string) and `clean_json` would return it as it is."""
    return not document.isascii() or b"\\u" in document or b"\x00" in document


def clean_json(value: Any) -> Any:
    """A decoded JSON value with every string in it (keys too) cleaned by `clean_text`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(item) for item in value]
    return value
