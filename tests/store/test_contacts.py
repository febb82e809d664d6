"""Phone and email normalisation: what a person types becomes one canonical value, or nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store.contacts import (
    InvalidContact,
    find_emails,
    find_phones,
    normalize_email,
    normalize_phone,
    try_normalize_email,
    try_normalize_phone,
)

# (typed, default region, E.164)
VALID_PHONES = [
    # separators people type
    ("(415) 555-2671", "US", "+14155552671"),
    ("415-555-2671", "US", "+14155552671"),
    ("415.555.2671", "US", "+14155552671"),
    ("415 555 2671", "US", "+14155552671"),
    ("  4155552671  ", "US", "+14155552671"),
    ("+1-415-555-2671", "GB", "+14155552671"),
    ("+1 (415) 555-2671 ext. 12", "US", "+14155552671"),
    # "+" and "00" international prefixes, and the region's own exit code
    ("+44 20 7946 0958", "US", "+442079460958"),
    ("0044 20 7946 0958", "US", "+442079460958"),
    ("00 49 30 901820", "US", "+4930901820"),
    ("001 415 555 2671", "SA", "+14155552671"),
    ("011 44 20 7946 0958", "US", "+442079460958"),
    ("+44 (0)20 7946 0958", "GB", "+442079460958"),
    # national format read with the default region
    ("020 7946 0958", "GB", "+442079460958"),
    ("07911 123456", "GB", "+447911123456"),
    ("0501234567", "SA", "+966501234567"),
    ("030 901820", "DE", "+4930901820"),
    ("01 42 68 53 00", "FR", "+33142685300"),
    # Unicode digits
    ("٠٥٠١٢٣٤٥٦٧", "SA", "+966501234567"),  # Arabic-Indic
    ("+٩٦٦ ٥٠ ١٢٣ ٤٥٦٧", "US", "+966501234567"),
    ("۰۵۰۱۲۳۴۵۶۷", "SA", "+966501234567"),  # Extended Arabic-Indic (Persian/Urdu)
    ("٩٦٦٥٠١٢٣٤٥٦٧", "US", "+966501234567"),
    ("４１５５５５２６７１", "US", "+14155552671"),  # fullwidth
    # bare international digits without "+" (e.g. a WhatsApp wa_id)
    ("966501234567", "US", "+966501234567"),
    ("447911123456", "US", "+447911123456"),
    ("14155552671", "US", "+14155552671"),
    ("4930901820", "DE", "+4930901820"),
]

INVALID_PHONES = [
    ("12345", "US"),
    ("555-0100", "US"),  # no area code
    ("020 7946 0958", "US"),  # a UK national number read as American
    ("4155552671", "SA"),  # an American national number read as Saudi
    ("+999 123456", "US"),  # no such country code
    ("+1 415 555 267", "US"),  # one digit short
    ("9665012345678", "US"),  # one digit too many
    ("000000000", "US"),
    ("call me", "US"),
    ("", "US"),
    ("   ", "US"),
    ("1" * 41, "US"),
    ("2012-01-02", "US"),
]


@pytest.mark.parametrize(("typed", "region", "e164"), VALID_PHONES)
def test_any_typed_format_becomes_e164(typed: str, region: str, e164: str) -> None:
    assert normalize_phone(typed, region) == e164
    assert try_normalize_phone(typed, region) == e164


@pytest.mark.parametrize(("typed", "region"), INVALID_PHONES)
def test_invalid_numbers_are_rejected(typed: str, region: str) -> None:
    with pytest.raises(InvalidContact):
        normalize_phone(typed, region)
    assert try_normalize_phone(typed, region) is None


def test_none_is_not_a_phone() -> None:
    with pytest.raises(InvalidContact):
        normalize_phone(None)  # type: ignore[arg-type]
    assert try_normalize_phone(None) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=50))
def test_normalize_phone_never_crashes_and_only_returns_e164(text: str) -> None:
    try:
        value = normalize_phone(text, "US")
    except InvalidContact:
        return
    assert value.startswith("+") and value[1:].isdigit() and len(value) <= 16
    assert normalize_phone(value, "US") == value  # idempotent


@pytest.mark.parametrize(
    ("text", "region", "found"),
    [
        ("call me on 0501234567 after 5", "SA", ["+966501234567"]),
        ("my number: +44 20 7946 0958.", "US", ["+442079460958"]),
        ("whatsapp 00966501234567 please", "US", ["+966501234567"]),
        ("رقمي ٠٥٠١٢٣٤٥٦٧ شكرا", "SA", ["+966501234567"]),
        ("home (415) 555-2671, work 415 555 2672", "US", ["+14155552671", "+14155552672"]),
        ("415-555-2671 or (415) 555-2671", "US", ["+14155552671"]),
        ("order 12345 shipped on 2024-03-01", "US", []),
        ("abc+14156667777def", "US", []),
        ("", "US", []),
    ],
)
def test_find_phones_in_text(text: str, region: str, found: list[str]) -> None:
    assert find_phones(text, region) == found


@pytest.mark.parametrize(
    ("typed", "normal"),
    [
        ("dana@example.com", "dana@example.com"),
        ("  Dana@Example.COM ", "Dana@example.com"),  # local part keeps its case, domain lowered
        ("<sales@acme.co.uk>", "sales@acme.co.uk"),
        ("first.last+tag@sub.example.org", "first.last+tag@sub.example.org"),
    ],
)
def test_emails_are_trimmed_and_domain_lowercased(typed: str, normal: str) -> None:
    assert normalize_email(typed) == normal


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "dana",
        "dana@",
        "@example.com",
        "dana@example",
        "da na@example.com",
        "dana@@example.com",
        "dana@-example.com",
        "dana@example..com",
        "a" * 310 + "@example.com",
        "dana@exa mple.com",
    ],
)
def test_invalid_emails_are_rejected(typed: str) -> None:
    with pytest.raises(InvalidContact):
        normalize_email(typed)
    assert try_normalize_email(typed) is None


def test_find_emails_in_text() -> None:
    text = "write to Dana@Example.com or sales@acme.io. Not me@localhost"
    assert find_emails(text) == ["Dana@example.com", "sales@acme.io"]
