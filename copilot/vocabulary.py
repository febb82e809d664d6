"""The copilot's command vocabulary: per language, the words and phrases agents type mapped to the
English the offline router reads (`prompts/copilot/<language>.yaml`, one file per language of
business.yaml), so admins add words without code. Also the words typos are corrected towards."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.config import DEFAULT_PROMPTS_DIR, Problem, PromptConfig, PromptError
from copilot.dates import PERIODS
from copilot.text import fold

log = logging.getLogger(__name__)

SECTIONS = ("phrases", "pronouns")
MAX_PHRASE_WORDS = 7

# The English the router understands: phrases in any language map to these (or to a status name
# or a custom field's name). Typos in command words are corrected towards the first group.
COMMAND_WORDS = (
    "summarise",
    "summarize",
    "summary",
    "qualify",
    "draft",
    "email",
    "intro",
    "archive",
    "assign",
    "reassign",
    "unassign",
    "status",
    "note",
    "reply",
    "takeover",
    "resume",
    "find",
    "search",
    "show",
    "list",
    "leads",
    "lead",
    "rename",
    "change",
    "update",
    "happened",
    "next",
    "step",
    "action",
    "follow",
    "unassigned",
    "stale",
    "recent",
    "notifications",
    "write",
    "compose",
    "prepare",
    "give",
    "move",
    "mark",
    "set",
    "transfer",
    "customer",
    "contact",
    "yesterday",
    "today",
    "week",
    "month",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "hot",
    "warm",
    "help",
    "archived",
    "company",
    "phone",
    "name",
    "every",
    "all",
)
TARGETS = frozenset(COMMAND_WORDS) | {
    "summarise",
    "summary of",
    "qualify",
    "draft an intro email for",
    "an intro email for",
    "intro email",
    "email",
    "send",
    "send the",
    "archive",
    "assign",
    "to",
    "set",
    "status",
    "note",
    "reply to",
    "take over",
    "resume the bot for",
    "find",
    "show",
    "leads",
    "lead",
    "my",
    "my leads",
    "me",
    "hot",
    "hot leads",
    "unassigned",
    "stale",
    "new",
    "new leads",
    *PERIODS,
    "what happened",
    "what happened today",
    "what should i do next with",
    "next step for",
    "rename",
    "as",
    "is",
    "is it hot",
    "how hot is",
    "it",
    "all",
    "all leads",
    "more",
    "help",
    "yes",
    "no",
    "the",
    "of",
    "for",
    "on",
    "with",
    "from",
    "and",
    "in",
    "company",
    "name",
    "phone",
    "mark",
    "move",
    "give",
    "leads of",
    "who is",
    "tell me about",
    "add a note to",
    "note for",
    "archive all",
    "assign all",
    "set all",
    "leads created",
    "created",
    "follow up",
    "interested",
    "scouting",
    "converted",
    "not interested",
    "qualify lead",
    "what's new",
    "notifications",
    "every",
    "with score",
    "score",
    "above",
    "below",
    "between",
    "on whatsapp",
    "on messenger",
    "on instagram",
    "on web",
    "next action for",
    "next step",
    "write",
    "assign to me",
    "give me",
    "a",
    "an",
    "than",
    "over",
    "under",
    "remind me to call",
    "remind me to email",
    "remind me to",
    "book a demo with",
    "book a meeting with",
    "schedule a call with",
    "what's on my plate",
    "my tasks",
    "overdue tasks",
    "tomorrow",
    "at",
    "morning",
    "afternoon",
}


@dataclass(frozen=True)
class Vocabulary:
    """Every language's phrases folded, longest first, ready for the router."""

    phrases: dict[str, str] = field(default_factory=dict)  # folded phrase -> English
    pronouns: frozenset[str] = frozenset()
    typo_words: dict[str, str] = field(default_factory=dict)  # folded word -> canonical word
    languages: tuple[str, ...] = ()

    @property
    def longest(self) -> int:
        return max((len(p.split()) for p in self.phrases), default=1)


EMPTY = Vocabulary(typo_words={w: w for w in COMMAND_WORDS})


def load_vocabulary(prompts: PromptConfig | None) -> Vocabulary:
    """The vocabulary of the prompts directory (shipped files fill in a missing one); PromptError
    lists every problem."""
    if prompts is None:
        return EMPTY
    problems: list[Problem] = []
    vocabulary = _load(prompts, problems)
    if problems:
        raise PromptError(problems)
    return vocabulary


