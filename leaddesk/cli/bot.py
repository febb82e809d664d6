"""`leaddesk chat` (talk to the bot as a customer) and `leaddesk replay FILE.jsonl` (feed recorded
messages through the same pipeline as the webhooks and print the outcome; a stable JSON interface).

Both use a fresh in-memory SQLite database unless `--database` is given, so trying the bot never
touches the real leads.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import phonenumbers
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot import BotService, LocalOutbox, PromptError, load_prompts
from bot.bursts import reply_due
from bot.scoring import band
from leaddesk.cli.common import UserError
from leaddesk.llm import engine_name, make_chat_model
from leaddesk.settings import Settings
from store import make_engine, make_session_factory, upgrade
from store.domain.takeover import is_ai_paused
from store.leads import find_identity, get_lead
from store.messages import Inbound
from store.models import Agent, Lead, utcnow
from webhooks.events import bracket

REPLAY_CHANNELS = ("web", "messenger", "instagram", "whatsapp")
REPLAY_KINDS = (
    "text",
    "audio",
    "voice",
    "image",
    "video",
    "document",
    "sticker",
    "reaction",
    "location",
)
# How each kind is stored: (stored kind, label), as the channel adapters store them.
_STORED_AS = {
    "audio": ("audio", "audio"),
    "voice": ("audio", "voice message"),
    "image": ("image", "image"),
    "video": ("video", "video"),
    "document": ("document", "document"),
    "sticker": ("sticker", "sticker"),
    "reaction": ("reaction", "reacted"),
    "location": ("location", "location"),
}
IN_MEMORY = "sqlite://"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chat = subparsers.add_parser(
        "chat",
        help="chat with the bot in the terminal as a customer",
        description="Chat with the bot in the terminal as a customer (a fresh in-memory "
        "database unless "
        "--database is given). Type /quit or press Ctrl-D to leave.",
    )
    chat.add_argument(
        "--channel",
        choices=REPLAY_CHANNELS,
        default="web",
        help="the channel to pretend to write on",
    )
    chat.add_argument(
        "--sender",
        default=None,
        help="your id on the channel (for whatsapp a phone number; default: a terminal visitor)",
    )
    chat.add_argument("--name", default=None, help="the profile name the channel would supply")
    chat.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="after each message print the lead's score, its factors and the status",
    )
    chat.add_argument(
        "--database", metavar="URL", default=None, help="database URL (default: in-memory SQLite)"
    )
    chat.add_argument(
        "--region", metavar="CC", default=None, help="region for national phone numbers"
    )
    chat.add_argument(
        "--prompts",
        metavar="DIR",
        default=None,
        help="prompts directory (default: LEADDESK_PROMPTS_DIR)",
    )
    chat.add_argument(
        "--now",
        metavar="ISO",
        type=_iso_time,
        default=None,
        help="the time of the conversation's first message (ISO-8601, UTC when no offset "
        "is given; default: the current time), each message after it 30 s later",
    )
    chat.set_defaults(func=run_chat)

    replay = subparsers.add_parser(
        "replay",
        help="feed recorded inbound messages through the bot and print the outcome",
        description="Feed recorded inbound messages (one JSON object per line: channel, "
        "sender, text, optional name, at, kind and caption) through the same pipeline as the "
        "webhooks, in order; `at` drives the clock and the quiet window, so messages close "
        "together are one burst with one reply. Bad lines are reported on stderr and skipped; "
        "the exit code is 1 if any line was bad.",
    )
    replay.add_argument(
        "file", metavar="FILE.jsonl", help="the recorded messages ('-' for standard input)"
    )
    replay.add_argument(
        "--json", action="store_true", help='print {"leads": [...], "replies": [...]} as JSON'
    )
    replay.add_argument(
        "--database",
        metavar="URL",
        default=None,
        help="database URL (default: a fresh in-memory SQLite database)",
    )
    replay.add_argument(
        "--region",
        metavar="CC",
        default=None,
        help="region for national phone numbers (default: LEADDESK_DEFAULT_REGION)",
    )
    replay.add_argument(
        "--prompts",
        metavar="DIR",
        default=None,
        help="prompts directory (default: LEADDESK_PROMPTS_DIR)",
    )
    replay.add_argument(
        "--now",
        metavar="ISO",
        type=_iso_time,
        default=None,
        help="the time of the first message without its own `at` (ISO-8601, UTC when no offset "
        "is given; default: the current time); later ones follow 30 s apart",
    )
    replay.set_defaults(func=run_replay)


# --------------------------------------------------------------------------------------------
# Shared set-up


class ReplayClock:
    """Time as the recorded messages tell it: each line's `at`, else 30 s after the last one.

    Before the first line with a time it reads `start` (``--now``), or the current time when none
    was given.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start
        self._played = False

    def advance(self, at: datetime | None) -> None:
        if at is not None:
            self.current = at
        elif self.current is not None and self._played:
            self.current = self.current + timedelta(seconds=30)
        self._played = True

    def __call__(self) -> datetime:
        return self.current or utcnow()


