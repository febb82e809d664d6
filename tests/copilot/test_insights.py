"""Offline judgement: BANT with quoted reasons, the hot check, intro emails, contact cards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from copilot.insights import (
    LeadFacts,
    Said,
    hot_check,
    intro_email,
    parse_contact_card,
    qualify,
    quote,
    trend,
)

NOW = datetime(2024, 6, 3, 15, 0, tzinfo=UTC)


def facts(*texts: str, **fields) -> LeadFacts:  # type: ignore[no-untyped-def]
    messages = [
        Said("whatsapp", "customer", text, NOW - timedelta(minutes=len(texts) - i))
        for i, text in enumerate(texts)
    ]
    base = {"id": 1, "name": "Dana Smith", "status": "Interested", "score": 50}
    base.update(fields)
    return LeadFacts(messages=messages, **base)


def verdicts(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {c.name: c.verdict for c in result.criteria}


def test_a_ready_buyer_meets_all_four_and_gets_a_call() -> None:
    result = qualify(
        facts(
            "Hi, I'm the owner of a bakery.",
            "We need panels for the roof. "
            "Our budget is around $15k and we want it done this month.",
        ),
        now=NOW,
    )
    assert verdicts(result) == {
        "Budget": "met",
        "Authority": "met",
        "Need": "met",
        "Timeline": "met",
    }
    assert result.score == 100
    assert result.next_action.startswith("Schedule a call")
    budget = result.criteria[0]
    assert (
        '"We need panels for the roof' not in budget.justification
    )  # the sentence, not the whole message
    assert '"Our budget is around $15k and we want it done this month."' in budget.justification
    assert "whatsapp" in budget.justification


def test_each_verdict_quotes_the_customer() -> None:
    result = qualify(
        facts(
            "How much does the 6 kW package cost?",
            "I need to check with my wife first.",
            "Maybe next year.",
        ),
        now=NOW,
    )
    by_name = {c.name: c for c in result.criteria}
    assert by_name["Budget"].verdict == "partly"
    assert '"How much does the 6 kW package cost?"' in by_name["Budget"].justification
    assert by_name["Authority"].verdict == "partly"
    assert "check with my wife" in by_name["Authority"].justification
    assert by_name["Timeline"].verdict == "not met"
    assert '"Maybe next year."' in by_name["Timeline"].justification
    assert by_name["Need"].verdict == "partly"  # "maybe"


def test_unknown_when_nothing_is_said_and_the_next_action_asks() -> None:
    result = qualify(facts("Hello"), now=NOW)
    assert set(verdicts(result).values()) == {"unknown"}
    assert result.score == 0
    assert "ask about budget, authority, need, timeline" in result.next_action
    assert all(c.justification for c in result.criteria)


def test_a_clear_no_is_disqualified() -> None:
    result = qualify(facts("Thanks but we're not interested anymore."), now=NOW)
    assert verdicts(result)["Need"] == "not met"
    assert result.next_action.startswith("Disqualify")
    stopped = qualify(facts("ok", status="Not Interested"), now=NOW)
    assert verdicts(stopped)["Need"] == "not met"


def test_the_latest_message_wins() -> None:
    result = qualify(
        facts("This is too expensive for us.", "Actually our budget is 20k, send me the invoice."),
        now=NOW,
    )
    assert verdicts(result)["Budget"] == "met"
    flipped = qualify(facts("Our budget is 20k.", "Sorry, that's too expensive."), now=NOW)
    assert verdicts(flipped)["Budget"] == "not met"


def test_lead_fields_fill_the_gaps() -> None:
    result = qualify(
        facts(
            "hello",
            title="Managing Director",
            interests=["battery storage"],
            objections=["price too high"],
        ),
        now=NOW,
    )
    by_name = {c.name: c for c in result.criteria}
    assert (
        by_name["Authority"].verdict == "met"
        and "Managing Director" in by_name["Authority"].justification
    )
    assert (
        by_name["Need"].verdict == "partly" and "battery storage" in by_name["Need"].justification
    )
    assert (
        by_name["Budget"].verdict == "partly"
        and "price too high" in by_name["Budget"].justification
    )


def test_other_languages_count_too() -> None:
    result = qualify(facts("Hola, ¿cuánto cuesta? Lo necesito urgente"), now=NOW)
    assert verdicts(result)["Budget"] == "partly"
    assert verdicts(result)["Timeline"] == "met"


def test_hot_yes_with_score_trend_and_signals() -> None:
    lead = facts(
        "How much for 10 panels? We want it this week.",
        score=82,
        scores=[40, 60, 82],
        score_factors=[
            {"factor": "pricing", "points": 20, "evidence": "How much for 10 panels?"},
            {"factor": "urgency", "points": 15, "evidence": "this week"},
        ],
    )
    verdict = hot_check(lead, now=NOW, hot_score=75, terminal=("Converted", "Not Interested"))
    assert verdict.hot is True
    text = "\n".join(verdict.reasons)
    assert "score 82/100" in text and "rising (+42" in text
    assert 'pricing (+20) — "How much for 10 panels?"' in text
    assert "last customer message 1 min ago" in text


def test_not_hot_below_the_line_or_when_closed() -> None:
    cold = hot_check(
        facts("just looking", score=30, scores=[50, 30]), now=NOW, hot_score=75, terminal=()
    )
    assert cold.hot is False and any("falling" in r for r in cold.reasons)
    closed = hot_check(
        facts("ok", score=90, status="Converted"), now=NOW, hot_score=75, terminal=("Converted",)
    )
    assert closed.hot is False and any("final" in r for r in closed.reasons)


def test_trend() -> None:
    assert trend([]) == ("new", None)
    assert trend([10, 12]) == ("steady", 2)
    assert trend([10, 30, 50, 70, 90]) == ("rising", 60)


def test_intro_email_weaves_in_company_interests_and_objections() -> None:
    lead = facts(
        "hi",
        company="Crumbs Bakery",
        interests=["battery storage", "EV charger"],
        objections=["price"],
    )
    body = (
        "Hi Dana,\n\nThanks for your interest in Sunpeak.\n\nCan we talk this week?\n\nBest,\nSarah"
    )
    email = intro_email(
        lead, subject="Your solar options", body=body, agent_name="Sarah", business_name="Sunpeak"
    )
    assert email.startswith("Subject: Your solar options\n\nHi Dana,")
    paragraphs = email.split("\n\n")
    assert "Crumbs Bakery" in paragraphs[3] and "battery storage and EV charger" in paragraphs[3]
    assert "price came up" in paragraphs[3]
    assert paragraphs[2] == "Thanks for your interest in Sunpeak."
    assert email.endswith("Best,\nSarah")


def test_intro_email_without_personal_details_is_the_template() -> None:
    body = "Hi Dana,\n\nThanks.\n\nBye"
    assert (
        intro_email(facts("hi"), subject="S", body=body, agent_name="A", business_name="B")
        == f"Subject: S\n\n{body}"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Jane Doe\nCEO, Acme Inc\njane@acme.com\n+1 415 555 2671",
            {
                "name": "Jane Doe",
                "title": "CEO",
                "company": "Acme Inc",
                "email": "jane@acme.com",
                "phone": "+14155552671",
            },
        ),
        (
            "Best regards,\n--\nCarlos Mendes | Head of Procurement | Solaris Group\n"
            "T: +44 20 7946 0958\n"
            "carlos.mendes@solaris-group.co.uk\nwww.solaris-group.co.uk",
            {
                "name": "Carlos Mendes",
                "title": "Head of Procurement",
                "company": "Solaris Group",
                "email": "carlos.mendes@solaris-group.co.uk",
                "phone": "+442079460958",
                "website": "www.solaris-group.co.uk",
            },
        ),
        (
            "Name: Amira Haddad\nTitle: Operations Manager\nCompany: Desert Bloom\n"
            "Email: amira@desertbloom.sa\n"
            "Mobile: 050 123 4567",
            {
                "name": "Amira Haddad",
                "title": "Operations Manager",
                "company": "Desert Bloom",
                "email": "amira@desertbloom.sa",
            },
        ),
        (
            "Tom Baker\ntom.baker@gmail.com\n(512) 555-0199",
            {
                "name": "Tom Baker",
                "company": None,
                "email": "tom.baker@gmail.com",
                "phone": "+15125550199",
            },
        ),
        (
            "Lena Vogel\nSenior Engineer\nbrightwatt.de\nlena@brightwatt.de",
            {
                "name": "Lena Vogel",
                "title": "Senior Engineer",
                "email": "lena@brightwatt.de",
                "company": "Brightwatt",
            },
        ),
    ],
)
def test_contact_cards(text: str, expected: dict) -> None:  # type: ignore[type-arg]
    card = parse_contact_card(text, region="US")
    for field, value in expected.items():
        assert getattr(card, field) == value, field


def test_a_card_without_contact_details_is_empty() -> None:
    assert parse_contact_card("thanks, talk soon", region="US").empty


def test_quote_keeps_the_sentence_and_shortens() -> None:
    import re

    text = "Hello there. Our budget is 5k! Anything else?"
    assert quote(text, re.search("budget", text)) == '"Our budget is 5k!"'
    assert quote("x" * 300).endswith('…"') and len(quote("x" * 300)) <= 112
