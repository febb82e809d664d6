"""The one refusal hierarchy of the business rules.

Every rule in `store.domain` raises a `RuleError` subclass; nothing has changed when it is raised.
Each front end maps the class to its own answer: `NotAllowed` → HTTP 403, `NotFound` → 404,
`Conflict` (a `LeadLocked` lead included) → 409, `Invalid` → 422; the copilot says the message,
the CLI prints it on one line.
"""

from __future__ import annotations


class RuleError(Exception):
    """A business rule refused the request: `message` for people, `code` for programs, `field`
    naming the input at fault (if one is)."""

    default_code = "rule_error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.field = field


class NotAllowed(RuleError):
    """The acting agent (or conversation) may not do this."""

    default_code = "forbidden"


class NotFound(RuleError):
    """What the request names does not exist (or no longer does)."""

    default_code = "not_found"


class Conflict(RuleError):
    """The request clashes with the lead's current state (e.g. nobody is free to take it)."""

    default_code = "conflict"


class LeadLocked(Conflict):
    """An action a locked (converted, read-only) lead does not allow."""

    default_code = "lead_locked"


class Invalid(RuleError):
    """The request itself is wrong (an unknown status, a disabled agent, an empty note)."""

    default_code = "validation_error"
