"""Application factory: one blueprint per channel and API, JSON errors under /api and /webhooks."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from flask import Flask, Request, jsonify, request, send_from_directory
from flask.json.provider import DefaultJSONProvider
from sqlalchemy import text
from werkzeug.datastructures import ImmutableMultiDict, MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.utils import cached_property

from store.text import clean_json, clean_optional, clean_text
from webhooks import api, console, copilot_api, messenger, webchat, whatsapp
from webhooks.app import (
    ApiError,
    Services,
    WorkspacePath,
    error_response,
    leave_request_workspace,
    wants_json,
)
from webhooks.channels import ChannelDirectory
from webhooks.intake import InboxWriter
from webhooks.meta import WebhookFastPath
from webhooks.ratelimit import init_limiter

if TYPE_CHECKING:
    # Type only: the entry point (leaddesk) builds the settings; see webhooks.app.
    from leaddesk.settings import Settings

log = logging.getLogger(__name__)


class _JSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that a body nested too deeply to decode, or with NaN or Infinity
    (which Python accepts but JSON, and PostgreSQL's json columns, do not) is invalid JSON: a 400,
    not a 500."""

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
            # A multipart part without a name comes as the key None: kept, so no view finds it.
            self.__dict__["form"] = ImmutableMultiDict(
                [(clean_optional(k), clean_text(v)) for k, v in form.items(multi=True)]
            )

    @cached_property
    def args(self) -> MultiDict[str, str]:
        return self.parameter_storage_class(
            [(clean_text(k), clean_text(v)) for k, v in super().args.items(multi=True)]
        )


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def create_app(settings: Settings, services: Services) -> Flask:
    """Build the Flask app around the collaborators the entry point built (`services`, whose
    `settings` are `settings`)."""
    if services.settings is not settings:
        raise ValueError("services.settings must be the settings the app is built with")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    app.config["SECRET_KEY"] = secret or secrets.token_hex(32)
    app.json = _JSONProvider(app)
    app.request_class = _Request
    app.json.sort_keys = False
    app.extensions["leaddesk"] = services
    # The webhooks' events go into the inbox through one writer (group commit).
    app.extensions["leaddesk_inbox"] = InboxWriter(services.session_factory.kw["bind"])
    # Which workspace each channel account belongs to, and its credentials.
    app.extensions["leaddesk_channels"] = services.channels or ChannelDirectory(
        services.session_factory, settings
    )
    init_limiter(app, settings)
    # A view that entered the request's workspace (`enter_request_workspace`) leaves it here.
    app.teardown_request(leave_request_workspace)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):  # type: ignore[no-untyped-def]
        return error_response(exc.status, exc.code, exc.message, exc.field)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if wants_json():
            code = (exc.name or "error").lower().replace(" ", "_")
            return error_response(exc.code or 500, code, exc.description or exc.name)
        return exc

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
        if wants_json():
            return error_response(
                500, "internal_error", "something went wrong on our side; it was logged"
            )
        return "Internal error", 500

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        report: dict[str, Any] = {"status": "ok"}
        try:
            with services.session_factory() as session:
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

    @app.get("/favicon.ico")
    @app.get("/favicon.svg")
    def favicon():  # type: ignore[no-untyped-def]
        # One vector icon for every page (browsers ask for /favicon.ico unprompted).
        return send_from_directory(
            app.static_folder or "static", "favicon.svg", mimetype="image/svg+xml", max_age=86400
        )

    for blueprint in (
        api.blueprint,
        console.blueprint,
        whatsapp.blueprint,
        messenger.messenger_blueprint,
        messenger.instagram_blueprint,
        webchat.blueprint,
        copilot_api.blueprint,
    ):
        app.register_blueprint(blueprint)
    app.wsgi_app = WorkspacePath(app.wsgi_app)  # type: ignore[method-assign]
    # The webhooks' POSTs skip Flask's per-request machinery (same answers, a third of the CPU).
    app.wsgi_app = WebhookFastPath(  # type: ignore[method-assign]
        app,
        {
            "/webhooks/whatsapp": (whatsapp.CHANNEL, whatsapp.split_webhook),
            "/webhooks/messenger": ("messenger", messenger.split_messenger_webhook),
            "/webhooks/instagram": ("instagram", messenger.split_instagram_webhook),
        },
    )
    return app
