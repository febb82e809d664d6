"""The structured answer the language model gives for one burst of customer messages.

The model proposes, code decides: reasoning comes before the verdicts, labels are Literals, and
numbers and texts are clamped here; status choice, phone rules and reply safety are checked in code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

IntentLevel = Literal["very_low", "mild", "moderate", "high", "ready_to_buy"]


@dataclass(frozen=True)
class ModelJudgement:
    """The model's reading of the customer's intent: one weighted factor of the score."""

    intent_score: int = 50
    intent_level: str = ""
    intent_evidence: str = ""
    reasoning: str = ""


@dataclass(frozen=True)
class ModelTurn:
    """The model's validated answer for one burst (what `parse_turn` returns)."""

    reasoning: str
    intent_evidence: str
    intent_level: str
    intent_score: int
    status: str
    summary: str
    next_best_action: str
    language: str
    reply: str
    interests: list[str] = field(default_factory=list)
    objections: list[str] = field(default_factory=list)
    # Filled in by the caller: the knowledge sections the prompt offered, and the language the
    # reply is in when it is not the one the model was told to write in.
    knowledge: list[str] = field(default_factory=list)
    language_mismatch: str | None = None

    @property
    def judgement(self) -> ModelJudgement:
        return ModelJudgement(
            intent_score=self.intent_score,
            intent_level=self.intent_level,
            intent_evidence=self.intent_evidence,
            reasoning=self.reasoning,
        )


class MalformedAnswer(ValueError):
    """The model's answer is not the JSON object we asked for."""


class _TurnBase(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @field_validator("intent_score", mode="before", check_fields=False)
    @classmethod
    def _clamp_score(cls, value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("intent_score must be a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError("intent_score must be a number") from None
        if number != number:  # NaN
            raise ValueError("intent_score must be a number")
        return int(max(0, min(100, round(number))))

    @field_validator("interests", "objections", mode="before", check_fields=False)
    @classmethod
    def _short_labels(cls, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ValueError("must be a list of short labels")
        labels: list[str] = []
        for item in value:
            text = " ".join(str(item).split())[:60]
            if text and text not in labels:
                labels.append(text)
        return labels[:8]

    @field_validator(
        "reasoning",
        "intent_evidence",
        "summary",
        "next_best_action",
        mode="before",
        check_fields=False,
    )
    @classmethod
    def _bounded_text(cls, value: Any, info: Any) -> str:
        limits = {
            "reasoning": 1500,
            "intent_evidence": 300,
            "summary": 1200,
            "next_best_action": 300,
        }
        text = "" if value is None else str(value).strip()
        return text[: limits.get(info.field_name, 1000)]

    @field_validator("language", mode="before", check_fields=False)
    @classmethod
    def _language(cls, value: Any) -> str:
        text = str(value or "").strip().lower()[:5]
        match = re.match(r"^([a-z]{2,3})\b", text)
        return match.group(1) if match else ""

    @field_validator("reply", mode="before", check_fields=False)
    @classmethod
    def _reply(cls, value: Any) -> str:
        text = "" if value is None else str(value).strip()
        if not text:
            raise ValueError("the reply is empty")
        return text[:2000]


@lru_cache(maxsize=32)
def turn_schema(status_names: tuple[str, ...]) -> type[BaseModel]:
    """The answer schema for these statuses (the bot may only pick one of them)."""
    status_type: Any = Literal[status_names]
    return create_model(
        "TurnAssessment",
        __base__=_TurnBase,
        reasoning=(
            str,
            Field(
                description="First think: in two or three sentences, what the customer wants, "
                "what they asked, and how ready to buy they are."
            ),
        ),
        intent_evidence=(
            str,
            Field(
                "",
                description="The customer's exact words (copied verbatim) that best "
                "show their intent.",
            ),
        ),
        intent_level=(
            IntentLevel,
            Field(
                description="very_low: no interest or negative; mild: curious; "
                "moderate: detailed questions; high: comparing or asking "
                "prices; ready_to_buy: asking for next steps."
            ),
        ),
        intent_score=(
            int,
            Field(
                description="Purchase intent 0-100 consistent with intent_level "
                "(0-20, 21-40, 41-60, 61-80, 81-100)."
            ),
        ),
        status=(
            status_type,
            Field(description="The lead status that fits the whole conversation."),
        ),
        interests=(
            list[str],
            Field(
                default_factory=list,
                description="Products or topics the customer is interested in (short labels).",
            ),
        ),
        objections=(
            list[str],
            Field(
                default_factory=list,
                description="What holds them back (short labels), e.g. Price, Timing.",
            ),
        ),
        summary=(
            str,
            Field(
                description="Up to three sentences summarising the whole conversation so far, "
                "for the sales team."
            ),
        ),
        next_best_action=(
            str,
            Field("", description="One short sentence: what a sales agent should do next."),
        ),
        language=(
            str,
            Field(description="ISO 639-1 code of the customer's language, e.g. en, es."),
        ),
        reply=(str, Field(description="Your reply to the customer, in their language.")),
    )


@lru_cache(maxsize=32)
def output_instructions(status_names: tuple[str, ...]) -> str:
    """How to answer: one JSON object following the schema, nothing else (built once for each set
    of statuses: the schema's JSON costs about half a millisecond, at every model call before)."""
    schema = turn_schema(status_names).model_json_schema()
    properties = {
        name: {k: v for k, v in spec.items() if k in ("type", "enum", "description", "items")}
        for name, spec in schema.get("properties", {}).items()
    }
    return (
        "Answer with ONE JSON object and nothing else (no prose, no code fence), with these keys "
        "in this "
        "order:\n" + json.dumps(properties, ensure_ascii=False, indent=1)
    )


def parse_turn(content: Any, status_names: tuple[str, ...]) -> ModelTurn:
    """Validate the model's raw answer into a `ModelTurn`; MalformedAnswer when it does not fit."""
    text = _content_text(content)
    data = _extract_json(text)
    try:
        answer = turn_schema(status_names).model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise MalformedAnswer(problems) from None
    return ModelTurn(**answer.model_dump())


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    raise MalformedAnswer("the answer has no text")


def _extract_json(text: str) -> dict[str, Any]:
    text = (text or "").strip()
    fence = re.search(r"```(?:json)?\s*(\{.*\})\s*```", text, re.DOTALL)
    if fence:
        text = fence.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end <= start:
        raise MalformedAnswer("the answer contains no JSON object")
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise MalformedAnswer(f"the answer is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise MalformedAnswer("the answer is not a JSON object")
    return data


def optional_text(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None
