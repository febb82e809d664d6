"""Each workspace answers with its own prompts: `WorkspacePrompts` gives the configuration of the
workspace in force (the first's is LEADDESK_PROMPTS_DIR, workspace <slug>'s is
LEADDESK_PROMPTS_DIR/<slug>/ over the shipped defaults, file by file), and a conversation's job
runs in the conversation's workspace whichever is in force when it starts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import BotService, LocalOutbox
from bot.config import DEFAULT_PROMPTS_DIR, PromptError
from bot.reload import CONFIG_DIRS, IGNORED_DIRS, WorkspacePrompts
from store.messages import Inbound, conversation_workspace
from store.models import Message, Workspace
from store.tenancy import FIRST_WORKSPACE, in_workspace
from store.workspaces import RESERVED_SLUGS, WorkspaceError, create_workspace, get_workspace
from tests.bot.support import Clock
from tests.prompts.conftest import edit

PHONE = "+15125550199"  # the same customer writes to both businesses
ACME = 2


def add_workspace(
    session_factory: sessionmaker[Session], workspace_id: int, slug: str, name: str
) -> int:
    with session_factory.begin() as session:
        # An explicit id: on PostgreSQL the emptied test database restarts the ids at 1.
        session.add(Workspace(id=workspace_id, slug=slug, name=name, active=True))
    return workspace_id


def write_acme_prompts(base: Path) -> Path:
    """Workspace "acme": only its business.yaml and its knowledge base; the rest is shipped."""
    own = base / "acme"
    own.mkdir()
    shutil.copy(DEFAULT_PROMPTS_DIR / "business.yaml", own / "business.yaml")
    edit(own / "business.yaml", "name: Sunpeak Solar", "name: Acme Roofing")
    edit(own / "business.yaml", "timezone: America/Chicago", "timezone: Europe/Madrid")
    (own / "knowledge").mkdir()
    (own / "knowledge" / "faq.md").write_text(
        "# Frequently asked questions\n\n"
        "## How long does installation take {#installation-time}\n"
        "keywords: timeline, how long, weeks, installation time\n"
        "A new Acme roof goes on in three working days, scaffolding included.\n",
        encoding="utf-8",
    )
    return own


def slugs(session_factory: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    def slug_of(workspace_id: int) -> str | None:
        with session_factory() as session:
            found = get_workspace(workspace_id, session=session)
            return found.slug if found is not None else None

    return slug_of


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """The first workspace's prompts: a copy of the shipped ones."""
    target = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, target, ignore=shutil.ignore_patterns("eval"))
    return target


def test_each_workspace_is_answered_from_its_own_business_and_knowledge(
    session_factory: sessionmaker[Session], base: Path
) -> None:
    add_workspace(session_factory, ACME, "acme", "Acme")
    write_acme_prompts(base)
    prompts = WorkspacePrompts(base, slug_of=slugs(session_factory), poll_seconds=0)
    bot = BotService(
        session_factory=session_factory,
        prompts=prompts,
        outbox=LocalOutbox(session_factory),
        clock=Clock(),
    )

    def ask(message_id: str) -> Inbound:
        return Inbound(
            channel="whatsapp",
            external_id=PHONE.lstrip("+"),
            phone=PHONE,
            text="Hi! How long does installation take?",
            channel_message_id=message_id,
        )

    (first,) = bot.handle(ask("m-1"))
    # Workspace 2's message is stored by its webhook; its job starts in no workspace at all (a
    # worker thread) and must find the conversation's.
    with in_workspace(ACME):
        conversation_id = bot.store(ask("m-1"))
    assert conversation_id is not None
    (second,) = bot.process_conversation(conversation_id)

    assert "Sunpeak Solar" in first.text and "4 to 8 weeks" in first.text
    assert "Acme Roofing" in second.text and "three working days" in second.text
    assert "Sunpeak" not in second.text and "Acme" not in first.text
    with session_factory() as session:
        assert conversation_workspace(conversation_id, session=session) == ACME
        assert conversation_workspace(first.conversation_id, session=session) == FIRST_WORKSPACE
    # Statuses, templates and the rest come from the shipped files for the workspace that has
    # none of its own; its time zone is its own.
    with in_workspace(ACME):
        assert prompts().business.timezone == "Europe/Madrid"
        assert prompts().status_names == prompts.first.current().status_names
        assert prompts().replies_directory == DEFAULT_PROMPTS_DIR / "replies"
    assert prompts().business.timezone == "America/Chicago"
    assert prompts().replies_directory == base / "replies"
    # Each workspace sees only its own copy of the customer.
    with session_factory() as session:
        mine = session.scalars(select(Message.text).where(Message.direction == "out")).all()
    assert mine == [first.text]


