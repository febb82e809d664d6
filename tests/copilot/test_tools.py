"""The copilot's tools as a list: the model is offered exactly the listed tools, and the tools
change leads through the business rules of `store.domain` (which status locks a lead comes from
the admin's statuses file, not from its name)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage
from pydantic import Field

from bot import load_prompts
from copilot.tools import OFFLINE_TOOLS, TOOLS
from tests.conftest import REPO_ROOT
from tests.copilot.conftest import Chat, make_copilot
from tests.copilot.test_copilot_model import ScriptedModel


class RecordingModel(ScriptedModel):
    """A scripted model that remembers the names of the tools it was offered."""

    offered: list[str] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> RecordingModel:  # type: ignore[override]
        self.offered = [tool.name for tool in tools]
        return self


def prompts_where(tmp_path: Path, edit: Any) -> Any:
    """The shipped prompt files with statuses.yaml changed by `edit(text) -> text`."""
    folder = tmp_path / "prompts"
    shutil.copytree(REPO_ROOT / "prompts", folder)
    statuses = folder / "statuses.yaml"
    statuses.write_text(edit(statuses.read_text(encoding="utf-8")), encoding="utf-8")
    return load_prompts(folder)


def test_the_model_is_offered_the_listed_tools_in_order(world, sf, prompts, clock) -> None:
    sarah = world.agent("Sarah")
    model = RecordingModel(messages=iter([AIMessage("Hello Sarah.")]))
    assert (
        make_copilot(sf, prompts, clock, model=model).ask(sarah, "t", "hi").reply == "Hello Sarah."
    )
    assert model.offered == [tool.name for tool in TOOLS]
    assert len(set(model.offered)) == len(TOOLS)
    assert not {tool.name for tool in OFFLINE_TOOLS} & set(model.offered)


def test_a_status_marked_locks_makes_the_lead_read_only_whatever_its_name(
    world, sf, clock, tmp_path
) -> None:
    def scouting_locks_converted_does_not(text: str) -> str:
        text = text.replace("    locks: true\n", "")
        return re.sub(
            r"(  - name: Scouting\n(?:    .*\n)*?    terminal: false\n)",
            r"\1    locks: true\n",
            text,
            count=1,
        )

    prompts = prompts_where(tmp_path, scouting_locks_converted_does_not)
    assert [s.name for s in prompts.statuses if s.locks] == ["Scouting"]
    sarah = world.agent("Sarah")
    scouted, converted = world.lead("Dana Smith", agent=sarah), world.lead("Ann Lee", agent=sarah)
    ask = Chat(make_copilot(sf, prompts, clock), sarah)

    assert ask(f"set {scouted} to Scouting") == (
        f"#{scouted} Dana Smith: status New → Scouting. "
        "The lead is now read-only (an admin can reopen it)."
    )
    assert world.get(scouted).locked
    assert ask(f"set {scouted} to Interested") == (
        f"Lead #{scouted} was converted and is read-only; an admin can reopen it."
    )

    ask(f"mark {converted} as converted")
    assert ask("yes") == f"#{converted} Ann Lee: status New → Converted."
    assert not world.get(converted).locked
