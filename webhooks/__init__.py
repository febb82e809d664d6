"""The Flask app: channel webhooks (WhatsApp, Messenger, Instagram), web chat and the REST API."""

from webhooks.app import create_app

__all__ = ["create_app"]
