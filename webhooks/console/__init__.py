"""The web console (`/console`): server-rendered pages for agents and admins, no JavaScript build
step.

Front door: `blueprint` (registered by `webhooks.create_app`). Pages: login, the inbox (live),
leads, one lead, dashboard, notifications and (admins) the team and the settings.
"""

from webhooks.console import inbox as _inbox  # noqa: F401 - registers the inbox's views
from webhooks.console import replies as _replies  # noqa: F401 - registers the canned replies
from webhooks.console import settings as _settings  # noqa: F401 - registers the Settings page
from webhooks.console import tasks as _tasks  # noqa: F401 - registers the tasks' views
from webhooks.console.views import blueprint

__all__ = ["blueprint"]
