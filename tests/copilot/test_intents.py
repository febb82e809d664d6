"""The offline intent router: every kind of request, in plain English and as a slash command."""

from __future__ import annotations

import pytest

from copilot.intents import Reply, ToolCall, route

STATUSES = ("New", "Interested", "Scouting", "Follow Up", "Not Interested", "Converted")


def r(text: str, **context):  # type: ignore[no-untyped-def]
    return route(text, statuses=STATUSES, **context)


@pytest.mark.parametrize(
    ("text", "name", "args"),
    [
        # reading one lead
        ("qualify lead 42", "qualify_lead", {"lead": "42"}),
        ("BANT for #42", "qualify_lead", {"lead": "#42"}),
        ("/qualify 42", "qualify_lead", {"lead": "42"}),
        ("is lead 42 hot?", "check_hot", {"lead": "42"}),
        ("Is Dana Smith a hot lead?", "check_hot", {"lead": "dana smith"}),
        ("how hot is +1 415 555 2671", "check_hot", {"lead": "+1 415 555 2671"}),
        ("draft an intro email for lead 42", "draft_intro_email", {"lead": "42"}),
        ("Write an email to dana@example.com", "draft_intro_email", {"lead": "dana@example.com"}),
        ("/email 42", "draft_intro_email", {"lead": "42"}),
        ("summarise lead 42", "lead_summary", {"lead": "42"}),
        ("Summarize Dana Smith", "lead_summary", {"lead": "Dana Smith"}),
        ("tell me about Dana@Example.com", "lead_summary", {"lead": "Dana@Example.com"}),
        ("what should I do next with 42?", "next_action", {"lead": "42"}),
        ("next step for 42", "next_action", {"lead": "42"}),
        ("/lead 42", "lead_summary", {"lead": "42"}),
        ("#42", "lead_summary", {"lead": "42"}),
        ("(415) 555-2671", "lead_summary", {"lead": "(415) 555-2671"}),
        ("find 415.555.2671", "find_leads", {"query": "415.555.2671"}),
        ("/find Acme", "find_leads", {"query": "Acme"}),
        # lists
        ("my hot leads", "list_leads", {"kind": "hot", "agent": "me"}),
        ("/hot", "list_leads", {"kind": "hot"}),
        ("today's follow-ups", "list_leads", {"kind": "follow_ups"}),
        ("/today", "list_leads", {"kind": "follow_ups"}),
        ("show unassigned leads", "list_leads", {"kind": "unassigned"}),
        ("/unassigned", "list_leads", {"kind": "unassigned"}),
        ("which leads have gone quiet? stale ones", "list_leads", {"kind": "stale"}),
        ("recently created leads", "list_leads", {"kind": "recent"}),
        ("/recent", "list_leads", {"kind": "recent"}),
        ("my leads", "list_leads", {"kind": "mine"}),
        ("leads with status Interested", "list_leads", {"kind": "all", "status": "Interested"}),
        ("follow up leads", "list_leads", {"kind": "follow_ups"}),
        ("Scouting leads", "list_leads", {"kind": "all", "status": "Scouting"}),
        ("whatsapp leads", "list_leads", {"kind": "all", "channel": "whatsapp"}),
        ("leads from instagram", "list_leads", {"kind": "all", "channel": "instagram"}),
        (
            "leads with score between 50 and 80",
            "list_leads",
            {"kind": "all", "score_min": 50, "score_max": 80},
        ),
        ("leads with score over 60", "list_leads", {"kind": "all", "score_min": 61}),
        ("list leads score below 30", "list_leads", {"kind": "all", "score_max": 29}),
        ("hot leads on messenger", "list_leads", {"kind": "hot", "channel": "messenger"}),
        # changes
        (
            "add a note to 42: called, decides Friday",
            "add_note",
            {"lead": "42", "text": "called, decides Friday", "category": "General"},
        ),
        (
            "follow-up note on 42: call back Friday",
            "add_note",
            {"lead": "42", "text": "call back Friday", "category": "Follow-up"},
        ),
        (
            "note for Dana Smith (Objection): price is too high",
            "add_note",
            {"lead": "Dana Smith", "text": "price is too high", "category": "Objection"},
        ),
        (
            "/note 42 Positive Signal: loved the demo",
            "add_note",
            {"lead": "42", "text": "loved the demo", "category": "Positive Signal"},
        ),
        (
            "/note 42 [qualification] budget confirmed",
            "add_note",
            {"lead": "42", "text": "budget confirmed", "category": "Qualification"},
        ),
        ("set status of 42 to Converted", "set_status", {"lead": "42", "status": "Converted"}),
        ("mark 42 as not interested", "set_status", {"lead": "42", "status": "Not Interested"}),
        ("move 42 to follow up", "set_status", {"lead": "42", "status": "Follow Up"}),
        ("/status 42 Scouting", "set_status", {"lead": "42", "status": "Scouting"}),
        ("assign 42 to Mike", "assign_lead", {"lead": "42", "agent": "Mike"}),
        ("reassign lead 42 to Mike Ross", "assign_lead", {"lead": "42", "agent": "Mike Ross"}),
        ("give 42 to me", "assign_lead", {"lead": "42", "agent": "me"}),
        ("unassign 42", "assign_lead", {"lead": "42", "agent": "nobody"}),
        ("/assign 42 Mike", "assign_lead", {"lead": "42", "agent": "Mike"}),
        (
            "move all of Sarah's leads to Mike",
            "reassign_leads",
            {"from_agent": "Sarah", "to_agent": "Mike"},
        ),
        (
            "reassign all leads from Sarah to Mike",
            "reassign_leads",
            {"from_agent": "Sarah", "to_agent": "Mike"},
        ),
        ("move all my leads to Mike", "reassign_leads", {"from_agent": "me", "to_agent": "Mike"}),
        ("/reassign Sarah Mike", "reassign_leads", {"from_agent": "Sarah", "to_agent": "Mike"}),
        ("archive lead 42", "archive_lead", {"lead": "42"}),
        ("/archive 42", "archive_lead", {"lead": "42"}),
        # customers
        (
            "reply to 42: Thanks, I'll call you at 5",
            "reply_to_customer",
            {"lead": "42", "text": "Thanks, I'll call you at 5"},
        ),
        (
            "tell Dana Smith: see you tomorrow",
            "reply_to_customer",
            {"lead": "Dana Smith", "text": "see you tomorrow"},
        ),
        ("/reply 42 On my way", "reply_to_customer", {"lead": "42", "text": "On my way"}),
        ("resume the bot for 42", "resume_bot", {"lead": "42"}),
        ("let the bot handle 42 again", "resume_bot", {"lead": "42"}),
        ("/resume 42", "resume_bot", {"lead": "42"}),
        ("take over 42", "take_over", {"lead": "42"}),
        ("/takeover 42", "take_over", {"lead": "42"}),
        # form fill and notifications
        (
            "/card Jane Doe, CEO at Acme Inc, jane@acme.com",
            "fill_contact_card",
            {"text": "Jane Doe, CEO at Acme Inc, jane@acme.com"},
        ),
        ("/inbox", "my_notifications", {}),
        ("any news?", "my_notifications", {}),
    ],
)
def test_requests_become_tool_calls(text, name, args):  # type: ignore[no-untyped-def]
    intent = r(text)
    assert intent == ToolCall(name, args)


