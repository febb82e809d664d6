"""`PromptConfig`: everything the admin configured, validated and put together, with the lookups
and renderings the bot and the copilot use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config.knowledge import KnowledgeSection
from bot.config.models import (
    TEMPLATE_PLACEHOLDERS,
    BusinessConfig,
    CustomField,
    ScoringConfig,
    Status,
)
from store.models import NOTE_CATEGORIES

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
    # Why a lead was lost: the choices of a status with `asks_reason` (statuses.yaml).
    lost_reasons: tuple[str, ...] = ()
    # The agents' canned replies (replies/*.md); None: `directory`'s replies/. A workspace's
    # directory without replies/ has the shipped ones.
    replies_dir: Path | None = None

    @property
    def replies_directory(self) -> Path:
        return self.replies_dir if self.replies_dir is not None else self.directory / "replies"

    # Statuses
    def status(self, name: str | None) -> Status | None:
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

    def custom_field(self, name: str) -> CustomField | None:
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

    def template(self, key: str, language: str | None = None, **values: Any) -> str:
        """The template in `language` (else the default language), filled in; "" when undefined."""
        default = self.business.default_language
        text = (
            self.templates.get(language or default, {}).get(key)
            or self.templates.get(default, {}).get(key)
            or ""
        )
        return text.format_map(self._template_values(values)).strip() if text else ""

    def _template_values(self, values: dict[str, Any]) -> dict[str, str]:
        filled = dict.fromkeys(TEMPLATE_PLACEHOLDERS, "")
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
    filled = dict.fromkeys(allowed, "")
    filled.update(common)
    filled.update({k: "" if v is None else str(v) for k, v in values.items()})
    return template.format_map(filled)