def test_a_rejected_change_in_one_workspace_leaves_the_other_alone(
    session_factory: sessionmaker[Session], base: Path
) -> None:
    add_workspace(session_factory, ACME, "acme", "Acme")
    acme = write_acme_prompts(base)
    prompts = WorkspacePrompts(base, slug_of=slugs(session_factory), poll_seconds=0)
    with in_workspace(ACME):
        assert prompts().business.name == "Acme Roofing"

    edit(acme / "business.yaml", "timezone: Europe/Madrid", "timezone: Mars/Olympus_Mons")
    edit(base / "business.yaml", "name: Sunpeak Solar", "name: Sunpeak Energy")
    assert prompts.check()

    health = prompts.health()
    assert health["status"] == "ok" and health["version"] == 2
    assert health["workspaces"]["acme"]["status"] == "rejected"
    assert health["workspaces"]["acme"]["version"] == 1
    (problem,) = health["workspaces"]["acme"]["rejected"]["problems"]
    assert problem["file"] == "business.yaml"
    assert prompts().business.name == "Sunpeak Energy"
    with in_workspace(ACME):
        # The last good version stays in force, for this workspace only.
        assert prompts().business.name == "Acme Roofing"
        assert prompts().business.timezone == "Europe/Madrid"
        assert prompts.current_health()["status"] == "rejected"
    assert prompts.current_health()["status"] == "ok"

    edit(acme / "business.yaml", "timezone: Mars/Olympus_Mons", "timezone: Europe/Lisbon")
    assert prompts.check()
    with in_workspace(ACME):
        assert prompts().business.timezone == "Europe/Lisbon"
    assert prompts.health()["version"] == 2  # the first workspace's did not move


def test_a_workspace_without_a_directory_runs_on_the_shipped_prompts(
    session_factory: sessionmaker[Session], base: Path
) -> None:
    add_workspace(session_factory, ACME, "acme", "Acme")
    edit(base / "business.yaml", "name: Sunpeak Solar", "name: Sunpeak Energy")
    prompts = WorkspacePrompts(base, slug_of=slugs(session_factory), poll_seconds=0)
    with in_workspace(ACME):
        assert prompts().business.name == "Sunpeak Solar"  # the shipped file, not the first's
    # A directory the workspace gets later takes over at the next look.
    write_acme_prompts(base)
    assert prompts.check()
    with in_workspace(ACME):
        assert prompts().business.name == "Acme Roofing"
    # Workspace files under the first workspace's directory are not the first's configuration.
    assert prompts.health()["version"] == 1


def test_invalid_prompts_of_a_new_workspace_are_refused_and_reported(
    session_factory: sessionmaker[Session], base: Path
) -> None:
    add_workspace(session_factory, ACME, "acme", "Acme")
    acme = write_acme_prompts(base)
    edit(acme / "business.yaml", "timezone: Europe/Madrid", "timezone: Mars/Olympus_Mons")
    prompts = WorkspacePrompts(base, slug_of=slugs(session_factory), poll_seconds=0)
    with in_workspace(ACME), pytest.raises(PromptError):
        prompts()
    report = prompts.health()
    assert report["status"] == "ok"
    assert report["workspaces"]["acme"]["status"] == "invalid"
    assert report["workspaces"]["acme"]["problems"][0]["file"] == "business.yaml"
    assert prompts().business.name == "Sunpeak Solar"
    with in_workspace(99), pytest.raises(LookupError):
        prompts()


def test_a_directory_of_the_prompts_cannot_name_a_workspace(
    session_factory: sessionmaker[Session],
) -> None:
    # A workspace "knowledge" would read the first workspace's knowledge/ as its prompts.
    assert RESERVED_SLUGS == CONFIG_DIRS | IGNORED_DIRS
    with session_factory.begin() as session:
        for slug in sorted(RESERVED_SLUGS):
            with pytest.raises(WorkspaceError, match="names a directory of the prompts"):
                create_workspace(slug, "Shop", session=session)
        assert create_workspace("knowledge-base", "Shop", session=session).slug == "knowledge-base"