def vocabulary_for(prompts: PromptConfig | None) -> Vocabulary:
    """The vocabulary as far as it is valid (problems are logged; `prompts check` lists them)."""
    if prompts is None:
        return EMPTY
    problems: list[Problem] = []
    vocabulary = _load(prompts, problems)
    for problem in problems:
        log.warning("copilot vocabulary: %s", problem)
    return vocabulary


def check_vocabulary(prompts: PromptConfig) -> list[Problem]:
    """Every problem of the copilot vocabulary files (for `leaddesk prompts check`)."""
    problems: list[Problem] = []
    _load(prompts, problems)
    return problems


def _load(prompts: PromptConfig, problems: list[Problem]) -> Vocabulary:
    allowed = (
        TARGETS
        | {fold(s) for s in prompts.status_names}
        | {fold(f.name) for f in prompts.custom_fields}
        | {fold(f.label) for f in prompts.custom_fields}
    )
    words = {word for target in allowed for word in target.split()}
    phrases: dict[str, str] = {}
    pronouns: set[str] = set()
    languages: list[str] = []
    for language in prompts.business.languages:
        path = _pick(prompts.directory, language)
        if path is None:
            problems.append(
                Problem(
                    str(prompts.directory / "copilot" / f"{language}.yaml"),
                    1,
                    f"the copilot vocabulary for {language} (listed in business.yaml) is missing",
                )
            )
            continue
        languages.append(language)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 1
            problems.append(Problem(str(path), line, f"not valid YAML: {exc}"))
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        if not isinstance(data, dict):
            problems.append(Problem(str(path), 1, "must be a mapping with phrases: and pronouns:"))
            continue
        for key in data:
            if key not in SECTIONS:
                problems.append(
                    Problem(
                        str(path),
                        _line(lines, str(key)),
                        f"unknown section {key!r} (known: {', '.join(SECTIONS)})",
                    )
                )
        raw_phrases = data.get("phrases") or {}
        if not isinstance(raw_phrases, dict):
            problems.append(
                Problem(
                    str(path),
                    _line(lines, "phrases"),
                    "phrases must map what agents type to the English the copilot reads",
                )
            )
            raw_phrases = {}
        for typed, meaning in raw_phrases.items():
            where = _line(lines, str(typed))
            if not isinstance(typed, str) or not fold(typed):
                problems.append(Problem(str(path), where, f"{typed!r} is not a phrase"))
                continue
            if not isinstance(meaning, str) or not fold(meaning):
                problems.append(
                    Problem(str(path), where, f"{typed!r} must map to an English phrase")
                )
                continue
            if len(fold(typed).split()) > MAX_PHRASE_WORDS:
                problems.append(
                    Problem(str(path), where, f"{typed!r} is longer than {MAX_PHRASE_WORDS} words")
                )
                continue
            target = fold(meaning)
            if target not in allowed and not all(word in words for word in target.split()):
                problems.append(
                    Problem(
                        str(path),
                        where,
                        f"{typed!r} maps to {meaning!r}, which the copilot does not know",
                    )
                )
                continue
            phrases.setdefault(fold(typed), target)
        raw_pronouns = data.get("pronouns") or []
        if not isinstance(raw_pronouns, list) or not all(
            isinstance(p, str) and fold(p) for p in raw_pronouns
        ):
            problems.append(
                Problem(
                    str(path),
                    _line(lines, "pronouns"),
                    "pronouns must be a list of words like [him, her, that lead]",
                )
            )
        else:
            pronouns.update(fold(p) for p in raw_pronouns)
    typo_words = {w: w for w in COMMAND_WORDS}
    for typed, target in phrases.items():
        if " " not in typed and " " not in target and target in COMMAND_WORDS:
            typo_words.setdefault(typed, target)
    return Vocabulary(
        phrases=phrases,
        pronouns=frozenset(pronouns),
        typo_words=typo_words,
        languages=tuple(languages),
    )


def _pick(directory: Path, language: str) -> Path | None:
    for base in (directory, DEFAULT_PROMPTS_DIR):
        path = base / "copilot" / f"{language}.yaml"
        if path.is_file():
            return path
    return None


def _line(lines: list[str], key: str) -> int:
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*:")
    for number, text in enumerate(lines, 1):
        if pattern.match(text):
            return number
    return 1
