"""The Flask app: channel webhooks (WhatsApp, Messenger, Instagram), web chat and the REST API."""

from webhooks.app import Services
from webhooks.factory import create_app

__all__ = ["Services", "create_app"]
