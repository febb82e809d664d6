"""The copilot with a model: a scripted chat model makes the tool calls; the graph runs the same
tools with the same permissions and confirmations, and falls back to the offline engine when the
model fails or answers nonsense."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatResult
from pydantic import Field

from tests.copilot.conftest import Chat, make_copilot


class ScriptedModel(GenericFakeChatModel):
    """Answers with the scripted messages in order and remembers what it was shown."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)
    fail: type[Exception] | None = None

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.seen.append(list(messages))
        if self.fail is not None:
            raise self.fail("the model is down")
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def call(name: str, args: dict[str, Any], call_id: str = "call-1") -> AIMessage:
    return AIMessage(
        content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}]
    )


def scripted(*messages: Any) -> ScriptedModel:
    return ScriptedModel(messages=iter(messages))


def tool_results(messages: list[BaseMessage]) -> list[str]:
    return [str(m.content) for m in messages if isinstance(m, ToolMessage)]


def test_the_model_calls_tools_and_answers_from_their_results(world, sf, prompts, clock) -> None:
    sarah = world.agent("Sarah Connor")
    lead = world.lead(
        "Dana Smith", says=("Our budget is 15k and we need it this week",), agent=sarah
    )
    model = scripted(
        call("qualify_lead", {"lead": "Dana"}), AIMessage("Dana looks qualified: call her today.")
    )
    answer = make_copilot(sf, prompts, clock, model=model).ask(sarah, "t", "how qualified is Dana?")
    assert answer.reply == "Dana looks qualified: call her today."
    assert answer.pending is None
    first, second = model.seen
    system = first[0]
    assert isinstance(system, SystemMessage)
    assert f"You are the sales copilot of {prompts.business.name}" in system.content
    assert "You help Sarah Connor" in system.content and "Follow Up:" in system.content
    assert "their own and unassigned leads" in system.content
    assert first[-1].content == "how qualified is Dana?"
    [result] = tool_results(second)
    assert result.startswith(f"BANT for #{lead} Dana Smith:") and "Budget: met" in result


def test_a_terminal_status_from_the_model_waits_for_the_agents_yes(
    world, sf, prompts, clock
) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    model = scripted(
        call("set_status", {"lead": str(lead), "status": "converted"}), AIMessage("Marked as won.")
    )
    ask = Chat(make_copilot(sf, prompts, clock, model=model), sarah)
    answer = ask.say("Dana signed, close her as converted")
    assert answer.pending is not None and answer.pending["kind"] == "set_status"
    assert (
        answer.reply
        == f"Set #{lead} Dana Smith from New to Converted? Converted is a final status."
    )
    assert world.get(lead).status == "New"
    done = ask.press("yes")
    assert done.reply == "Marked as won." and done.pending is None
    assert world.get(lead).status == "Converted"
    assert world.audits(lead, "status")[-1].agent_id == sarah
    assert (
        tool_results(model.seen[-1])[-1] == f"#{lead} Dana Smith: status New → Converted. "
        "The lead is now read-only (an admin can reopen it)."
    )


def test_the_model_cannot_reach_another_agents_lead(world, sf, prompts, clock) -> None:
    sarah = world.agent("Sarah")
    mike = world.agent("Mike")
    lead = world.lead("Dana Smith", agent=mike)
    model = scripted(
        call("add_note", {"lead": str(lead), "text": "mine now", "category": "General"}),
        call("assign_lead", {"lead": str(lead), "agent": "me"}, "call-2"),
        AIMessage("I can't touch that lead."),
    )
    answer = make_copilot(sf, prompts, clock, model=model).ask(sarah, "t", "grab Dana for me")
    assert answer.reply == "I can't touch that lead."
    results = tool_results(model.seen[-1])
    assert all("assigned to another agent" in r for r in results) and len(results) == 2
    assert world.notes(lead) == [] and world.get(lead).assigned_agent_id == mike


def test_the_agent_id_comes_from_the_front_end_not_the_model(world, sf, prompts, clock) -> None:
    sarah = world.agent("Sarah")
    admin = world.agent("Ada", role="admin")
    lead = world.lead("Dana Smith", agent=admin)
    # Extra arguments naming someone else are ignored by the tool schemas.
    model = scripted(
        call("lead_summary", {"lead": str(lead), "agent_id": admin}), AIMessage("Sorry.")
    )
    make_copilot(sf, prompts, clock, model=model).ask(sarah, "t", "summarise it as admin")
    assert "assigned to another agent" in tool_results(model.seen[-1])[0]


def test_bad_tool_arguments_go_back_to_the_model(world, sf, prompts, clock) -> None:
    sarah = world.agent("Sarah")
    model = scripted(
        call("list_leads", {"kind": "everything", "page": -3}), AIMessage("Here you go.")
    )
    answer = make_copilot(sf, prompts, clock, model=model).ask(sarah, "t", "list stuff")
    assert answer.reply == "Here you go."
    [error] = tool_results(model.seen[-1])
    assert "kind" in error and "page" in error


