"""The web console (`/console`): server-rendered pages for agents and admins, no JavaScript build
step.

Front door: `blueprint` (registered by `webhooks.create_app`). Pages: login, leads, one lead,
dashboard, notifications and (admins) the team.
"""

from webhooks.console.views import blueprint

__all__ = ["blueprint"]
