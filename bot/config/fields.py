"""Validated value types of the business configuration.

Each type refuses a bad value with the message `leaddesk prompts check` prints; `errors.py` puts
the file and line in front of it (and the YAML key in place of `{key}`, the owner in place of
`{what}`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import PlainValidator, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from bot.text import KeywordSet

LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")
SNAKE_CASE = re.compile(r"[a-z][a-z0-9_]*")

# Error types `errors.py` knows: a finished message, one naming its key, one naming its owner.
PLAIN, KEYED, OWNED = "config", "config_key", "config_what"


def problem(message: str, kind: str = PLAIN, *, offset: int = 0) -> PydanticCustomError:
    """One validation error; `offset` counts lines below the key (a multi-line text)."""
    return PydanticCustomError(kind, message, {"offset": offset} if offset else None)


def problems(found: Iterable[tuple[tuple[str | int, ...], PydanticCustomError]]) -> ValidationError:
    """Several errors at once, each at its place (relative to the value being validated)."""
    return ValidationError.from_exception_data(
        "configuration",
        [InitErrorDetails(type=error, loc=loc, input=None) for loc, error in found],
    )


def text(
    max_len: int = 2000, *, required: bool = True, default: str | None = None
) -> PlainValidator:
    """Text (a number is read as text), stripped; empty is refused when `required`."""

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise problem("`{key}` must be text", KEYED)
        stripped = str(value).strip()
        if not stripped:
            if required:
                raise problem("`{key}` must not be empty", KEYED)
            return default
        if len(stripped) > max_len:
            raise problem(f"`{{key}}` is longer than {max_len} characters", KEYED)
        return stripped

    return PlainValidator(check)


def whole(low: int, high: int) -> PlainValidator:
    """A whole number from `low` to `high`."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise problem(f"`{{key}}` must be a whole number, got {value!r}", KEYED)
        if not low <= value <= high:
            raise problem(f"`{{key}}` must be between {low} and {high}, got {value}", KEYED)
        return value

    return PlainValidator(check)


def flag() -> PlainValidator:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise problem(f"`{{key}}` must be true or false, got {value!r}", KEYED)
        return value

    return PlainValidator(check)


def one_of(choices: tuple[str, ...]) -> PlainValidator:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise problem(f"`{{key}}` must be one of: {', '.join(choices)}; got {value!r}", KEYED)
        return value

    return PlainValidator(check)


def keywords() -> PlainValidator:
    """A `{language: [keyword, ...]}` mapping, compiled into a KeywordSet."""

    def check(value: Any) -> KeywordSet:
        if not isinstance(value, dict):
            raise problem("{what} must map language codes (en, es, ...) to keyword lists", OWNED)
        found: list[tuple[tuple[str | int, ...], PydanticCustomError]] = []
        by_language: dict[str, tuple[str, ...]] = {}
        for language, items in value.items():
            if not isinstance(language, str) or not LANGUAGE_CODE.fullmatch(language):
                message = f"{language!r} is not a language code like en, es, ar"
                found.append(((language,), problem(message)))
                continue
            if not isinstance(items, list):
                message = f"{{what}} for {language} must be a list like [word, another phrase]"
                found.append(((language,), problem(message, OWNED)))
                continue
            for index, item in enumerate(items):
                if (
                    isinstance(item, bool)
                    or not isinstance(item, str | int)
                    or not str(item).strip("=* ")
                ):
                    message = f"{{what}} for {language}: {item!r} is not a keyword"
                    found.append(((language, index), problem(message, OWNED)))
            by_language[language] = tuple(str(item).strip() for item in items)
        if found:
            raise problems(found)
        return KeywordSet(by_language)

    return PlainValidator(check)


# --------------------------------------------------------------------------------------------
# Placeholders in texts the admin writes


def placeholder_problems(
    text: str, allowed: frozenset[str], required: frozenset[str] = frozenset()
) -> list[tuple[int, str]]:
    """Every `{placeholder}` mistake in `text` as (line offset, message)."""
    found: list[tuple[int, str]] = []
    present: set[str] = set()
    formatter = string.Formatter()
    for offset, line in enumerate(text.split("\n")):
        try:
            parsed = list(formatter.parse(line))
        except ValueError as exc:
            found.append((offset, f"{exc} (write {{{{ and }}}} for a literal brace)"))
            continue
        for _literal, name, spec, conversion in parsed:
            if name is None:
                continue
            if name not in allowed:
                found.append(
                    (
                        offset,
                        f"unknown placeholder {{{name}}}; use one of: "
                        + ", ".join("{" + a + "}" for a in sorted(allowed)),
                    )
                )
                continue
            if spec or conversion:
                found.append((offset, f"placeholder {{{name}}} takes no format or conversion"))
            present.add(name)
    found.extend(
        (0, f"missing placeholder {{{name}}}: the prompt must contain it")
        for name in sorted(required - present)
    )
    return found


def with_placeholders(allowed: frozenset[str], *, below_key: bool) -> Callable[[Any], Any]:
    """Check the placeholders of a YAML text; `below_key`: a multi-line text starts on the line
    after its key."""

    def check(value: str | None) -> str | None:
        if not value:
            return value
        first = 1 if below_key and "\n" in value.rstrip("\n") else 0
        found = placeholder_problems(value, allowed)
        if found:
            raise problems(((), problem(m, offset=first + o)) for o, m in found)
        return value

    return check