def _iso_time(value: str) -> datetime:
    """An ISO-8601 time for --now; UTC when it names no offset."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO-8601 time (e.g. 2026-03-03T15:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass
class BotSetup:
    service: Any
    session_factory: sessionmaker[Session]
    engine: Engine
    engine_label: str


def _region(value: str | None, settings: Settings) -> str:
    region = (value or settings.default_region).strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise UserError(f"--region {value!r} is not an ISO country code (e.g. US, GB, ES, SA)")
    return region


def _database_url(value: str) -> str:
    value = value.strip()
    for prefix in ("postgres://", "postgresql://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix) :]
    return value


def _setup(
    settings: Settings,
    *,
    database: str | None,
    region: str,
    prompts_dir: str | None,
    clock: Any,
    prompts: Any = None,
) -> BotSetup:
    # Migrating a throw-away database is not news.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if prompts is None:
        prompts = load_checked_prompts(prompts_dir, settings)
    url = _database_url(database) if database else IN_MEMORY
    try:
        engine = make_engine(url)
        upgrade(engine)
    except OperationalError as exc:
        raise UserError(
            f"cannot open the database: {str(exc.orig).strip().splitlines()[0]}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a malformed URL is the user's to fix
        raise UserError(f"cannot open the database {url!r}: {exc}") from None
    session_factory = make_session_factory(engine)
    service = BotService(
        session_factory=session_factory,
        prompts=prompts,
        model=make_chat_model(settings),
        outbox=LocalOutbox(session_factory),
        clock=clock,
        region=region,
        takeover_minutes=settings.takeover_minutes,
    )
    return BotSetup(service, session_factory, engine, engine_name(settings))


def load_checked_prompts(prompts_dir: str | None, settings: Settings) -> Any:
    """The prompts directory's configuration; its problems on stderr and a UserError if invalid."""
    directory = Path(prompts_dir) if prompts_dir else settings.prompts_dir
    try:
        return load_prompts(directory)
    except PromptError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise UserError(
            f"the prompts in {directory} do not validate ({len(exc.problems)} problem(s) above)"
        ) from None


# --------------------------------------------------------------------------------------------
# replay


@dataclass
class ReplayLine:
    number: int
    channel: str
    sender: str
    text: str
    name: str | None
    at: datetime | None
    kind: str = "text"
    caption: str | None = None

    def inbound(self) -> Any:
        """The message as its channel's adapter would hand it over."""
        kind, text, payload = "text", self.text, None
        if self.kind != "text":
            kind, label = _STORED_AS[self.kind]
            text = bracket(label, self.caption or self.text)
            payload = {"type": kind, kind: {"voice": self.kind == "voice"}}
        return Inbound(
            channel=self.channel,
            external_id=self.sender,
            text=text,
            kind=kind,
            name=self.name,
            phone=self.sender if self.channel == "whatsapp" else None,
            sent_at=self.at,
            payload=payload,
        )


class BadLine(ValueError):
    pass


