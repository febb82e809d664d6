"""The admin-defined vocabulary the API and console work with: statuses, the business rules'
`Policy`, and custom field definitions.

All come from the business configuration in force (`Services.prompts`, so hot reloads show up
at once).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bot import PromptConfig
from bot.config import Status
from bot.policy import build_policy
from store.contacts import InvalidContact, normalize_email, normalize_phone
from store.domain.policy import Policy
from webhooks.app import ApiError, services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FieldDef:
    name: str
    label: str
    type: str  # text, number, integer, boolean, date, choice, email, phone, url
    description: str
    required: bool
    choices: tuple[str, ...]
    # The definition's own check (the bot's CustomField.coerce), shared with the copilot.
    coerce: Any | None = None


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if not isinstance(obj, dict) and hasattr(obj, name):
            return getattr(obj, name)
    return default


def current_prompts() -> PromptConfig:
    """The business configuration in force (a hot reload of prompts/ shows up at once)."""
    return services().prompts()


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    # Enums (e.g. an AI-behaviour enum) read as their value.
    return str(getattr(value, "value", value))


def statuses() -> tuple[Status, ...]:
    """The statuses admins configured in prompts/statuses.yaml, in their order."""
    return tuple(current_prompts().statuses)


def policy() -> Policy:
    """What the business rules read from the configuration in force (statuses, pauses, the
    takeover window with LEADDESK_TAKEOVER_MINUTES as its fallback, opening hours)."""
    fallback = int(services().settings.takeover_minutes)
    return build_policy(current_prompts(), takeover_fallback=fallback)


def status_colours() -> dict[str, str]:
    return {s.name: s.colour for s in statuses()}


def terminal_statuses() -> tuple[str, ...]:
    return policy().terminal_statuses


_TYPE_ALIASES = {
    "string": "text",
    "str": "text",
    "text": "text",
    "textarea": "text",
    "long_text": "text",
    "number": "number",
    "float": "number",
    "decimal": "number",
    "int": "integer",
    "integer": "integer",
    "bool": "boolean",
    "boolean": "boolean",
    "checkbox": "boolean",
    "date": "date",
    "choice": "choice",
    "select": "choice",
    "enum": "choice",
    "email": "email",
    "phone": "phone",
    "url": "url",
    "link": "url",
}


def custom_fields() -> list[FieldDef]:
    prompts = current_prompts()
    raw = _get(prompts, "custom_fields", default=None) if prompts is not None else None
    if isinstance(raw, dict):
        raw = [
            {"name": key, **value} if isinstance(value, dict) else {"name": key, "type": value}
            for key, value in raw.items()
        ]
    out = []
    for item in raw or []:
        name = _as_text(_get(item, "name", "key"))
        if not name:
            continue
        kind = _TYPE_ALIASES.get(
            _as_text(_get(item, "type", "kind", default="text")).lower(), "text"
        )
        choices = _get(item, "choices", "options", "values", default=None) or ()
        if choices and kind == "text":
            kind = "choice"
        out.append(
            FieldDef(
                name=name,
                label=_as_text(_get(item, "label", "title", default=""))
                or name.replace("_", " ").capitalize(),
                type=kind,
                description=_as_text(_get(item, "description", "help", default="")),
                required=bool(_get(item, "required", default=False)),
                choices=tuple(_as_text(c) for c in choices),
                coerce=getattr(item, "coerce", None) if not isinstance(item, dict) else None,
            )
        )
    return out


def clean_custom_fields(
    values: dict[str, Any], current: dict[str, Any], *, region: str
) -> dict[str, Any]:
    """Merge `values` into `current` after checking each against its definition; None removes a
    value.
    """
    definitions = {f.name: f for f in custom_fields()}
    merged = dict(current or {})
    for key, value in values.items():
        definition = definitions.get(key)
        where = f"custom_fields.{key}"
        if definition is None:
            known = ", ".join(definitions) or "(none defined)"
            raise ApiError(
                422, "unknown_custom_field", f"no custom field {key!r}; defined: {known}", where
            )
        if value is None or (isinstance(value, str) and not value.strip()):
            if definition.required:
                raise ApiError(422, "validation_error", f"{definition.label} is required", where)
            merged.pop(key, None)
            continue
        if callable(definition.coerce) and not isinstance(value, (dict, list)):
            try:
                coerced = definition.coerce(value)
            except (TypeError, ValueError) as exc:
                raise ApiError(422, "validation_error", str(exc), where) from None
            if isinstance(coerced, float) and not math.isfinite(coerced):
                raise ApiError(
                    422, "validation_error", f"{definition.label} must be a finite number", where
                )
            if coerced is None:
                merged.pop(key, None)
            else:
                merged[key] = coerced
            continue
        merged[key] = _clean_value(definition, value, region, where)
    return merged


def _clean_value(definition: FieldDef, value: Any, region: str, where: str) -> Any:
    def bad(why: str) -> ApiError:
        return ApiError(422, "validation_error", f"{definition.label}: {why}", where)

    kind = definition.type
    if kind in ("number", "integer"):
        if isinstance(value, bool):
            raise bad("must be a number")
        if isinstance(value, str):
            try:
                value = (
                    float(value.strip().replace(",", ""))
                    if kind == "number"
                    else int(value.strip())
                )
            except ValueError:
                raise bad(
                    "must be a number" if kind == "number" else "must be a whole number"
                ) from None
        if kind == "integer":
            if isinstance(value, float) and not value.is_integer():
                raise bad("must be a whole number")
            if not isinstance(value, (int, float)):
                raise bad("must be a whole number")
            return int(value)
        if (
            not isinstance(value, (int, float))
            or value != value
            or value in (float("inf"), float("-inf"))
        ):
            raise bad("must be a number")
        return value
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            return False
        raise bad("must be true or false")
    if not isinstance(value, str):
        raise bad("must be text")
    value = value.strip()
    if len(value) > 2000:
        raise bad("is too long (2000 characters at most)")
    if kind == "date":
        try:
            return (
                date.fromisoformat(value[:10]).isoformat()
                if len(value) <= 10
                else datetime.fromisoformat(value).date().isoformat()
            )
        except ValueError:
            raise bad("must be a date like 2024-05-31") from None
    if kind == "choice":
        for choice in definition.choices:
            if choice.lower() == value.lower():
                return choice
        raise bad(f"must be one of: {', '.join(definition.choices)}")
    if kind == "email":
        try:
            return normalize_email(value)
        except InvalidContact as exc:
            raise bad(str(exc)) from None
    if kind == "phone":
        try:
            return normalize_phone(value, region)
        except InvalidContact as exc:
            raise bad(str(exc)) from None
    if kind == "url" and not re.match(r"^https?://[^\s]+$", value):
        raise bad("must be a web address starting with http:// or https://")
    return value
