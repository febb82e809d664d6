"""Phone and email normalisation: what a person types becomes one canonical value, or nothing."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberMatcher

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


class InvalidContact(ValueError):
    """A phone number or email that cannot be stored."""


def _ascii_digits(text: str) -> str:
    """Turn any Unicode decimal digit (Arabic-Indic, Persian, fullwidth…) into its ASCII digit."""
    out = []
    for char in text:
        if char.isdigit() and not ("0" <= char <= "9"):
            try:
                out.append(str(unicodedata.digit(char)))
                continue
            except (TypeError, ValueError):
                pass
        out.append(char)
    return "".join(out)


def normalize_phone(raw: str, region: str = "US") -> str:
    """Return the E.164 form of `raw` (national numbers in `region`) or raise InvalidContact."""
    if raw is None:
        raise InvalidContact("no phone number")
    text = _ascii_digits(str(raw)).strip()
    if not text or len(text) > 40:
        raise InvalidContact("not a phone number")
    if not re.search(r"\d", text):
        raise InvalidContact("not a phone number")
    e164 = _e164(text, region)
    if e164 is None:
        where = f" for region {region}" if region else ""
        raise InvalidContact(f"not a valid phone number{where}")
    return e164


@lru_cache(maxsize=4096)
def _e164(text: str, region: str) -> str | None:
    """`normalize_phone`'s parse, kept for the numbers seen last: a customer's every message
    carries the same number, and `phonenumbers` takes some 40 microseconds to parse one."""
    candidates: list[tuple[str, str | None]] = []
    compact = re.sub(r"[\s().\-/\u00a0]", "", text)
    if compact.startswith("00") and compact[2:].isdigit():
        candidates.append(("+" + compact[2:], None))
    candidates.append((text, region))
    if compact.isdigit() and len(compact) >= 8:
        # A full international number typed without its "+" (e.g. a WhatsApp wa_id).
        candidates.append(("+" + compact, None))
    for candidate, candidate_region in candidates:
        try:
            number = phonenumbers.parse(candidate, candidate_region)
        except NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return None


def try_normalize_phone(raw: str | None, region: str = "US") -> str | None:
    if not raw:
        return None
    try:
        return normalize_phone(raw, region)
    except InvalidContact:
        return None


def find_phones(text: str, region: str = "US") -> list[str]:
    """Every valid phone number written in `text`, as E.164, in order and without repeats."""
    if not text:
        return []
    found: list[str] = []
    normalized = _ascii_digits(text)
    for match in PhoneNumberMatcher(normalized, region, leniency=phonenumbers.Leniency.VALID):
        e164 = phonenumbers.format_number(match.number, PhoneNumberFormat.E164)
        if e164 not in found:
            found.append(e164)
    if not found:
        # "00" international prefixes and bare international digit strings the matcher misses.
        for token in re.findall(r"(?<![\w+])(?:\+|00)?\d[\d\s().\-]{6,18}\d(?!\w)", normalized):
            candidate = try_normalize_phone(token, region)
            compact = re.sub(r"\D", "", token)
            if (
                candidate
                and (token.strip().startswith(("+", "00")) or len(compact) >= 11)
                and candidate not in found
            ):
                found.append(candidate)
    return found


def normalize_email(raw: str) -> str:
    """Trim, lower-case the domain and validate; raise InvalidContact when it is not an address."""
    if raw is None:
        raise InvalidContact("no email address")
    email = str(raw).strip().strip("<>").strip()
    if len(email) > 320 or not _EMAIL.match(email):
        raise InvalidContact("not a valid email address")
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


def try_normalize_email(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return normalize_email(raw)
    except InvalidContact:
        return None


def find_emails(text: str) -> list[str]:
    found: list[str] = []
    for token in _EMAIL_IN_TEXT.findall(text or ""):
        email = try_normalize_email(token.rstrip("."))
        if email and email not in found:
            found.append(email)
    return found
