"""Application factory: one blueprint per channel and API, JSON errors under /api and /webhooks."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, Callable, Optional, TypeVar

from flask import Flask, Request, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.datastructures import ImmutableMultiDict, MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.utils import cached_property

from store import make_engine, make_session_factory
from store.text import clean_json, clean_text
from webhooks.ratelimit import init_limiter

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Blueprints register themselves here as (module path, attribute); each module exposes a Blueprint.
BLUEPRINTS: tuple[tuple[str, str], ...] = (
    ("webhooks.api", "blueprint"),
    ("webhooks.console", "blueprint"),
    ("webhooks.whatsapp", "bp"),
    ("webhooks.messenger", "messenger_bp"),
    ("webhooks.messenger", "instagram_bp"),
    ("webhooks.webchat", "bp"),
    ("webhooks.copilot_api", "bp"),
)


@dataclass
class Services:
    """What the views need, built once by the entry point (or by `create_app` with defaults)."""

    settings: Any
    session_factory: sessionmaker[Session]
    extras: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        return self.extras.get(name)


class ApiError(Exception):
    """A client error answered as `{"error": {"code", "message", "field"?}}` with its HTTP status."""

    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_response(status: int, code: str, message: str, field: Optional[str] = None):  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    return jsonify({"error": body}), status


def services() -> Services:
    from flask import current_app

    return current_app.extensions["leaddesk"]  # type: ignore[no-any-return]


class _JSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that a body nested too deeply to decode, or with NaN or Infinity (which
    Python accepts but JSON, and PostgreSQL's json columns, do not) is invalid JSON: a 400, not a 500."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_constant", _no_constants)
        try:
            # Every string cleaned (NUL, lone surrogates, NFC) before any view sees it.
            return clean_json(super().loads(s, **kwargs))
        except RecursionError:
            raise ValueError("the JSON is nested too deeply") from None


class _Request(Request):
    """Flask's request, with form fields and query parameters cleaned like JSON strings."""

    def _load_form_data(self) -> None:
        loaded = "form" in self.__dict__
        super()._load_form_data()
        if not loaded:
            form = self.__dict__["form"]
            self.__dict__["form"] = ImmutableMultiDict(
                [(clean_text(k), clean_text(v)) for k, v in form.items(multi=True)]
            )

    @cached_property
    def args(self) -> MultiDict[str, str]:  # type: ignore[override]
        return self.parameter_storage_class(
            [(clean_text(k), clean_text(v)) for k, v in super().args.items(multi=True)]
        )


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def create_app(settings: Any, *, session_factory: Optional[sessionmaker[Session]] = None,
               **extras: Any) -> Flask:
    """Build the Flask app. `extras` hands over collaborators (bot, dispatcher, outbox, model...)."""
    import importlib

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    secret = settings.secret_key.get_secret_value() if getattr(settings, "secret_key", None) else None
    app.config["SECRET_KEY"] = secret or secrets.token_hex(32)
    app.json = _JSONProvider(app)
    app.request_class = _Request
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if session_factory is None:
        session_factory = make_session_factory(make_engine(settings.database_url))
    app.extensions["leaddesk"] = Services(settings=settings, session_factory=session_factory, extras=dict(extras))
    init_limiter(app, settings)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):  # type: ignore[no-untyped-def]
        return error_response(exc.status, exc.code, exc.message, exc.field)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if _wants_json():
            code = (exc.name or "error").lower().replace(" ", "_")
            return error_response(exc.code or 500, code, exc.description or exc.name)
        return exc

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
        if _wants_json():
            return error_response(500, "internal_error", "something went wrong on our side; it was logged")
        return "Internal error", 500

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        report: dict[str, Any] = {"status": "ok"}
        try:
            with session_factory() as session:
                session.execute(text("SELECT 1"))
            report["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - health reports any failure
            report["database"] = f"error: {type(exc).__name__}"
            report["status"] = "error"
        for name, probe in app.extensions.get("leaddesk_health", {}).items():
            try:
                report[name] = probe()
            except Exception as exc:  # noqa: BLE001
                report[name] = {"status": f"error: {type(exc).__name__}"}
            if isinstance(report[name], dict) and report[name].get("status") not in (None, "ok"):
                report["status"] = "degraded" if report["status"] == "ok" else report["status"]
        return jsonify(report), 200 if report["status"] != "error" else 503

    for module_name, attr in BLUEPRINTS:
        module = importlib.import_module(module_name)
        app.register_blueprint(getattr(module, attr))
    return app


def add_health_probe(app: Flask, name: str, probe: Callable[[], dict[str, Any]]) -> None:
    """Add a section to GET /healthz (e.g. the worker pool, the prompts)."""
    app.extensions.setdefault("leaddesk_health", {})[name] = probe


def _wants_json() -> bool:
    path = request.path
    return path.startswith("/api") or path.startswith("/webhooks") or request.accept_mimetypes.best == "application/json"


def bearer_token() -> Optional[str]:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_agent(admin: bool = False) -> Callable[[F], F]:
    """Authenticate the agent by bearer token (`g.agent`); 401 without one, 403 when not an admin."""
    from store.agents import agent_by_token

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = bearer_token()
            if token is None:
                raise ApiError(401, "unauthorized", "send an agent token as 'Authorization: Bearer TOKEN'")
            with services().session_factory() as session:
                agent = agent_by_token(token, session=session)
                if agent is not None:
                    session.expunge(agent)
            if agent is None:
                raise ApiError(401, "unauthorized", "unknown or disabled agent token")
            if admin and agent.role != "admin":
                raise ApiError(403, "forbidden", "this needs an admin")
            g.agent = agent
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "invalid_json", "the body must be a JSON object (Content-Type: application/json)")
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data
