"""The REST API for leads (`/api/...`): one blueprint whose views live in the modules imported here.

Front door: `blueprint` (registered by `webhooks.create_app`). `ops` holds the lead operations the
web console shares; `/api/openapi.json` describes every endpoint.
"""

from webhooks.api import (  # noqa: F401 - importing a module registers its views
    agents,
    assignment,
    conversations,
    definitions,
    leads,
    notes,
    notifications,
    openapi,
    stats,
    transfer,
)
from webhooks.api.base import blueprint

__all__ = ["blueprint"]