def test_a_pasted_signature_is_a_form_fill() -> None:
    card = "Jane Doe\nHead of Sales | Acme Ltd\njane.doe@acme.co.uk\n+44 20 7946 0958"
    assert r(card) == ToolCall("fill_contact_card", {"text": card})
    assert r("new lead: " + card) == ToolCall("fill_contact_card", {"text": card})


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("is it hot?", "check_hot"),
        ("qualify them", "qualify_lead"),
        ("summarise this lead", "lead_summary"),
        ("draft an intro email", "draft_intro_email"),
        ("what should I do next", "next_action"),
        ("archive it", "archive_lead"),
    ],
)
def test_it_and_this_lead_mean_the_lead_just_discussed(text: str, name: str) -> None:
    assert r(text, focus_lead_id=7) == ToolCall(name, {"lead": "7"})


def test_without_a_lead_in_focus_the_router_asks_which_one() -> None:
    intent = r("is it hot?")
    assert isinstance(intent, Reply) and "Which lead" in intent.text


def test_more_pages_on_through_the_last_list() -> None:
    last = {
        "kind": "hot",
        "status": None,
        "channel": "web",
        "score_min": None,
        "score_max": None,
        "page": 2,
    }
    assert r("more", last_list=last) == ToolCall("list_leads", {**last, "page": 3})
    assert r("page 5", last_list=last) == ToolCall("list_leads", {**last, "page": 5})
    assert isinstance(r("more"), Reply)


def test_a_pending_choice_takes_a_number_an_id_or_an_ordinal() -> None:
    clarify = {
        "tool": "qualify_lead",
        "args": {"lead": "Dana"},
        "arg": "lead",
        "candidates": [12, 30, 44],
    }
    assert r("2", clarify=clarify) == ToolCall("qualify_lead", {"lead": "30"})
    assert r("#44", clarify=clarify) == ToolCall("qualify_lead", {"lead": "44"})
    assert r("the first one", clarify=clarify) == ToolCall("qualify_lead", {"lead": "12"})
    assert r("last", clarify=clarify) == ToolCall("qualify_lead", {"lead": "44"})
    # Anything else is a new request.
    assert r("/hot", clarify=clarify) == ToolCall("list_leads", {"kind": "hot"})


def test_help_greetings_and_nonsense_get_the_help_text() -> None:
    for text in ("help", "/help", "/start", "hello", ""):
        intent = r(text)
        assert isinstance(intent, Reply) and "copilot" in intent.text
    # What the router does not understand gets the closest requests (they need the desk's names).
    assert r("purple elephants dance") == ToolCall(
        "suggest_requests", {"text": "purple elephants dance"}
    )
    assert isinstance(r("/frobnicate 42"), Reply)


def test_usage_is_explained_for_incomplete_slash_commands() -> None:
    for text in ("/note 42", "/reply 42", "/status 42 Purple", "/card", "/find"):
        intent = r(text)
        assert isinstance(intent, Reply), text