def parse_line(number: int, raw: str) -> ReplayLine:
    """One recorded message, or BadLine saying what is wrong with it."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadLine(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise BadLine("each line must be a JSON object")
    channel = data.get("channel")
    if channel not in REPLAY_CHANNELS:
        raise BadLine(f"unknown channel {channel!r}; use one of {', '.join(REPLAY_CHANNELS)}")
    sender = data.get("sender")
    if isinstance(sender, bool) or not isinstance(sender, (str, int)) or not str(sender).strip():
        raise BadLine("missing sender")
    kind = data.get("kind", "text")
    if kind not in REPLAY_KINDS:
        raise BadLine(f"unknown kind {kind!r}; use one of {', '.join(REPLAY_KINDS)}")
    text = data.get("text")
    if text is not None and not isinstance(text, str):
        raise BadLine("text must be a string")
    if kind == "text" and not (text or "").strip():
        raise BadLine("missing text")
    caption = data.get("caption")
    if caption is not None and not isinstance(caption, str):
        raise BadLine("caption must be a string")
    if caption is not None and kind in ("text", "sticker", "reaction", "location"):
        raise BadLine(
            f"a {kind} line takes no caption (captions go with audio, image, video, document)"
        )
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise BadLine("name must be a string")
    at = None
    if data.get("at") is not None:
        raw_at = data["at"]
        try:
            at = datetime.fromisoformat(str(raw_at).replace("Z", "+00:00"))
        except ValueError:
            raise BadLine(f"at {raw_at!r} is not an ISO-8601 time") from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
    return ReplayLine(
        number,
        channel,
        str(sender).strip(),
        text or "",
        (name or "").strip() or None,
        at,
        kind=kind,
        caption=(caption or "").strip() or None,
    )


def _lines(path: str) -> Iterator[tuple[int, str]]:
    stream: TextIO
    if path == "-":
        stream = sys.stdin
    else:
        try:
            stream = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror}") from None
    try:
        yield from enumerate(stream, start=1)
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    finally:
        if stream is not sys.stdin:
            stream.close()


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    clock = ReplayClock(args.now)
    setup = _setup(
        settings,
        database=args.database,
        region=_region(args.region, settings),
        prompts_dir=args.prompts,
        clock=clock,
    )
    print(f"engine: {setup.engine_label}", file=sys.stderr if args.json else sys.stdout)
    player = Replayer(setup.service, clock)
    replies: list[dict[str, Any]] = []
    bad = 0
    try:
        for number, raw in _lines(args.file):
            if not raw.strip():
                continue
            try:
                line = parse_line(number, raw)
            except BadLine as exc:
                bad += 1
                print(f"line {number}: {exc}", file=sys.stderr)
                continue
            replies.extend(player.play(line, index=number - 1))
        replies.extend(player.finish())
        leads = lead_report(setup.session_factory, now=clock())
    finally:
        setup.engine.dispose()
    if args.json:
        json.dump({"leads": leads, "replies": replies}, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print_report(leads, replies)
    if bad:
        print(f"{bad} bad line(s) skipped", file=sys.stderr)
    return 1 if bad else 0


@dataclass
class _Burst:
    channel: str
    first_at: datetime
    last_at: datetime
    last_index: int
    sender: str


class Replayer:
    """Plays recorded lines through the bot as the server would: each message is stored at its
    time, and a conversation is answered once the customer has been quiet for its channel's quiet
    window (`bot.bursts.reply_due`, the rule the server's workers follow), at that moment.

    Replies come out as the replay's JSON shape, each with `in_reply_to`: the index of the last
    input line it answers.
    """

    def __init__(self, service: Any, clock: ReplayClock) -> None:
        self.service = service
        self.clock = clock
        self._bursts: dict[int, _Burst] = {}

    def play(self, line: ReplayLine, *, index: int) -> list[dict[str, Any]]:
        """Store one line (after answering every burst whose quiet window ended before it)."""
        if line.at is None and self.clock.current is None:
            # Lines without a time follow one another "a little after the last", from now.

            self.clock.advance(utcnow())
        else:
            self.clock.advance(line.at)
        at = self.clock()
        replies = self._answer_due(until=at)
        conversation_id = self.service.store(line.inbound())
        if conversation_id is None:
            return replies
        burst = self._bursts.get(conversation_id)
        if burst is None:
            self._bursts[conversation_id] = _Burst(line.channel, at, at, index, line.sender)
        else:
            burst.last_at, burst.last_index, burst.sender = at, index, line.sender
        if self._window(line.channel) <= 0:
            replies.extend(self._answer(conversation_id, at))
        return replies

    def finish(self) -> list[dict[str, Any]]:
        """Answer the bursts still waiting at the end of the recording."""
        return self._answer_due(until=None)

    def _window(self, channel: str) -> float:
        return float(self.service.prompts.business.quiet_window(channel))

    def _answer_due(self, *, until: datetime | None) -> list[dict[str, Any]]:
        due = sorted(
            (reply_due(burst.first_at, burst.last_at, self._window(burst.channel)), cid)
            for cid, burst in self._bursts.items()
        )
        replies: list[dict[str, Any]] = []
        for when, conversation_id in due:
            if until is not None and when > until:
                break
            replies.extend(self._answer(conversation_id, when))
        return replies

    def _answer(self, conversation_id: int, when: datetime) -> list[dict[str, Any]]:
        burst = self._bursts.pop(conversation_id, None)
        if burst is None:
            return []
        previous = self.clock.current
        self.clock.current = when
        try:
            replies = self.service.process_conversation(conversation_id)
        finally:
            self.clock.current = previous
        return [
            {
                "channel": reply.channel,
                "sender": reply.external_id or burst.sender,
                "text": reply.text,
                "in_reply_to": burst.last_index,
                "language": reply.language,
                "source": reply.source,
                "knowledge": list(reply.knowledge),
            }
            for reply in replies
        ]


def lead_report(session_factory: sessionmaker[Session], *, now: datetime) -> list[dict[str, Any]]:
    """Every live lead (merged ones are part of their survivor) in the replay's stable shape."""
    with session_factory() as session:
        agents = {a.id: a.name for a in session.scalars(select(Agent))}
        out = []
        for lead in session.scalars(
            select(Lead).where(Lead.merged_into_id.is_(None)).order_by(Lead.id)
        ):
            out.append(
                {
                    "id": lead.id,
                    "name": lead.name,
                    "company": lead.company,
                    "email": lead.email,
                    "phone": lead.phone,
                    "status": lead.status,
                    "score": lead.score,
                    "channels": lead.channels,
                    "ai_paused": is_ai_paused(lead, now),
                    "assigned_agent": agents.get(lead.assigned_agent_id)
                    if lead.assigned_agent_id
                    else None,
                    "tags": list(lead.tags or []),
                    "summary": lead.summary,
                    "score_factors": [
                        {
                            "factor": f.get("factor"),
                            "points": f.get("points"),
                            "evidence": f.get("evidence"),
                        }
                        for f in (lead.score_factors or [])
                        if isinstance(f, dict)
                    ],
                }
            )
    return out


def print_report(leads: list[dict[str, Any]], replies: list[dict[str, Any]]) -> None:
    header = ("id", "name", "phone", "status", "score", "channels", "bot", "agent")
    rows = [
        (
            str(lead["id"]),
            lead["name"] or "-",
            lead["phone"] or "-",
            lead["status"],
            str(lead["score"]),
            ",".join(lead["channels"]),
            "paused" if lead["ai_paused"] else "on",
            lead["assigned_agent"] or "-",
        )
        for lead in leads
    ]
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    print(f"\nLeads ({len(leads)})")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    for lead in leads:
        if lead["tags"] or lead["summary"]:
            print(f"\n#{lead['id']} {', '.join(lead['tags'])}".rstrip())
            if lead["summary"]:
                print(f"  {lead['summary']}")
            for factor in lead["score_factors"]:
                print(f"  {factor['points']:+4d}  {factor['factor']}: {factor['evidence']}")
    print(f"\nReplies ({len(replies)})")
    for reply in replies:
        text = reply["text"].replace("\n", "\n" + " " * 6)
        print(f"  -> {reply['channel']}:{reply['sender']}\n      {text}")


# --------------------------------------------------------------------------------------------
# chat


def run_chat(args: argparse.Namespace, settings: Settings) -> int:
    clock = ReplayClock(args.now)
    setup = _setup(
        settings,
        database=args.database,
        region=_region(args.region, settings),
        prompts_dir=args.prompts,
        clock=clock,
    )
    sender = args.sender or ("15125550100" if args.channel == "whatsapp" else "terminal-visitor")
    interactive = sys.stdin.isatty()
    print(f"engine: {setup.engine_label}")
    print(
        f"You are a customer writing on {args.channel} as {sender!r}. "
        "Type /quit or press Ctrl-D to leave."
    )
    try:
        while True:
            if interactive:
                try:
                    text = input("you> ")
                except EOFError:
                    print()
                    break
            else:
                line = sys.stdin.readline()
                if not line:
                    break
                text = line.rstrip("\n")
            if text.strip() in ("/quit", "/exit"):
                break
            if not text.strip():
                continue
            clock.advance(None)
            replies = setup.service.handle(
                Inbound(
                    channel=args.channel,
                    external_id=sender,
                    text=text,
                    name=args.name,
                    phone=sender if args.channel == "whatsapp" else None,
                )
            )
            for reply in replies:
                print("bot> " + reply.text.replace("\n", "\n     "))
            with setup.session_factory() as session:
                identity = find_identity(args.channel, sender, session=session)
                lead = get_lead(identity.lead_id, session=session) if identity else None
                if lead is None:
                    continue
                if not replies and is_ai_paused(lead, clock()):
                    print(
                        "     (the bot is quiet for this lead: "
                        f"{lead.ai_pause_reason or 'paused'}; messages are still scored)"
                    )
                if args.verbose:
                    print(
                        f"     [lead #{lead.id} | status {lead.status} | "
                        f"score {lead.score} ({band(lead.score)})"
                        f"{' | phone ' + lead.phone if lead.phone else ''}]"
                    )
                    for factor in lead.score_factors or []:
                        print(
                            f"       {factor.get('points', 0):+4d}  "
                            f"{factor.get('factor')}: {factor.get('evidence')}"
                        )
                    if lead.tags:
                        print(f"       tags: {', '.join(lead.tags)}")
    finally:
        setup.engine.dispose()
    return 0