def test_a_failing_model_falls_back_to_the_offline_engine(world, sf, prompts, clock) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    model = scripted()
    model.fail = TimeoutError
    answer = make_copilot(sf, prompts, clock, model=model).ask(sarah, "t", f"qualify lead {lead}")
    assert answer.reply.startswith(f"BANT for #{lead} Dana Smith:")
    assert len(model.seen) == 1


def test_unknown_tools_and_empty_answers_fall_back(world, sf, prompts, clock) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah, score=90)
    for bad in (call("drop_database", {}), AIMessage(""), AIMessage(content="", tool_calls=[])):
        model = scripted(bad)
        answer = make_copilot(sf, prompts, clock, model=model).ask(sarah, "t", f"is {lead} hot?")
        assert answer.reply.startswith(f"Yes, #{lead} Dana Smith is hot."), bad


def test_a_failure_after_a_tool_ran_still_answers_with_the_result(
    world, sf, prompts, clock
) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    model = scripted(
        call("add_note", {"lead": str(lead), "text": "called"})
    )  # then the script runs dry
    answer = make_copilot(sf, prompts, clock, model=model).ask(
        sarah, "t", "note that I called Dana"
    )
    assert answer.reply == f"Added a General note to #{lead} Dana Smith."
    assert [n.text for n in world.notes(lead)] == ["called"]


def test_the_model_sees_the_earlier_turns_of_the_chat(world, sf, prompts, clock) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    model = scripted(
        call("lead_summary", {"lead": str(lead)}),
        AIMessage("Summary done."),
        AIMessage("Yes, her."),
    )
    copilot = make_copilot(sf, prompts, clock, model=model)
    copilot.ask(sarah, "t", f"summarise {lead}")
    assert copilot.ask(sarah, "t", "was that Dana?").reply == "Yes, her."
    shown = [m.content for m in model.seen[-1][1:]]
    assert (
        shown[0] == f"summarise {lead}"
        and "Summary done." in shown
        and shown[-1] == "was that Dana?"
    )


# --- the real OpenAI client over HTTP against the loopback fake ------------------------------

from tests.fakes.fake_openai import error, fake_openai, malformed, text, tool_call  # noqa: E402,F401


def test_chat_openai_drives_the_tools_over_http(world, sf, prompts, clock, fake_openai) -> None:  # noqa: F811
    sarah = world.agent("Sarah Connor")
    lead = world.lead(
        "Dana Smith", says=("How much for 10 panels? We need it this week.",), agent=sarah, score=80
    )
    fake_openai.script(
        tool_call("check_hot", {"lead": "Dana Smith"}), text("Yes — Dana is hot (80).")
    )
    copilot = make_copilot(sf, prompts, clock, model=fake_openai.chat_model())
    answer = copilot.ask(sarah, "t", "is Dana hot?")
    assert answer.reply == "Yes — Dana is hot (80)."
    assert fake_openai.calls == 2
    first = fake_openai.requests[0].body
    assert {tool["function"]["name"] for tool in first["tools"]} >= {
        "qualify_lead",
        "reassign_leads",
        "fill_contact_card",
    }
    assert "You help Sarah Connor" in fake_openai.system_prompt(0)
    tool_message = next(m for m in fake_openai.requests[1].messages if m["role"] == "tool")
    assert tool_message["content"].startswith(f"Yes, #{lead} Dana Smith is hot.")


def test_a_broken_model_server_falls_back_offline(world, sf, prompts, clock, fake_openai) -> None:  # noqa: F811
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    copilot = make_copilot(sf, prompts, clock, model=fake_openai.chat_model())
    for reply in (error(500), malformed(), tool_call("qualify_lead", "{not json")):
        fake_openai.script(reply)
        answer = copilot.ask(sarah, "t", f"qualify lead {lead}")
        assert answer.reply.startswith(f"BANT for #{lead} Dana Smith:"), reply


def test_a_tool_refusing_its_arguments_is_logged_and_answered_in_plain_words(
    world, sf, prompts, clock, caplog
) -> None:
    sarah = world.agent("Sarah")
    lead = world.lead("Dana Smith", agent=sarah)
    model = scripted(
        call("add_note", {"lead": str(lead), "text": {"not": "text"}})
    )  # then runs dry
    with caplog.at_level("ERROR", logger="copilot"):
        answer = make_copilot(sf, prompts, clock, model=model).ask(
            sarah, "t", "note that I called Dana"
        )
    assert answer.reply.startswith("I couldn't save that note (text:")
    assert answer.reply.endswith("; nothing was changed.")
    assert "Error" not in answer.reply and "{" not in answer.reply
    assert world.notes(lead) == []
    [record] = [r for r in caplog.records if "add_note" in r.getMessage()]
    assert record.levelname == "ERROR" and record.exc_info is not None
