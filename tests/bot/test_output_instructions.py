"""What the model is told to answer: one JSON object with the schema's keys in order, its status
one of the configured ones; built once for each set of statuses."""

from __future__ import annotations

import json

from bot.schemas import output_instructions, turn_schema

STATUSES = ("New", "Interested", "Not Interested")


def _keys(instructions: str) -> dict[str, dict[str, object]]:
    return dict(json.loads(instructions[instructions.index("{") :]))


def test_the_instructions_list_the_schema_keys_in_order_with_the_configured_statuses() -> None:
    keys = _keys(output_instructions(STATUSES))
    assert list(keys) == list(turn_schema(STATUSES).model_fields)
    assert keys["status"]["enum"] == list(STATUSES)
    assert keys["intent_score"]["type"] == "integer"
    assert all(spec.get("description") for spec in keys.values())


def test_each_set_of_statuses_is_built_once_and_gets_its_own_statuses() -> None:
    first = output_instructions(STATUSES)
    assert output_instructions(STATUSES) is first
    others = output_instructions(("New", "Hot"))
    assert others is not first
    assert _keys(others)["status"]["enum"] == ["New", "Hot"]
