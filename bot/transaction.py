"""The transaction a new message's turn runs in, from the step that stores the message to the step
that saves the turn (`BotService.handle`).

When the step after storing is the one that saves (no voice note to hear, no profile to fetch, no
lead to merge, no model to call: nothing that waits on the network or writes on its own), the
message, the turn's reads and the turn's effects are one transaction instead of two: one BEGIN and
one COMMIT fewer, the conversation's standing read once (a known sender's lead locked as it is
read, on PostgreSQL), the lead and the conversation updated once. Any other route
commits the stored message before it goes on, as a step of its own would.

A message is never lost to a failed turn: when the run fails with the transaction still open, its
writes, the message's included, are rolled back, and `BotService` runs the turn again with each
step in a transaction of its own, as it would have without one (the message is then stored first,
and a turn that fails again leaves it unprocessed for a later run). A process killed in the middle
of such a run has stored nothing of it, as one killed before it began: `handle`'s callers (replay,
the terminal chat, the eval) acknowledge a message to nobody before it returns. The channels'
webhooks store their messages in the inbox before they answer, and the worker's runs start from
stored messages (`identify`), in transactions of their own.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.orm import Session, sessionmaker

from store.identity import Standing


class TurnTransaction:
    """One run's transaction, held open between its steps (see the module's text)."""

    def __init__(self) -> None:
        self._session: Session | None = None
        self._standing: Standing | None = None
        self.opened = False
        self.committed = False

    def begin(self, session_factory: sessionmaker[Session]) -> Session:
        """Open the run's transaction (the step that stores the message)."""
        assert not self.opened, "one transaction a run"
        session = session_factory()
        session.begin()
        self._session = session
        self.opened = True
        return session

    def keep(self, standing: Standing | None, *, more_pending: bool) -> None:
        """The conversation's standing as the storing step read it, for the step that saves; kept
        only where nobody else can change it before the commit (SQLite's write lock, held since
        the transaction began, or the lead's row locked as it was read)."""
        self._standing = None if standing is None else replace(standing, more_pending=more_pending)

    def take(self) -> tuple[Session, Standing | None] | None:
        """The open transaction's session and the kept standing (None: no transaction is open,
        the step opens its own). The taker commits it (`commit`)."""
        if self._session is None:
            return None
        return self._session, self._standing

    def commit(self) -> None:
        """Commit and close the open transaction, if any."""
        session, self._session, self._standing = self._session, None, None
        if session is None:
            return
        try:
            session.commit()
            self.committed = True
        finally:
            session.close()

    def abandon(self) -> None:
        """Roll back and close the open transaction, if any (the run failed)."""
        session, self._session, self._standing = self._session, None, None
        if session is not None:
            session.close()

    @property
    def lost(self) -> bool:
        """Whether the run's writes were rolled back before they were committed (the message's
        with them)."""
        return self.opened and not self.committed
