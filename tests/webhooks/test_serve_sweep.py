"""`leaddesk serve` without a broker sweeps: a conversation whose job the dispatcher gave up on
(every retry failed) is submitted again once its messages have waited, and answered."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from leaddesk.wiring import LOCAL_STALE_SECONDS, build_runtime
from store.messages import Inbound
from store.models import Message
from tests.webhooks.support import make_settings


def test_a_conversation_the_dispatcher_gave_up_on_is_swept_and_answered(tmp_path: Path) -> None:
    now = [datetime.now(UTC)]
    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}",
        prompts_poll_seconds=0,
        broker_url=None,
        telegram_bot_token=None,
    )
    runtime = build_runtime(settings, clock=lambda: now[0])
    try:
        runtime.start()  # nothing pending yet
        # Stored, and its job given up on: nothing submits it again by itself.
        conversation_id = runtime.bot.store(
            Inbound(
                channel="whatsapp",
                external_id="14155550123",
                phone="+14155550123",
                text="Hello, how much is the Home package?",
                channel_message_id="wamid.swept",
            )
        )
        assert conversation_id is not None
        sweeper = runtime.local_sweeper()

        def waiting() -> int:
            with runtime.session_factory() as session:
                return int(
                    session.scalar(
                        select(func.count(Message.id)).where(
                            Message.direction == "in", Message.processed_at.is_(None)
                        )
                    )
                    or 0
                )

        def replies() -> list[str]:
            with runtime.session_factory() as session:
                return list(session.scalars(select(Message.text).where(Message.direction == "out")))

        now[0] += timedelta(seconds=LOCAL_STALE_SECONDS / 2)
        assert sweeper.sweep().resubmitted == []  # not waiting long enough yet
        assert waiting() == 1

        now[0] += timedelta(seconds=LOCAL_STALE_SECONDS)
        assert sweeper.sweep().resubmitted == [conversation_id]
        deadline = time.monotonic() + 20
        while waiting() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting() == 0
        assert len(replies()) == 1
        assert sweeper.sweep().resubmitted == []  # answered: nothing waits
    finally:
        runtime.stop(timeout=5)
