"""Definitions every agent may read: the configured statuses and custom fields (from `prompts/`)."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from webhooks.api import catalog, schemas
from webhooks.api.base import endpoint
from webhooks.api.serialize import dump

TAG = "Definitions"


@endpoint(
    "GET",
    "/statuses",
    summary="List the statuses",
    tag=TAG,
    response=schemas.StatusList,
    errors=(401,),
)
def list_statuses() -> Any:
    """The statuses admins configured in prompts/statuses.yaml, in their order, with colour and
    behaviour.
    """
    statuses = [
        {
            "name": s.name,
            "colour": s.colour,
            "description": s.description,
            "terminal": s.terminal,
            "ai_can_set": s.ai_can_set,
            "action": s.action,
            "ai_behaviour": s.ai_behaviour,
            "asks_reason": s.asks_reason,
        }
        for s in catalog.statuses()
    ]
    reasons = list(catalog.policy().lost_reasons)
    return jsonify(dump(schemas.StatusList, {"statuses": statuses, "lost_reasons": reasons}))


@endpoint(
    "GET",
    "/custom-fields",
    summary="List the custom field definitions",
    tag=TAG,
    response=schemas.CustomFieldList,
    errors=(401,),
)
def list_custom_fields() -> Any:
    """The custom fields a lead can carry, with their type and allowed choices."""
    fields = [
        {
            "name": f.name,
            "label": f.label,
            "type": f.type,
            "description": f.description,
            "required": f.required,
            "choices": list(f.choices),
        }
        for f in catalog.custom_fields()
    ]
    return jsonify(dump(schemas.CustomFieldList, {"custom_fields": fields}))
