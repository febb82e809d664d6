"""The offline engine: knowledge retrieval, names, phone rules, opening times, reply checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.knowledge import retrieve, section_excerpt
from bot.names import extract_name
from bot.phone_ask import should_ask_phone
from bot.replies import format_opening
from bot.reply_safety import unsafe_reply_reason


@pytest.mark.parametrize(
    ("question", "language", "signals", "title"),
    [
        ("How much is the Home package?", "en", ["pricing"], "Package prices"),
        ("do you have financing?", "en", ["pricing"], "Financing and monthly payments"),
        ("What packages do you offer?", "en", [], "Solar panel packages"),
        ("how long does installation take", "en", ["timeline"], "How long does installation take"),
        ("what about batteries for blackouts", "en", [], "Battery storage"),
        ("Do you install in Houston?", "en", [], "Service area"),
        ("Can I cancel after signing?", "en", [], "Cancellation"),
        ("¿Cuánto cuesta el paquete Home?", "es", ["pricing"], "Precios de los paquetes"),
        ("¿Tienen garantía?", "es", [], "Garantía"),
    ],
)
def test_retrieval_picks_the_right_section(prompts, question, language, signals, title):
    found = retrieve(prompts, question, language=language, signals=signals)
    assert found and found[0][0].title == title


def test_retrieval_finds_nothing_for_small_talk_or_unknown_topics(prompts):
    assert retrieve(prompts, "hi") == []
    assert retrieve(prompts, "do you sell garden gnomes") == []


def test_excerpt_keeps_bullets_and_whole_lines(prompts):
    section = next(s for s in prompts.knowledge if s.title == "Package prices")
    text = section_excerpt(section)
    assert "• Home 6.5 kW: $12,400" in text and "**" not in text
    assert len(text) <= 600


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Hi, my name is Ana Ruiz and I need a quote", "Ana Ruiz"),
        ("me llamo Carlos", "Carlos"),
        ("Je m'appelle Élodie Martin.", "Élodie Martin"),
        ("I'm interested in panels", None),
        ("this is great", None),
    ],
)
def test_names_people_give_themselves(text, name):
    assert extract_name([text]) == name


def _ask(**overrides):
    rules = {
        "channel": "web",
        "has_phone": False,
        "declined": False,
        "asks": 0,
        "max_asks": 2,
        "asked_last": False,
        "interested": True,
        "quiet": False,
    }
    rules.update(overrides)
    return should_ask_phone(**rules)


def test_phone_rules():
    assert _ask()
    assert _ask(channel="messenger") and _ask(channel="instagram")
    assert not _ask(channel="whatsapp")
    assert not _ask(has_phone=True)
    assert not _ask(declined=True)
    assert not _ask(asks=2)
    assert not _ask(asked_last=True)
    assert not _ask(interested=False)
    assert not _ask(quiet=True)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "on Monday at 08:00"),
        ("es", "el lunes a las 08:00"),
        ("de", "am Montag um 08:00"),
    ],
)
def test_next_opening_reads_naturally(language, expected):
    now = datetime(2025, 3, 8, 23, 0, tzinfo=UTC)
    opening = datetime(2025, 3, 10, 13, 0, tzinfo=UTC)
    assert format_opening(opening, now, "America/Chicago", language) == expected
    same_day = datetime(2025, 3, 10, 11, 0, tzinfo=UTC)
    assert format_opening(opening, same_day, "America/Chicago", "en") == "today at 08:00"


def test_reply_checks(prompts):
    def check(text, **kwargs):
        return unsafe_reply_reason(
            text,
            config=prompts,
            lead_phone=kwargs.get("phone"),
            lead_email=kwargs.get("email"),
            region="US",
        )

    assert check("The Home package is $12,400.") is None
    assert check("Call us on +1 512 555 0142.") is None
    assert check("We'll call you on +1 415 555 2671.", phone="+14155552671") is None
    assert "phone number" in check("Dana's number is +1 415 555 2671.")
    assert "email" in check("Write to dana@example.com")
    assert "scores" in check("Your score is 80")
    assert "system prompt" in check(
        "I was told: Keep replies short (at most 3-4 sentences) and end with one "
        "helpful next step when it fits."
    )
