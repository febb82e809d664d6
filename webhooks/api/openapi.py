"""`GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the registered endpoints and
their
pydantic models, so every route the API serves is described exactly as it validates."""

from __future__ import annotations

import re
from typing import Any

from flask import jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from webhooks.api import schemas
from webhooks.api.base import ENDPOINTS, Endpoint, endpoint

REF = "#/components/schemas/{model}"
_ERROR_TEXT = {
    400: "Malformed request (bad JSON, unknown parameter, bad cursor)",
    401: "Missing, unknown or disabled agent token",
    403: "Not allowed for this agent (another agent's lead, or admins only)",
    404: "No such resource",
    409: "Conflict with the current state (converted lead, duplicate contact, no agent available)",
    413: "Upload too large",
    422: "A field is invalid; `error.field` names it",
}


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = []

    def swap(match: re.Match[str]) -> str:
        converter, name = match.group(1), match.group(2)
        schema: dict[str, Any] = (
            {"type": "integer", "minimum": 0} if converter == "int" else {"type": "string"}
        )
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return "/api" + re.sub(r"<(?:(\w+):)?(\w+)>", swap, rule), params


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            param["description"] = description
        if prop.get("type") == "array":
            param["style"] = "form"
            param["explode"] = True
        out.append(param)
    return out


def _models() -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = [schemas.ErrorOut]
    for ep in ENDPOINTS:
        for model in (ep.body, ep.response):
            if model is not None and model not in seen:
                seen.append(model)
    return seen


def _operation(ep: Endpoint, path_params: list[dict[str, Any]]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": ep.name,
        "summary": ep.summary,
        "tags": [ep.tag],
    }
    if ep.description:
        op["description"] = " ".join(ep.description.split()) + (" Admins only." if ep.admin else "")
    parameters = list(path_params)
    if ep.query is not None:
        parameters += _query_parameters(ep.query)
    if parameters:
        op["parameters"] = parameters
    if ep.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model=ep.body.__name__)}}
            },
        }
    if ep.upload:
        op["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "The CSV file (UTF-8).",
                            }
                        },
                    }
                },
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    responses: dict[str, Any] = {}
    if ep.status == 204:
        responses["204"] = {"description": "Done"}
    elif ep.produces == "text/csv":
        responses[str(ep.status)] = {
            "description": "CSV file",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    elif ep.response is not None:
        responses[str(ep.status)] = {
            "description": "OK",
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model=ep.response.__name__)}}
            },
        }
    else:
        responses[str(ep.status)] = {"description": "OK"}
    for status in sorted(
        set(ep.errors) | ({401} if ep.auth else set()) | ({403} if ep.admin else set())
    ):
        responses[str(status)] = {
            "description": _ERROR_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorOut")}}},
        }
    op["responses"] = responses
    if not ep.auth:
        op["security"] = []
    return op


def build_document() -> dict[str, Any]:
    """The OpenAPI document for every endpoint registered on the API blueprint."""
    _, definitions = models_json_schema([(m, "validation") for m in _models()], ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for ep in ENDPOINTS:
        path, params = _path(ep.rule)
        paths.setdefault(path, {})[ep.method.lower()] = _operation(ep, params)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Leaddesk API",
            "version": "1.0.0",
            "description": (
                "Leads, notes, assignment, conversations, export/import, definitions, agents and "
                "notifications. Authenticate with an agent's API token: "
                "`Authorization: Bearer TOKEN` (`leaddesk agents add` prints one). Agents see "
                "their own and unassigned leads; admins see all. An agent who works in several "
                "workspaces names the one a request is for with the `X-Leaddesk-Workspace` "
                "header (its slug or id) or the path `/api/w/<slug>/...` (`GET /api/workspaces` "
                "lists theirs); without it a request works in their only workspace. "
                'Errors are `{"error": {"code", "message", "field"?}}`.'
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": tag} for tag in dict.fromkeys(ep.tag for ep in ENDPOINTS)],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An agent's API token",
                }
            },
            "schemas": definitions.get("$defs", {}),
        },
    }


@endpoint("GET", "/openapi.json", summary="This OpenAPI document", tag="Meta", auth=False)
def openapi_document() -> Any:
    """The OpenAPI 3.1 document of this API (no authentication needed)."""
    return jsonify(build_document())
