"""Helpers for the bot tests: a controllable clock, a chat driver, a writable prompts copy."""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from bot import BotService, Reply
from bot.config import DEFAULT_PROMPTS_DIR
from store.leads import find_identity, get_lead
from store.messages import Inbound
from store.models import Lead, Message, Notification, ScoreEvent

# A homeowner shopping for solar, one question a message: with the shipped prompts the ninth
# message moves the lead to Follow Up (auto-assign). `benchmarks/bot_bench.py` sends it too.
SOLAR_SHOPPER = [
    "Hi there",
    "I'm thinking about solar panels for my house",
    "What packages do you offer?",
    "How much is the Home package?",
    "Does it work with a flat roof?",
    "How long does installation take?",
    "Do you offer financing or monthly payments?",
    "What's the warranty on the battery?",
    "How does the Plus package compare to the Home one?",
    "Do you install in Houston?",
    "What happens on cloudy days?",
    "Is there a monitoring app?",
]

# Tuesday 4 March 2025, 09:00 in Chicago: the sample business is open.
OPEN_TIME = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = OPEN_TIME):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Chat:
    """Talks to the bot the way a channel does, and reads back what happened."""

    service: BotService
    session_factory: sessionmaker[Session]
    clock: Clock
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def say(
        self,
        text: str,
        *,
        channel: str = "web",
        sender: str = "visitor-1",
        name: str | None = None,
        message_id: str | None = None,
        phone: str | None = None,
    ) -> list[Reply]:
        if channel == "whatsapp" and phone is None:
            phone = sender
        return self.service.handle(
            Inbound(
                channel=channel,
                external_id=sender,
                text=text,
                name=name,
                phone=phone,
                channel_message_id=message_id,
                sent_at=self.clock(),
            )
        )

    def reply_text(self, text: str, **kwargs: Any) -> str | None:
        replies = self.say(text, **kwargs)
        assert len(replies) <= 1, "one reply per burst"
        return replies[0].text if replies else None

    def lead(self, channel: str = "web", sender: str = "visitor-1") -> Lead:
        with self.session_factory() as session:
            identity = find_identity(channel, sender, session=session)
            assert identity is not None, f"no lead for {channel}:{sender}"
            lead = get_lead(identity.lead_id, session=session)
            lead = session.scalars(
                select(Lead).options(selectinload(Lead.identities)).where(Lead.id == lead.id)
            ).one()
            session.expunge_all()
            return lead

    def count(self, model: Any, *where: Any) -> int:
        with self.session_factory() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def outbound(self) -> list[Message]:
        with self.session_factory() as session:
            return list(
                session.scalars(
                    select(Message).where(Message.direction == "out").order_by(Message.id)
                )
            )

    def notifications(self) -> list[Notification]:
        with self.session_factory() as session:
            return list(session.scalars(select(Notification).order_by(Notification.id)))

    def score_events(self) -> list[ScoreEvent]:
        with self.session_factory() as session:
            return list(session.scalars(select(ScoreEvent).order_by(ScoreEvent.id)))


def copy_prompts(tmp_path: Path) -> Path:
    """A writable copy of the shipped prompts directory."""
    target = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, target)
    return target
