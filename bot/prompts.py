"""Loading the admin's `prompts/` directory into one validated, immutable `PromptConfig`.

Every problem is reported as `file:line: message` (YAML node marks give the lines); a directory
with any problem is refused as a whole with a `PromptError` listing them all. Files missing from
the admin's directory fall back to the shipped defaults in the repository's `prompts/`.
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, SequenceNode

from bot.text import KeywordSet

log = logging.getLogger(__name__)

DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"

ACTIONS = ("none", "notify", "auto_assign")
AI_BEHAVIOURS = ("continue", "pause", "stop")
# Signals computed in code rather than by keywords; statuses may refer to them too.
COMPUTED_SIGNALS = ("question", "phone_given")
WEIGHTS = ("engagement", "question_depth", "trend", "model_judgement")
FIELD_TYPES = ("text", "number", "date", "boolean", "choice")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

BOT_PLACEHOLDERS = frozenset(
    {
        "business_name",
        "tone",
        "languages",
        "business_hours",
        "statuses",
        "knowledge",
        "lead",
        "custom_fields",
        "now",
    }
)
BOT_REQUIRED = frozenset({"business_name", "statuses", "knowledge", "lead"})
COPILOT_PLACEHOLDERS = frozenset(
    {"business_name", "agent_name", "statuses", "custom_fields", "note_categories", "tone", "now"}
)
COPILOT_REQUIRED = frozenset({"business_name", "statuses"})
TEMPLATE_PLACEHOLDERS = frozenset(
    {
        "business_name",
        "customer_name",
        "agent_name",
        "topic",
        "next_opening",
        "business_phone",
        "business_email",
        "website",
    }
)
# Templates the default language must have (phone_ask and out_of_hours may come from business.yaml).
CORE_TEMPLATES = (
    "greeting",
    "phone_ask",
    "handover",
    "resume_disclosure",
    "out_of_hours",
    "intro_email_subject",
    "intro_email",
)
OPTIONAL_TEMPLATES = (
    "answer_intro",
    "untranslated_note",
    "ack_pricing",
    "ack_demo",
    "ack_timeline",
    "ack_purchase",
    "ack_comparison",
    "no_answer",
    "fallback",
    "opt_out",
    "not_interested",
    "phone_thanks",
    "phone_declined",
    "refusal",
    "media_voice",
    "media_file",
    "media_location",
)
# Templates business.yaml supplies for the default language.
BUSINESS_TEMPLATES = ("phone_ask", "out_of_hours")


# --------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class PromptError(Exception):
    """The prompts directory does not validate; `problems` lists every `file:line: message`."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems) or [Problem("prompts", 1, "invalid prompts")]
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def file(self) -> str:
        return self.problems[0].file

    @property
    def line(self) -> int:
        return self.problems[0].line

    @property
    def message(self) -> str:
        return self.problems[0].message


class _Problems:
    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, file: Path | str, line: int, message: str) -> None:
        self.items.append(Problem(str(file), max(1, int(line)), message))


# --------------------------------------------------------------------------------------------
# The configuration


@dataclass(frozen=True)
class StatusRule:
    """One way the offline engine recognises a status: any of `signals`, and/or a minimum score."""

    signals: tuple[str, ...] = ()
    min_score: Optional[int] = None

    def matches(self, signals: set[str], score: int) -> bool:
        if self.signals and not signals.intersection(self.signals):
            return False
        if self.min_score is not None and score < self.min_score:
            return False
        return bool(self.signals) or self.min_score is not None


@dataclass(frozen=True)
class Status:
    name: str
    colour: str
    description: str
    action: str
    ai_behaviour: str
    pause_minutes: Optional[int]
    terminal: bool
    ai_can_set: bool
    rank: int
    rules: tuple[StatusRule, ...] = ()
    locks: bool = False  # setting it makes the lead read-only until an admin reopens it

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "colour": self.colour,
            "description": self.description,
            "action": self.action,
            "ai_behaviour": self.ai_behaviour,
            "pause_minutes": self.pause_minutes,
            "terminal": self.terminal,
            "ai_can_set": self.ai_can_set,
            "locks": self.locks,
        }


@dataclass(frozen=True)
class Signal:
    name: str
    points: int
    keywords: KeywordSet


@dataclass(frozen=True)
class ScoringConfig:
    base: int
    intent_cap: int
    weights: dict[str, int]
    signals: dict[str, Signal]
    phone_decline: KeywordSet
    interests: dict[str, KeywordSet]
    objections: dict[str, KeywordSet]
    tags: dict[str, KeywordSet]

    @property
    def signal_names(self) -> tuple[str, ...]:
        return tuple(self.signals) + COMPUTED_SIGNALS


@dataclass(frozen=True)
class BusinessHours:
    """Weekly opening hours in a time zone; a day maps to (open minute, close minute) or None."""

    timezone: str
    days: tuple[Optional[tuple[int, int]], ...]  # Monday first

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        span = self.days[local.weekday()]
        minute = local.hour * 60 + local.minute
        return span is not None and span[0] <= minute < span[1]

    def next_opening(self, now: datetime) -> Optional[datetime]:
        """`now` when open, else the start of the next opening period (None if never open)."""
        if self.is_open(now):
            return now
        local = now.astimezone(self.zone)
        for offset in range(0, 8):
            day = (local + timedelta(days=offset)).date()
            span = self.days[day.weekday()]
            if span is None:
                continue
            opening = datetime(
                day.year, day.month, day.day, span[0] // 60, span[0] % 60, tzinfo=self.zone
            )
            if opening > local:
                return opening
        return None

    def describe(self) -> str:
        parts = []
        for name, span in zip(DAYS, self.days, strict=True):
            parts.append(
                f"{name.capitalize()} {_hhmm(span[0])}-{_hhmm(span[1])}"
                if span
                else f"{name.capitalize()} closed"
            )
        return f"{', '.join(parts)} ({self.timezone})"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# People type in bursts: on these channels the bot waits this long after the last message.
QUIET_WINDOW_CHANNELS = ("web", "whatsapp", "messenger", "instagram")
DEFAULT_QUIET_SECONDS = 2.5
MAX_QUIET_SECONDS = 60.0
DEFAULT_QUIET_WINDOWS: tuple[tuple[str, float], ...] = tuple(
    (channel, DEFAULT_QUIET_SECONDS) for channel in QUIET_WINDOW_CHANNELS
)


