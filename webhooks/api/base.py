"""The REST API's blueprint and the `endpoint` decorator that registers a view with its OpenAPI
entry.

Each view is declared once with its body/query models; the decorator authenticates the agent,
validates the input with pydantic (a 4xx naming the field, never a 500) and records what
`/api/openapi.json` says about it, so the document cannot drift from the code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from flask import Blueprint, request
from pydantic import BaseModel, ValidationError

from store.domain.errors import Conflict, Invalid, NotAllowed, NotFound, RuleError
from webhooks.app import ApiError, error_response, json_body, require_agent, services

log = logging.getLogger(__name__)

blueprint = Blueprint("leads_api", __name__, url_prefix="/api")

# How a refusal of the business rules answers over HTTP.
HTTP_STATUS: dict[type[RuleError], int] = {
    NotAllowed: 403,
    NotFound: 404,
    Conflict: 409,
    Invalid: 422,
}


def http_status(exc: RuleError) -> int:
    for kind in type(exc).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 400


def api_error(exc: RuleError) -> ApiError:
    """The HTTP answer for a refusal of the business rules."""
    return ApiError(http_status(exc), exc.code, exc.message, exc.field)


@blueprint.errorhandler(RuleError)
def _rule_error(exc: RuleError) -> Any:
    return error_response(http_status(exc), exc.code, exc.message, exc.field)


@dataclass
class Endpoint:
    """What the OpenAPI document says about one operation."""

    method: str
    rule: str
    name: str
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    admin: bool = False
    auth: bool = True
    produces: str = "application/json"
    upload: bool = False
    description: str = ""
    errors: tuple[int, ...] = field(default_factory=tuple)
    # Whether the operation works in a workspace (X-Leaddesk-Workspace); False: about the person.
    workspace: bool = True


ENDPOINTS: list[Endpoint] = []


def endpoint(
    method: str,
    rule: str,
    *,
    summary: str,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    admin: bool = False,
    auth: bool = True,
    produces: str = "application/json",
    upload: bool = False,
    description: str = "",
    errors: tuple[int, ...] = (),
    workspace: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `view` on the API blueprint; it receives `body=`/`params=` as validated models."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            if query is not None:
                kwargs["params"] = parse_query(query)
            if body is not None:
                kwargs["body"] = parse_model(body, json_body())
            return view(**kwargs)

        wrapped = require_agent(admin=admin, workspace=workspace)(wrapper) if auth else wrapper
        blueprint.add_url_rule(rule, endpoint=view.__name__, view_func=wrapped, methods=[method])
        ENDPOINTS.append(
            Endpoint(
                method=method,
                rule=rule,
                name=view.__name__,
                summary=summary,
                tag=tag,
                body=body,
                query=query,
                response=response,
                status=status,
                admin=admin,
                auth=auth,
                produces=produces,
                upload=upload,
                description=description or (view.__doc__ or "").strip(),
                errors=errors,
                workspace=workspace,
            )
        )
        return wrapped

    return decorator


def parse_model(model: type[BaseModel], data: Any) -> Any:
    """Validate `data` with `model`; the first problem becomes a 422 naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> ApiError:
    first = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in first.get("loc", ()) if part != "__root__")
    message = first.get("msg", "invalid value")
    if first.get("type") == "extra_forbidden":
        message = "unknown field"
    return ApiError(422, "validation_error", f"{loc}: {message}" if loc else message, loc or None)


def _list_fields(model: type[BaseModel]) -> set[str]:
    out = set()
    for name, info in model.model_fields.items():
        origin = getattr(info.annotation, "__origin__", None)
        if origin is list:
            out.add(name)
    return out


def parse_query(model: type[BaseModel], args: Any = None) -> Any:
    """Read query parameters into `model`: lists take repeats, unknown parameters are refused."""
    args = request.args if args is None else args
    lists = _list_fields(model)
    data: dict[str, Any] = {}
    for key in args:
        if key not in model.model_fields:
            raise ApiError(400, "unknown_parameter", f"unknown query parameter {key!r}", key)
        values = args.getlist(key)
        if key in lists:
            data[key] = values
        else:
            if len(values) > 1:
                raise ApiError(400, "invalid_parameter", f"give {key!r} only once", key)
            # An empty value (e.g. an empty form field) means "not set".
            if values[0] != "":
                data[key] = values[0]
    return parse_model(model, data)


def now() -> datetime:
    """The current time by the app's clock (tests hand a controllable one in `Services`)."""
    value = services().clock()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
