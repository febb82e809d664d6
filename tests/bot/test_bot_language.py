"""The customer's language: detected per message among the business's languages plus English, kept
on the conversation (a short or ambiguous message keeps it), and the language every reply is
written in, by the offline engine and by the model."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot import load_prompts
from bot.language import detect_language
from store.models import Conversation
from tests.bot.support import copy_prompts

LANGUAGES = ("en", "es", "fr", "de", "pt", "ar")


@pytest.mark.parametrize(
    ("text", "current", "language", "clear"),
    [
        ("Hola, ¿cuánto cuesta el paquete Home?", None, "es", True),
        ("Combien coûte le pack Home ?", None, "fr", True),
        ("Wie lange dauert die Installation?", None, "de", True),
        ("Quanto custa o pacote Plus com bateria?", "es", "pt", True),
        ("كم سعر البطارية؟", "en", "ar", True),
        ("Do you install in San Antonio?", "es", "en", True),
        ("Hola", None, "es", True),  # a greeting decides for a new conversation
        ("ok", "es", "es", False),  # too short to change anything
        ("Gracias!", "en", "en", False),
        ("Quanto custa?", "es", "es", False),
        ("12345 67890", "fr", "fr", False),  # no letters
    ],
)
def test_detection_switches_only_on_a_clear_message(text, current, language, clear):
    found = detect_language([text], languages=LANGUAGES, current=current, default="en")
    assert (found.language, found.clear) == (language, clear)


def test_detection_is_restricted_to_the_business_languages_plus_english():
    spanish = "Hola, ¿cuánto cuesta el paquete Home con batería?"
    found = detect_language([spanish], languages=("fr",), current=None, default="fr")
    assert found.language in ("fr", "en")
    arabic = detect_language(["كم سعر البطارية؟"], languages=("en",), current=None, default="en")
    assert arabic.language == "en"


def _conversation_language(chat: Any, sender: str = "visitor-1") -> str | None:
    with chat.session_factory() as session:
        lead = chat.lead(sender=sender)
        return session.scalar(select(Conversation.language).where(Conversation.lead_id == lead.id))


def test_the_conversation_keeps_its_language_until_the_customer_clearly_switches(chat):
    first = chat.say("Hola, ¿qué pasa con los paneles en los días nublados?")
    assert first[0].language == "es" and "días nublados" in first[0].text
    assert _conversation_language(chat) == "es"

    second = chat.say("¿y la garantía?")
    assert second[0].language == "es" and "25 años" in second[0].text
    short = chat.say("ok")
    assert short[0].language == "es"
    assert _conversation_language(chat) == "es"

    switched = chat.say("Sorry, I prefer English. Do I need to clean the panels?")
    assert switched[0].language == "en" and "CarePlan" in switched[0].text
    assert _conversation_language(chat) == "en"


def test_each_reply_says_its_language_source_and_sections(chat):
    reply = chat.say("What does the Plus 8 kW with battery cost?")[0]
    assert (reply.language, reply.source, reply.knowledge) == ("en", "offline", ("package-prices",))
    assert "$21,500" in reply.text and "$8,900" not in reply.text
    small_talk = chat.say("thanks")[0]
    assert small_talk.knowledge == ()


def test_the_model_is_told_the_language_and_its_reply_is_marked_as_the_models(
    make_chat, fake_openai
):
    from tests.bot.test_bot_llm import answer

    fake_openai.respond_with(
        lambda body: answer(language="de", reply="Das Home-Paket kostet 12.400 $.")
    )
    chat = make_chat(model=fake_openai.chat_model())
    reply = chat.say("Guten Tag, was kostet das Home-Paket bei Ihnen?")[0]
    system = fake_openai.system_prompt()
    assert "Write your reply in German" in system and '"language" to "de"' in system
    assert "## Preise > Paketpreise" in system  # the German section, not the English one
    assert reply.text.startswith("Das Home-Paket kostet 12.400 $.")
    assert (reply.language, reply.source) == ("de", "model")
    assert "package-prices" in reply.knowledge


def test_a_model_reply_in_another_language_than_asked_falls_back_to_the_offline_one(
    make_chat, fake_openai
):
    from tests.bot.test_bot_llm import answer

    fake_openai.respond_with(lambda body: answer(language="en"))
    chat = make_chat(model=fake_openai.chat_model())
    reply = chat.say("Bonjour, combien coûte le pack Home ?")[0]
    assert (reply.language, reply.source) == ("fr", "offline")
    assert "12 400 $" in reply.text and answer()["reply"] not in reply.text


def test_a_section_missing_in_the_customers_language_comes_in_english_with_a_note(
    make_chat, tmp_path
):
    directory = copy_prompts(tmp_path)
    (directory / "knowledge" / "heat-pumps.md").write_text(
        "# Heat pumps {#heat-pumps}\nkeywords: heat pump, heating\n"
        "We install air-to-water heat pumps from $7,900 installed.\n",
        encoding="utf-8",
    )
    chat = make_chat(config=load_prompts(directory))
    reply = chat.say("Hola, ¿instalan bombas de calor (heat pumps)?")[0]
    assert reply.language == "es" and reply.knowledge == ("heat-pumps",)
    assert "Por ahora solo tengo esta información en inglés:" in reply.text
    assert "air-to-water heat pumps from $7,900" in reply.text