@dataclass(frozen=True)
class BusinessConfig:
    name: str
    tone: str
    default_language: str
    languages: tuple[str, ...]
    phone: Optional[str]
    email: Optional[str]
    website: Optional[str]
    hours: BusinessHours
    takeover_minutes: Optional[int]
    default_pause_minutes: int
    phone_ask_max: int
    phone_ask_min_score: int
    phone_ask_wording: Optional[str] = None
    out_of_hours_message: Optional[str] = None
    # Seconds of silence the bot waits for before answering a burst, per channel (0: at once).
    quiet_windows: tuple[tuple[str, float], ...] = DEFAULT_QUIET_WINDOWS

    def quiet_window(self, channel: str) -> float:
        """Seconds the customer must have been quiet on `channel` before the bot answers."""
        return dict(self.quiet_windows).get(channel, 0.0)


@dataclass(frozen=True)
class CustomField:
    name: str
    label: str
    type: str
    choices: tuple[str, ...] = ()

    def coerce(self, value: Any) -> Any:
        """Check and convert a value for this field (None clears it); ValueError if it is wrong."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if self.type == "text":
            return str(value).strip()[:1000]
        if self.type == "number":
            if isinstance(value, bool):
                raise ValueError(f"{self.label} must be a number")
            try:
                number = float(str(value).replace(",", "").strip())
            except ValueError:
                raise ValueError(f"{self.label} must be a number") from None
            return int(number) if number.is_integer() else number
        if self.type == "boolean":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("yes", "true", "1", "y", "si", "sí"):
                return True
            if text in ("no", "false", "0", "n"):
                return False
            raise ValueError(f"{self.label} must be yes or no")
        if self.type == "date":
            from datetime import date

            try:
                return date.fromisoformat(str(value).strip()).isoformat()
            except ValueError:
                raise ValueError(f"{self.label} must be a date like 2025-03-31") from None
        text = str(value).strip()
        for choice in self.choices:
            if choice.lower() == text.lower():
                return choice
        raise ValueError(f"{self.label} must be one of: {', '.join(self.choices)}")


@dataclass(frozen=True)
class KnowledgeSection:
    file: str
    line: int
    heading: str  # "Pricing > Package prices"
    title: str  # "Package prices"
    text: str
    language: str
    # The same id in every language's file: `## Title {#id}`, else the title as a slug.
    id: str = ""
    # Words a customer may use for what the section answers (a `keywords:` line under the heading).
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class PromptConfig:
    """Everything the admin configured, validated. Immutable: a reload builds a new one."""

    directory: Path
    statuses: tuple[Status, ...]
    scoring: ScoringConfig
    business: BusinessConfig
    custom_fields: tuple[CustomField, ...]
    bot_system: str
    copilot_system: str
    knowledge: tuple[KnowledgeSection, ...]
    templates: dict[str, dict[str, str]]
    files: tuple[Path, ...] = field(default=())

    # Statuses
    def status(self, name: Optional[str]) -> Optional[Status]:
        for status in self.statuses:
            if name is not None and status.name.lower() == name.lower():
                return status
        return None

    @property
    def status_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.statuses)

    @property
    def initial_status(self) -> Status:
        return self.statuses[0]

    @property
    def ai_settable(self) -> tuple[Status, ...]:
        return tuple(s for s in self.statuses if s.ai_can_set)

    @property
    def terminal_statuses(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.statuses if s.terminal)

    def custom_field(self, name: str) -> Optional[CustomField]:
        for item in self.custom_fields:
            if item.name == name:
                return item
        return None

    # Templates
    @property
    def template_languages(self) -> tuple[str, ...]:
        return tuple(self.templates)

    def has_template(self, key: str, language: str) -> bool:
        return bool(self.templates.get(language, {}).get(key))

    def template(self, key: str, language: Optional[str] = None, **values: Any) -> str:
        """The template in `language` (else the default language), filled in; "" when undefined."""
        default = self.business.default_language
        text = (
            self.templates.get(language or default, {}).get(key)
            or self.templates.get(default, {}).get(key)
            or ""
        )
        return text.format_map(self._template_values(values)).strip() if text else ""

    def _template_values(self, values: dict[str, Any]) -> dict[str, str]:
        filled = {name: "" for name in TEMPLATE_PLACEHOLDERS}
        filled.update(
            business_name=self.business.name,
            business_phone=self.business.phone or "",
            business_email=self.business.email or "",
            website=self.business.website or "",
        )
        filled.update({k: "" if v is None else str(v) for k, v in values.items()})
        return filled

    # System prompts
    def render_bot_system(self, **values: Any) -> str:
        return _fill(self.bot_system, BOT_PLACEHOLDERS, self._common_values(), values)

    def render_copilot_system(self, **values: Any) -> str:
        """The copilot's system prompt; pass `agent_name` and optionally `now`."""
        from store.models import NOTE_CATEGORIES

        common = self._common_values()
        common["note_categories"] = ", ".join(NOTE_CATEGORIES)
        common["statuses"] = "\n".join(
            f"- {s.name}: {s.description}" + (" (terminal)" if s.terminal else "")
            for s in self.statuses
        )
        return _fill(self.copilot_system, COPILOT_PLACEHOLDERS, common, values)

    def _common_values(self) -> dict[str, str]:
        fields = (
            "\n".join(
                f"- {f.name} ({f.label}): {f.type}"
                + (f" - one of {', '.join(f.choices)}" if f.choices else "")
                for f in self.custom_fields
            )
            or "(none)"
        )
        return {
            "business_name": self.business.name,
            "tone": self.business.tone,
            "languages": ", ".join(self.business.languages),
            "business_hours": self.business.hours.describe(),
            "custom_fields": fields,
        }


def _fill(
    template: str, allowed: frozenset[str], common: dict[str, str], values: dict[str, Any]
) -> str:
    filled = {name: "" for name in allowed}
    filled.update(common)
    filled.update({k: "" if v is None else str(v) for k, v in values.items()})
    return template.format_map(filled)


# --------------------------------------------------------------------------------------------
# YAML with line numbers


