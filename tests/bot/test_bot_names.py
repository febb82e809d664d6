"""Names and companies: from what the customer says, in every shipped language, and from the
channel's profile; a name an agent typed is never overwritten."""

from __future__ import annotations

import pytest

from bot.names import extract_company, extract_name
from store.leads import get_lead, update_lead
from tests.bot.support import Chat


def test_a_full_name_and_a_phone_in_one_message_are_both_kept(chat: Chat) -> None:
    chat.say("Hi, I'm Maria Lopez, my number is +1 512 555 0199")
    lead = chat.lead()
    assert lead.name == "Maria Lopez" and lead.phone == "+15125550199"


@pytest.mark.parametrize(
    ("text", "name", "company"),
    [
        ("Hi, I'm Dana Whitfield, how much is a 6 kW system?", "Dana Whitfield", None),
        (
            "Hello, this is Sam Ortiz from Ortiz Roofing, do you do commercial?",
            "Sam Ortiz",
            "Ortiz Roofing",
        ),
        ("Hola, me llamo Lucía Fernández y quiero un presupuesto", "Lucía Fernández", None),
        ("Bonjour, je m'appelle Élodie Martin, c'est combien ?", "Élodie Martin", None),
        ("Hallo, ich heiße Jonas Weber. Was kostet eine Batterie?", "Jonas Weber", None),
        ("Olá, meu nome é João Silva, quanto custa?", "João Silva", None),
        ("مرحبا، اسمي أحمد", "أحمد", None),
        ("I'm Priya, I work at Brightline Logistics", "Priya", "Brightline Logistics"),
    ],
)
def test_what_customers_say_about_themselves_is_kept(
    chat: Chat, text: str, name: str, company: str | None
) -> None:
    chat.say(text)
    lead = chat.lead()
    assert lead.name == name
    assert lead.company == company


def test_the_whatsapp_profile_names_the_lead_until_the_customer_says_otherwise(
    chat: Chat,
) -> None:
    chat.say("Hi there", channel="whatsapp", sender="15125550123", name="Mari ☀️")
    assert chat.lead("whatsapp", "15125550123").name == "Mari ☀️"
    chat.clock.advance(minutes=1)
    chat.say(
        "I'm Mariana Costa by the way", channel="whatsapp", sender="15125550123", name="Mari ☀️"
    )
    assert chat.lead("whatsapp", "15125550123").name == "Mariana Costa"
    # A later profile name never replaces what the customer said.
    chat.clock.advance(minutes=1)
    chat.say("thanks", channel="whatsapp", sender="15125550123", name="M")
    assert chat.lead("whatsapp", "15125550123").name == "Mariana Costa"


def test_a_name_an_agent_typed_is_never_overwritten(chat: Chat) -> None:
    chat.say("hello")
    lead = chat.lead()
    with chat.session_factory.begin() as session:
        update_lead(
            get_lead(lead.id, session=session),
            {"name": "Robert Kline (landlord)", "company": "Kline Rentals"},
            session=session,
            actor="agent",
        )
    chat.clock.advance(minutes=1)
    chat.say("this is Bob from Acme Holdings, any news?")
    lead = chat.lead()
    assert lead.name == "Robert Kline (landlord)" and lead.company == "Kline Rentals"


@pytest.mark.parametrize(
    "text",
    [
        "I'm interested in panels",
        "I'm in Austin",
        "I'm free at 5pm",
        "this is great",
        "I'm So excited",
    ],
)
def test_phrases_that_are_not_names_or_companies(text: str) -> None:
    assert extract_name([text]) is None
    assert extract_company([text]) is None
