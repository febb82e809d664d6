"""The REST API for leads (`/api/...`): one blueprint whose views live in the modules imported here.

Front door: `blueprint` (registered by `webhooks.create_app`). The business rules are
`store.domain`'s (their refusals answer 403/404/409/422); `lead_edits` holds the request-to-call
translation the web console shares; `/api/openapi.json` describes every endpoint.
"""

from webhooks.api import (  # noqa: F401 - importing a module registers its views
    agents,
    assignment,
    conversations,
    definitions,
    emails,
    leads,
    notes,
    notifications,
    openapi,
    stats,
    tasks,
    transfer,
)
from webhooks.api.base import blueprint

__all__ = ["blueprint"]