class _LineDict(dict):  # type: ignore[type-arg]
    line: int = 1
    lines: dict[Any, int]


class _LineList(list):  # type: ignore[type-arg]
    line: int = 1
    lines: list[int]


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    result = _LineDict()
    result.line = node.start_mark.line + 1
    result.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark
            ) from None
        if key in result:
            raise _DuplicateKey(None, None, f"duplicate key {key!r}", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: SequenceNode) -> _LineList:
    result = _LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)  # type: ignore[arg-type]
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)  # type: ignore[arg-type]


# What `_read_yaml` returns for a file it already reported (so that no second, confusing problem
# such as "must be a mapping" follows a syntax error).
_UNREADABLE = object()


def _read_yaml(path: Path, problems: _Problems) -> Optional[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(path, 1, f"cannot read the file: {exc}")
        return _UNREADABLE
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if (
            exc.problem_mark is not None
            and exc.context_mark is not None
            and exc.problem_mark.line >= len(text.splitlines())
        ):
            # "Unexpected end of stream": where the unclosed thing started is the useful line.
            mark = exc.context_mark
        line = mark.line + 1 if mark else 1
        problems.add(
            path,
            line,
            f"{exc.problem or 'invalid YAML'}" + (f" ({exc.context})" if exc.context else ""),
        )
    except yaml.YAMLError as exc:
        problems.add(path, 1, f"invalid YAML: {exc}")
    return _UNREADABLE


def _line_of(container: Any, key: Any = None) -> int:
    if key is not None:
        lines = getattr(container, "lines", None)
        if isinstance(lines, dict) and key in lines:
            return int(lines[key])
        if isinstance(lines, list) and isinstance(key, int) and 0 <= key < len(lines):
            return int(lines[key])
    return int(getattr(container, "line", 1))


class _File:
    """Validation helpers bound to one file, adding problems with the right line."""

    def __init__(self, path: Path, problems: _Problems):
        self.path, self.problems = path, problems

    def error(self, line: int, message: str) -> None:
        self.problems.add(self.path, line, message)

    def mapping(self, value: Any, line: int, what: str) -> Optional[dict[Any, Any]]:
        if value is _UNREADABLE:
            return None  # already reported
        if not isinstance(value, dict):
            self.error(line, f"{what} must be a mapping of `key: value` lines")
            return None
        return value

    def known_keys(self, mapping: dict[Any, Any], allowed: tuple[str, ...], what: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.error(
                    _line_of(mapping, key),
                    f"unknown key {key!r} in {what}; expected one of: {', '.join(allowed)}",
                )

    def text(
        self,
        mapping: dict[Any, Any],
        key: str,
        *,
        required: bool = True,
        default: Optional[str] = None,
        max_len: int = 2000,
    ) -> Optional[str]:
        if key not in mapping or mapping[key] is None:
            if required:
                self.error(_line_of(mapping), f"missing `{key}`")
            return default
        value = mapping[key]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.error(_line_of(mapping, key), f"`{key}` must be text")
            return default
        value = str(value).strip()
        if required and not value:
            self.error(_line_of(mapping, key), f"`{key}` must not be empty")
            return default
        if len(value) > max_len:
            self.error(_line_of(mapping, key), f"`{key}` is longer than {max_len} characters")
        return value

    def integer(
        self,
        mapping: dict[Any, Any],
        key: str,
        *,
        default: Optional[int],
        low: int,
        high: int,
        required: bool = False,
    ) -> Optional[int]:
        if key not in mapping or mapping[key] is None:
            if required:
                self.error(_line_of(mapping), f"missing `{key}`")
            return default
        value = mapping[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(_line_of(mapping, key), f"`{key}` must be a whole number, got {value!r}")
            return default
        if not low <= value <= high:
            self.error(
                _line_of(mapping, key), f"`{key}` must be between {low} and {high}, got {value}"
            )
            return default
        return value

    def boolean(self, mapping: dict[Any, Any], key: str, default: bool) -> bool:
        if key not in mapping or mapping[key] is None:
            return default
        value = mapping[key]
        if not isinstance(value, bool):
            self.error(_line_of(mapping, key), f"`{key}` must be true or false, got {value!r}")
            return default
        return value

    def choice(
        self, mapping: dict[Any, Any], key: str, choices: tuple[str, ...], default: str
    ) -> str:
        if key not in mapping or mapping[key] is None:
            return default
        value = mapping[key]
        if not isinstance(value, str) or value not in choices:
            self.error(
                _line_of(mapping, key),
                f"`{key}` must be one of: {', '.join(choices)}; got {value!r}",
            )
            return default
        return value

    def keywords(self, value: Any, where: Any, key: Any, what: str) -> KeywordSet:
        """A `{language: [keyword, ...]}` mapping."""
        line = _line_of(where, key)
        if not isinstance(value, dict):
            self.error(line, f"{what} must map language codes (en, es, ...) to keyword lists")
            return KeywordSet({})
        by_language: dict[str, tuple[str, ...]] = {}
        for language, items in value.items():
            item_line = _line_of(value, language)
            if not isinstance(language, str) or not re.fullmatch(r"[a-z]{2,3}", language):
                self.error(item_line, f"{language!r} is not a language code like en, es, ar")
                continue
            if not isinstance(items, list):
                self.error(
                    item_line, f"{what} for {language} must be a list like [word, another phrase]"
                )
                continue
            cleaned = []
            for index, item in enumerate(items):
                if (
                    isinstance(item, bool)
                    or not isinstance(item, (str, int))
                    or not str(item).strip("=* ")
                ):
                    self.error(
                        _line_of(items, index), f"{what} for {language}: {item!r} is not a keyword"
                    )
                    continue
                cleaned.append(str(item).strip())
            by_language[language] = tuple(cleaned)
        return KeywordSet(by_language)


# --------------------------------------------------------------------------------------------
# Loading


def load_prompts(
    directory: Path | str | None = None, *, defaults: Path | str | None = DEFAULT_PROMPTS_DIR
) -> PromptConfig:
    """Read and validate the prompts directory; raise PromptError listing every problem."""
    directory = Path(directory) if directory is not None else DEFAULT_PROMPTS_DIR
    defaults_dir = Path(defaults) if defaults is not None else None
    problems = _Problems()
    if not directory.is_dir():
        raise PromptError([Problem(str(directory), 1, "the prompts directory does not exist")])
    used: list[Path] = []

    def pick(name: str) -> Optional[Path]:
        for base in (directory, defaults_dir):
            if base is not None and (base / name).is_file():
                used.append(base / name)
                return base / name
        problems.add(directory / name, 1, "the file is missing")
        return None

    business = _load_business(pick("business.yaml"), problems)
    scoring = _load_scoring(pick("scoring.yaml"), problems)
    statuses = _load_statuses(pick("statuses.yaml"), problems, scoring, business)
    custom_fields = _load_custom_fields(pick("custom_fields.yaml"), problems)
    bot_system = _load_markdown_prompt(
        pick("bot_system.md"), problems, BOT_PLACEHOLDERS, BOT_REQUIRED
    )
    copilot_system = _load_markdown_prompt(
        pick("copilot_system.md"), problems, COPILOT_PLACEHOLDERS, COPILOT_REQUIRED
    )
    language = business.default_language if business else "en"
    knowledge_dir = _pick_dir(directory, defaults_dir, "knowledge")
    knowledge = _load_knowledge(knowledge_dir, problems, language, used) if knowledge_dir else ()
    templates_dir = _pick_dir(directory, defaults_dir, "templates")
    templates = _load_templates(templates_dir, problems, business, used) if templates_dir else {}
    if templates_dir is None:
        problems.add(directory / "templates", 1, "the templates directory is missing")

    if problems.items or business is None or scoring is None or statuses is None:
        raise PromptError(problems.items)
    config = PromptConfig(
        directory=directory,
        statuses=statuses,
        scoring=scoring,
        business=business,
        custom_fields=custom_fields or (),
        bot_system=bot_system or "",
        copilot_system=copilot_system or "",
        knowledge=knowledge,
        templates=templates,
        files=tuple(used),
    )
    log.info(
        "loaded prompts from %s: %d statuses, %d knowledge sections, templates in %s",
        directory,
        len(statuses),
        len(knowledge),
        ", ".join(templates),
    )
    return config


def check_prompts(directory: Path | str | None = None, **kwargs: Any) -> list[Problem]:
    """Every problem of a prompts directory (empty when it validates)."""
    try:
        load_prompts(directory, **kwargs)
    except PromptError as exc:
        return exc.problems
    return []


def _pick_dir(directory: Path, defaults: Optional[Path], name: str) -> Optional[Path]:
    if (directory / name).is_dir():
        return directory / name
    if defaults is not None and (defaults / name).is_dir():
        return defaults / name
    return None


def _load_business(path: Optional[Path], problems: _Problems) -> Optional[BusinessConfig]:
    if path is None:
        return None
    data = _read_yaml(path, problems)
    f = _File(path, problems)
    data = f.mapping(data, 1, "business.yaml")
    if data is None:
        return None
    f.known_keys(
        data,
        (
            "name",
            "tone",
            "default_language",
            "languages",
            "contact",
            "timezone",
            "hours",
            "takeover_minutes",
            "default_pause_minutes",
            "phone_ask",
            "out_of_hours_message",
            "quiet_window",
        ),
        "business.yaml",
    )
    name = f.text(data, "name", max_len=200) or "our business"
    tone = (
        f.text(data, "tone", required=False, default="friendly and concise")
        or "friendly and concise"
    )
    default_language = f.text(data, "default_language", required=False, default="en") or "en"
    if not re.fullmatch(r"[a-z]{2,3}", default_language):
        f.error(
            _line_of(data, "default_language"),
            f"{default_language!r} is not a language code like en",
        )
    languages: list[str] = [default_language]
    raw_languages = data.get("languages")
    if raw_languages is not None:
        if not isinstance(raw_languages, list):
            f.error(_line_of(data, "languages"), "`languages` must be a list like [en, es]")
        else:
            for index, item in enumerate(raw_languages):
                if not isinstance(item, str) or not re.fullmatch(r"[a-z]{2,3}", item):
                    f.error(
                        _line_of(raw_languages, index),
                        f"{item!r} is not a language code like en, es",
                    )
                elif item not in languages:
                    languages.append(item)
    phone = email = website = None
    contact = data.get("contact")
    if contact is not None:
        contact = f.mapping(contact, _line_of(data, "contact"), "`contact`")
        if contact is not None:
            f.known_keys(contact, ("phone", "email", "website"), "`contact`")
            phone = f.text(contact, "phone", required=False)
            email = f.text(contact, "email", required=False)
            website = f.text(contact, "website", required=False)
    timezone = f.text(data, "timezone", required=False, default="UTC") or "UTC"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        f.error(
            _line_of(data, "timezone"),
            f"unknown time zone {timezone!r} (use a name like Europe/Madrid)",
        )
        timezone = "UTC"
    days = _parse_hours(data, f)
    takeover = f.integer(data, "takeover_minutes", default=None, low=1, high=60 * 24 * 30)
    pause = f.integer(data, "default_pause_minutes", default=60, low=1, high=60 * 24 * 30) or 60
    ask_max, ask_min, wording = 2, 21, None
    phone_ask = data.get("phone_ask")
    if (
        phone_ask is not None
        and f.mapping(phone_ask, _line_of(data, "phone_ask"), "`phone_ask`") is not None
    ):
        f.known_keys(phone_ask, ("wording", "max_per_conversation", "min_score"), "`phone_ask`")
        wording = f.text(phone_ask, "wording", required=False, max_len=500)
        if wording:
            _check_placeholders(
                wording, _line_of(phone_ask, "wording"), f, TEMPLATE_PLACEHOLDERS, frozenset()
            )
        ask_max = f.integer(phone_ask, "max_per_conversation", default=2, low=0, high=10) or 0
        ask_min = f.integer(phone_ask, "min_score", default=21, low=0, high=100) or 0
    out_of_hours = f.text(data, "out_of_hours_message", required=False, max_len=500)
    if out_of_hours:
        _check_placeholders(
            out_of_hours,
            _line_of(data, "out_of_hours_message"),
            f,
            TEMPLATE_PLACEHOLDERS,
            frozenset(),
        )
    quiet_windows = _parse_quiet_windows(data, f)
    return BusinessConfig(
        name=name,
        tone=tone,
        default_language=default_language,
        languages=tuple(languages),
        phone=phone,
        email=email,
        website=website,
        hours=BusinessHours(timezone=timezone, days=days),
        takeover_minutes=takeover,
        default_pause_minutes=pause,
        phone_ask_max=ask_max,
        phone_ask_min_score=ask_min,
        phone_ask_wording=wording,
        out_of_hours_message=out_of_hours,
        quiet_windows=quiet_windows,
    )


def _quiet_seconds(value: Any, line: int, f: _File, what: str) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        f.error(line, f"{what} must be a number of seconds like 2.5 (0 turns it off)")
        return None
    if not 0 <= value <= MAX_QUIET_SECONDS:
        f.error(line, f"{what} must be between 0 and {MAX_QUIET_SECONDS:g} seconds")
        return None
    return float(value)


def _parse_quiet_windows(data: dict[Any, Any], f: _File) -> tuple[tuple[str, float], ...]:
    """`quiet_window: 2.5` (every chat channel) or `quiet_window: {web: 2.5, whatsapp: 0}`;
    channels left out keep the default."""
    raw = data.get("quiet_window")
    if raw is None:
        return DEFAULT_QUIET_WINDOWS
    line = _line_of(data, "quiet_window")
    if not isinstance(raw, dict):
        seconds = _quiet_seconds(raw, line, f, "`quiet_window`")
        if seconds is None:
            return DEFAULT_QUIET_WINDOWS
        return tuple((channel, seconds) for channel in QUIET_WINDOW_CHANNELS)
    f.known_keys(raw, QUIET_WINDOW_CHANNELS, "`quiet_window`")
    windows = dict(DEFAULT_QUIET_WINDOWS)
    for channel in QUIET_WINDOW_CHANNELS:
        if channel in raw:
            seconds = _quiet_seconds(
                raw[channel], _line_of(raw, channel), f, f"`quiet_window.{channel}`"
            )
            if seconds is not None:
                windows[channel] = seconds
    return tuple(windows.items())


def _parse_hours(data: dict[Any, Any], f: _File) -> tuple[Optional[tuple[int, int]], ...]:
    hours = data.get("hours")
    if hours is None:
        # No hours configured: always open, so nothing is ever queued.
        return tuple((0, 24 * 60) for _ in DAYS)
    if f.mapping(hours, _line_of(data, "hours"), "`hours`") is None:
        return tuple((0, 24 * 60) for _ in DAYS)
    days: list[Optional[tuple[int, int]]] = []
    for key in hours:
        if key not in DAYS:
            f.error(_line_of(hours, key), f"unknown day {key!r}; use {', '.join(DAYS)}")
    for day in DAYS:
        value = hours.get(day)
        if (
            value is None
            or (isinstance(value, str) and value.strip().lower() == "closed")
            or value is False
        ):
            days.append(None)
            continue
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", str(value))
        if not match:
            f.error(
                _line_of(hours, day),
                f'{day}: write opening hours as "HH:MM-HH:MM" or closed, got {value!r}',
            )
            days.append(None)
            continue
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if not (0 <= start < end <= 24 * 60) or m1 > 59 or m2 > 59:
            f.error(_line_of(hours, day), f"{day}: {value!r} is not a valid range within one day")
            days.append(None)
            continue
        days.append((start, end))
    return tuple(days)


def _load_scoring(path: Optional[Path], problems: _Problems) -> Optional[ScoringConfig]:
    if path is None:
        return None
    data = _read_yaml(path, problems)
    f = _File(path, problems)
    data = f.mapping(data, 1, "scoring.yaml")
    if data is None:
        return None
    f.known_keys(
        data,
        (
            "base",
            "intent_cap",
            "weights",
            "signals",
            "phone_decline",
            "interests",
            "objections",
            "tags",
        ),
        "scoring.yaml",
    )
    base = f.integer(data, "base", default=10, low=0, high=100) or 0
    cap = f.integer(data, "intent_cap", default=60, low=0, high=100) or 0
    weights = {name: 0 for name in WEIGHTS}
    raw_weights = data.get("weights")
    if (
        raw_weights is not None
        and f.mapping(raw_weights, _line_of(data, "weights"), "`weights`") is not None
    ):
        f.known_keys(raw_weights, WEIGHTS, "`weights`")
        for name in WEIGHTS:
            weights[name] = f.integer(raw_weights, name, default=0, low=0, high=100) or 0
    signals: dict[str, Signal] = {}
    raw_signals = data.get("signals")
    if raw_signals is None:
        f.error(_line_of(data), "missing `signals`")
    elif f.mapping(raw_signals, _line_of(data, "signals"), "`signals`") is not None:
        for name, spec in raw_signals.items():
            line = _line_of(raw_signals, name)
            if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                f.error(line, f"signal name {name!r} must be lower_case_with_underscores")
                continue
            if name in COMPUTED_SIGNALS:
                f.error(line, f"{name!r} is computed by Leaddesk; choose another signal name")
                continue
            if not isinstance(spec, dict):
                f.error(line, f"signal {name!r} needs `points` and `keywords`")
                continue
            f.known_keys(spec, ("points", "keywords"), f"signal {name!r}")
            points = f.integer(spec, "points", default=0, low=-100, high=100, required=True) or 0
            if "keywords" not in spec:
                f.error(line, f"signal {name!r} needs `keywords`")
                continue
            signals[name] = Signal(
                name,
                points,
                f.keywords(spec["keywords"], spec, "keywords", f"signal {name!r} keywords"),
            )
    decline = f.keywords(data.get("phone_decline", {}), data, "phone_decline", "`phone_decline`")
    groups: dict[str, dict[str, KeywordSet]] = {}
    for group in ("interests", "objections", "tags"):
        groups[group] = {}
        raw = data.get(group)
        if raw is None:
            continue
        if f.mapping(raw, _line_of(data, group), f"`{group}`") is None:
            continue
        for label, spec in raw.items():
            if not isinstance(label, str) or not label.strip() or len(label) > 60:
                f.error(_line_of(raw, label), f"{group}: {label!r} must be a short label")
                continue
            groups[group][label.strip()] = f.keywords(spec, raw, label, f"{group} {label!r}")
    return ScoringConfig(
        base=base,
        intent_cap=cap,
        weights=weights,
        signals=signals,
        phone_decline=decline,
        interests=groups["interests"],
        objections=groups["objections"],
        tags=groups["tags"],
    )


def _load_statuses(
    path: Optional[Path],
    problems: _Problems,
    scoring: Optional[ScoringConfig],
    business: Optional[BusinessConfig],
) -> Optional[tuple[Status, ...]]:
    if path is None:
        return None
    data = _read_yaml(path, problems)
    f = _File(path, problems)
    data = f.mapping(data, 1, "statuses.yaml")
    if data is None:
        return None
    f.known_keys(data, ("statuses",), "statuses.yaml")
    items = data.get("statuses")
    if not isinstance(items, list) or not items:
        f.error(_line_of(data, "statuses"), "`statuses` must be a non-empty list of statuses")
        return None
    known_signals = set(scoring.signal_names) if scoring else None
    default_pause = business.default_pause_minutes if business else 60
    statuses: list[Status] = []
    seen: set[str] = set()
    keys = (
        "name",
        "colour",
        "color",
        "description",
        "action",
        "ai_behaviour",
        "ai_behavior",
        "pause_minutes",
        "terminal",
        "ai_can_set",
        "locks",
        "when",
    )
    for rank, item in enumerate(items):
        line = _line_of(items, rank)
        if not isinstance(item, dict):
            f.error(line, "each status must be a mapping with at least `name` and `description`")
            continue
        f.known_keys(item, keys, "a status")
        name = f.text(item, "name", max_len=60)
        if name is None:
            continue
        if name.lower() in seen:
            f.error(_line_of(item, "name"), f"status {name!r} is defined twice")
        seen.add(name.lower())
        colour = str(item.get("colour", item.get("color")) or "#9e9e9e").strip()
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
            f.error(
                _line_of(item, "colour" if "colour" in item else "color"),
                f'colour must look like "#1e88e5", got {colour!r}',
            )
        description = f.text(item, "description", max_len=500) or ""
        action = f.choice(item, "action", ACTIONS, "none")
        behaviour_key = "ai_behaviour" if "ai_behaviour" in item else "ai_behavior"
        behaviour = f.choice(item, behaviour_key, AI_BEHAVIOURS, "continue")
        pause = f.integer(item, "pause_minutes", default=None, low=1, high=60 * 24 * 30)
        if pause is not None and behaviour != "pause":
            f.error(
                _line_of(item, "pause_minutes"),
                "`pause_minutes` only applies to ai_behaviour: pause",
            )
        if behaviour == "pause" and pause is None:
            pause = default_pause
        terminal = f.boolean(item, "terminal", False)
        ai_can_set = f.boolean(item, "ai_can_set", True)
        locks = f.boolean(item, "locks", False)
        rules = _status_rules(item, f, known_signals)
        statuses.append(
            Status(
                name=name,
                colour=colour,
                description=description,
                action=action,
                ai_behaviour=behaviour,
                pause_minutes=pause,
                terminal=terminal,
                ai_can_set=ai_can_set,
                rank=rank,
                rules=rules,
                locks=locks,
            )
        )
    if statuses and statuses[0].terminal:
        f.error(
            _line_of(items, 0), "the first status is where new leads start; it cannot be terminal"
        )
    return tuple(statuses)


def _status_rules(
    item: dict[Any, Any], f: _File, known_signals: Optional[set[str]]
) -> tuple[StatusRule, ...]:
    when = item.get("when")
    if when is None:
        return ()
    alternatives = when if isinstance(when, list) else [when]
    rules = []
    for index, alternative in enumerate(alternatives):
        line = _line_of(when, index) if isinstance(when, list) else _line_of(item, "when")
        if not isinstance(alternative, dict):
            f.error(
                line, "each `when` alternative must be a mapping with `signals` and/or `min_score`"
            )
            continue
        f.known_keys(alternative, ("signals", "min_score"), "`when`")
        signals = alternative.get("signals") or []
        if not isinstance(signals, list):
            f.error(
                _line_of(alternative, "signals"), "`signals` must be a list like [pricing, demo]"
            )
            signals = []
        for signal in signals:
            if known_signals is not None and signal not in known_signals:
                f.error(
                    _line_of(alternative, "signals"),
                    f"unknown signal {signal!r}; known: {', '.join(sorted(known_signals))}",
                )
        min_score = f.integer(alternative, "min_score", default=None, low=0, high=100)
        if not signals and min_score is None:
            f.error(line, "a `when` alternative needs `signals` or `min_score`")
            continue
        rules.append(StatusRule(tuple(str(s) for s in signals), min_score))
    return tuple(rules)


def _load_custom_fields(
    path: Optional[Path], problems: _Problems
) -> Optional[tuple[CustomField, ...]]:
    if path is None:
        return None
    data = _read_yaml(path, problems)
    f = _File(path, problems)
    if data is None:
        return ()
    data = f.mapping(data, 1, "custom_fields.yaml")
    if data is None:
        return None
    f.known_keys(data, ("fields",), "custom_fields.yaml")
    items = data.get("fields") or []
    if not isinstance(items, list):
        f.error(_line_of(data, "fields"), "`fields` must be a list")
        return None
    fields: list[CustomField] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        line = _line_of(items, index)
        if not isinstance(item, dict):
            f.error(line, "each field must be a mapping with `name`, `label` and `type`")
            continue
        f.known_keys(item, ("name", "label", "type", "choices"), "a custom field")
        name = f.text(item, "name", max_len=60)
        if name is None:
            continue
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            f.error(
                _line_of(item, "name"), f"field name {name!r} must be lower_case_with_underscores"
            )
        if name in seen:
            f.error(_line_of(item, "name"), f"field {name!r} is defined twice")
        seen.add(name)
        label = (
            f.text(
                item,
                "label",
                required=False,
                default=name.replace("_", " ").capitalize(),
                max_len=200,
            )
            or name
        )
        kind = f.choice(item, "type", FIELD_TYPES, "text")
        choices: tuple[str, ...] = ()
        if kind == "choice":
            raw = item.get("choices")
            if not isinstance(raw, list) or not raw:
                f.error(_line_of(item, "type"), "a choice field needs `choices: [one, two, ...]`")
            else:
                choices = tuple(str(c).strip() for c in raw)
        elif "choices" in item:
            f.error(_line_of(item, "choices"), "`choices` only applies to type: choice")
        fields.append(CustomField(name=name, label=label, type=kind, choices=choices))
    return tuple(fields)


def _strip_leading_comment(text: str) -> tuple[str, int]:
    """Drop a leading `<!-- ... -->` comment; return the rest and the line number it starts on."""
    stripped = text.lstrip()
    if not stripped.startswith("<!--"):
        return text, 1
    start = text.index("<!--")
    end = text.find("-->", start)
    if end == -1:
        return text, 1
    end += 3
    return text[end:], text[:end].count("\n") + 1


def _check_placeholders(
    text: str, first_line: int, f: _File, allowed: frozenset[str], required: frozenset[str]
) -> None:
    found: set[str] = set()
    formatter = string.Formatter()
    for offset, line in enumerate(text.split("\n")):
        number = first_line + offset
        try:
            parsed = list(formatter.parse(line))
        except ValueError as exc:
            f.error(number, f"{exc} (write {{{{ and }}}} for a literal brace)")
            continue
        for _literal, name, spec, conversion in parsed:
            if name is None:
                continue
            if name not in allowed:
                shown = "{" + name + "}"
                f.error(
                    number,
                    f"unknown placeholder {shown}; use one of: "
                    + ", ".join("{" + a + "}" for a in sorted(allowed)),
                )
                continue
            if spec or conversion:
                f.error(number, f"placeholder {{{name}}} takes no format or conversion")
            found.add(name)
    for name in sorted(required - found):
        f.error(first_line, f"missing placeholder {{{name}}}: the prompt must contain it")


def _load_markdown_prompt(
    path: Optional[Path], problems: _Problems, allowed: frozenset[str], required: frozenset[str]
) -> Optional[str]:
    if path is None:
        return None
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(path, 1, f"cannot read the file: {exc}")
        return None
    body, first_line = _strip_leading_comment(raw)
    f = _File(path, problems)
    _check_placeholders(body, first_line, f, allowed, required)
    if not body.strip():
        f.error(1, "the prompt is empty")
    return body.strip() + "\n"


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _load_knowledge(
    directory: Path, problems: _Problems, default_language: str, used: list[Path]
) -> tuple[KnowledgeSection, ...]:
    """One section per heading of every `*.md` file: `knowledge/*.md` in the default language,
    `knowledge/<lang>/*.md` its translations (same section ids); `name.es.md` also holds
    Spanish sections."""
    sections: list[KnowledgeSection] = []
    files: list[tuple[Path, str]] = []
    for path in sorted(directory.glob("*.md")):
        parts = path.name[:-3].split(".")
        language = default_language
        if len(parts) > 1 and re.fullmatch(r"[a-z]{2,3}", parts[-1]):
            language = parts[-1]
        files.append((path, language))
    for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
        if re.fullmatch(r"[a-z]{2,3}", folder.name):
            files.extend((path, folder.name) for path in sorted(folder.glob("*.md")))
    seen: dict[tuple[str, str], KnowledgeSection] = {}
    for path, language in files:
        used.append(path)
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.add(path, 1, f"cannot read the file: {exc}")
            continue
        for section in _sections_of(path, raw, language, problems):
            earlier = seen.get((section.id, language))
            if earlier is not None:
                problems.add(
                    path,
                    section.line,
                    f"section id {section.id!r} is already used at {earlier.file}:{earlier.line} "
                    "(give one of them its own id with {#some-id} after the title)",
                )
                continue
            seen[(section.id, language)] = section
            sections.append(section)
    return tuple(sections)


_SECTION_ID = re.compile(r"\s*\{#([a-z0-9][a-z0-9_-]*)\}\s*$")
_KEYWORDS_LINE = re.compile(r"^\s*keywords:\s*(.*)$", re.IGNORECASE)


def section_slug(title: str) -> str:
    """"Package prices" -> "package-prices" (the id of a section that names none)."""
    from bot.text import normalize

    return re.sub(r"[^a-z0-9]+", "-", normalize(title)).strip("-") or "section"


def missing_translations(config: PromptConfig) -> list[Problem]:
    """Sections of the default language that a listed language has no version of (its customers
    get the default language's text with a note saying so)."""
    default = config.business.default_language
    have = {(s.id, s.language) for s in config.knowledge}
    found: list[Problem] = []
    for language in config.business.languages:
        if language == default:
            continue
        for section in config.knowledge:
            if section.language == default and (section.id, language) not in have:
                found.append(
                    Problem(
                        section.file,
                        section.line,
                        f"section {section.id!r} ({section.title}) has no {language} version "
                        f"(add it to knowledge/{language}/ with the same id)",
                    )
                )
    return found


def _sections_of(
    path: Path, raw: str, language: str, problems: _Problems
) -> list[KnowledgeSection]:
    body, first_line = _strip_leading_comment(raw)
    # (line, heading path, title, id, body lines) per heading; text before any heading has none.
    chunks: list[tuple[Optional[int], str, str, str, list[str]]] = [(None, "", "", "", [])]
    trail: list[tuple[int, str]] = []
    for offset, line in enumerate(body.split("\n")):
        match = _HEADING.match(line)
        if not match:
            chunks[-1][4].append(line)
            continue
        level, title = len(match.group(1)), match.group(2).strip()
        explicit = _SECTION_ID.search(title)
        section_id = explicit.group(1) if explicit else ""
        title = _SECTION_ID.sub("", title).strip() if explicit else title
        trail = [(lvl, t) for lvl, t in trail if lvl < level] + [(level, title)]
        chunks.append(
            (
                first_line + offset,
                " > ".join(t for _, t in trail),
                title,
                section_id or section_slug(title),
                [],
            )
        )
    sections = []
    for line, heading, title, section_id, lines in chunks:
        keywords: tuple[str, ...] = ()
        kept = []
        for text_line in lines:
            found = _KEYWORDS_LINE.match(text_line)
            if found and not keywords and not any(k.strip() for k in kept):
                keywords = tuple(k.strip() for k in found.group(1).split(",") if k.strip())
                continue
            kept.append(text_line)
        text = "\n".join(kept).strip()
        if not text:
            continue
        if line is None:
            problems.add(
                path,
                first_line,
                "text before the first heading; start each section with a # heading",
            )
            continue
        sections.append(
            KnowledgeSection(
                file=str(path),
                line=line,
                heading=heading,
                title=title,
                text=text,
                language=language,
                id=section_id,
                keywords=keywords,
            )
        )
    return sections


def _load_templates(
    directory: Path, problems: _Problems, business: Optional[BusinessConfig], used: list[Path]
) -> dict[str, dict[str, str]]:
    templates: dict[str, dict[str, str]] = {}
    allowed_keys = CORE_TEMPLATES + OPTIONAL_TEMPLATES
    for path in sorted(directory.glob("*.yaml")):
        used.append(path)
        language = path.stem
        f = _File(path, problems)
        if not re.fullmatch(r"[a-z]{2,3}", language):
            f.error(
                1, f"name template files by language code (en.yaml, es.yaml), not {path.name!r}"
            )
            continue
        data = _read_yaml(path, problems)
        data = f.mapping(data, 1, path.name)
        if data is None:
            continue
        texts: dict[str, str] = {}
        for key, value in data.items():
            line = _line_of(data, key)
            if key not in allowed_keys:
                f.error(
                    line, f"unknown template {key!r}; expected one of: {', '.join(allowed_keys)}"
                )
                continue
            if not isinstance(value, str) or not value.strip():
                f.error(line, f"template {key!r} must be non-empty text")
                continue
            # Block scalars (|) span lines: placeholder lines are counted from the key's line.
            first = line + 1 if "\n" in value.rstrip("\n") else line
            _check_placeholders(value, first, f, TEMPLATE_PLACEHOLDERS, frozenset())
            texts[key] = value.rstrip("\n") if "\n" in value.rstrip("\n") else value.strip()
        templates[language] = texts
    if business is not None:
        _merge_business_templates(business, templates, directory, problems)
    return templates


def _merge_business_templates(
    business: BusinessConfig,
    templates: dict[str, dict[str, str]],
    directory: Path,
    problems: _Problems,
) -> None:
    """business.yaml's phone-ask and out-of-hours wording, when set, replace the default
    language's templates (so an admin words them where the business is described)."""
    language = business.default_language
    own = templates.setdefault(language, {})
    for key, value in (
        ("phone_ask", business.phone_ask_wording),
        ("out_of_hours", business.out_of_hours_message),
    ):
        if value:
            own[key] = value
    for key in CORE_TEMPLATES:
        if key not in own:
            where = (
                f"templates/{language}.yaml or business.yaml"
                if key in BUSINESS_TEMPLATES
                else f"templates/{language}.yaml"
            )
            problems.add(
                directory / f"{language}.yaml",
                1,
                f"the default language ({language}) has no {key!r} template (set it in {where})",
            )


# --------------------------------------------------------------------------------------------
# The effective configuration (for `leaddesk prompts show`)


def effective_configuration(config: PromptConfig) -> dict[str, Any]:
    """Everything in force as plain data: the admin's files merged with the shipped defaults,
    each file marked with where it came from."""
    business = config.business
    directory = config.directory.resolve()

    def source(path: Path) -> dict[str, str]:
        resolved = path.resolve()
        try:
            shown = resolved.relative_to(directory).as_posix()
            origin = "yours" if directory != DEFAULT_PROMPTS_DIR.resolve() else "shipped"
        except ValueError:
            shown, origin = str(resolved), "shipped default"
        return {"file": shown, "from": origin}

    def keywords(keyword_set: KeywordSet) -> dict[str, list[str]]:
        return {language: list(words) for language, words in keyword_set.by_language.items()}

    return {
        "directory": str(config.directory),
        "files": [source(path) for path in config.files],
        "business": {
            "name": business.name,
            "tone": business.tone,
            "default_language": business.default_language,
            "languages": list(business.languages),
            "contact": {
                "phone": business.phone,
                "email": business.email,
                "website": business.website,
            },
            "timezone": business.hours.timezone,
            "hours": {
                day: f"{_hhmm(span[0])}-{_hhmm(span[1])}" if span else "closed"
                for day, span in zip(DAYS, business.hours.days, strict=True)
            },
            "takeover_minutes": business.takeover_minutes,
            "default_pause_minutes": business.default_pause_minutes,
            "quiet_window": dict(business.quiet_windows),
            "phone_ask": {
                "wording": config.template("phone_ask"),
                "max_per_conversation": business.phone_ask_max,
                "min_score": business.phone_ask_min_score,
            },
            "out_of_hours_message": config.templates.get(business.default_language, {}).get(
                "out_of_hours"
            ),
        },
        "statuses": [
            {
                **status.as_dict(),
                "when": [
                    {
                        key: value
                        for key, value in (
                            ("signals", list(rule.signals)),
                            ("min_score", rule.min_score),
                        )
                        if value not in ([], None)
                    }
                    for rule in status.rules
                ],
            }
            for status in config.statuses
        ],
        "scoring": {
            "base": config.scoring.base,
            "intent_cap": config.scoring.intent_cap,
            "weights": dict(config.scoring.weights),
            "signals": {
                name: {"points": signal.points, "keywords": keywords(signal.keywords)}
                for name, signal in config.scoring.signals.items()
            },
            "phone_decline": keywords(config.scoring.phone_decline),
            "interests": {k: keywords(v) for k, v in config.scoring.interests.items()},
            "objections": {k: keywords(v) for k, v in config.scoring.objections.items()},
            "tags": {k: keywords(v) for k, v in config.scoring.tags.items()},
        },
        "custom_fields": [
            {
                "name": f.name,
                "label": f.label,
                "type": f.type,
                **({"choices": list(f.choices)} if f.choices else {}),
            }
            for f in config.custom_fields
        ],
        "templates": {language: dict(texts) for language, texts in config.templates.items()},
        "knowledge": [
            {
                "section": section.heading,
                "id": section.id,
                "language": section.language,
                "at": f"{source(Path(section.file))['file']}:{section.line}",
            }
            for section in config.knowledge
        ],
        "bot_system": config.bot_system,
        "copilot_system": config.copilot_system,
    }
