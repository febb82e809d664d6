"""Channel credentials at rest: a JSON object sealed with Fernet (`cryptography`) under a key
derived from LEADDESK_SECRET_KEY, which the caller passes in (the store reads no settings).

Any secret of 16 characters or more works: the Fernet key is derived from it (HKDF-SHA256 with a
label of its own, so the same secret also signing console sessions gives unrelated keys).
`new_secret_key()` makes a good one (`leaddesk workspaces secret-key`).
"""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_KEY_CHARS = 16
_LABEL = b"leaddesk channel credentials v1"


class SealError(ValueError):
    """Credentials that cannot be sealed or opened (the message says why, without the secret)."""


def new_secret_key() -> str:
    """A fresh random LEADDESK_SECRET_KEY (a Fernet key: 32 random bytes, URL-safe base64)."""
    return Fernet.generate_key().decode("ascii")


def check_secret_key(secret: str) -> str:
    secret = (secret or "").strip()
    if len(secret) < MIN_KEY_CHARS:
        raise SealError(
            f"LEADDESK_SECRET_KEY must have at least {MIN_KEY_CHARS} characters "
            "(make one with `leaddesk workspaces secret-key`)"
        )
    return secret


@cache
def _fernet(secret: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(
        check_secret_key(secret).encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(values: dict[str, str], secret: str | None) -> str:
    """The Fernet token of `values` (a JSON object of strings) under `secret`."""
    if not secret:
        raise SealError(
            "LEADDESK_SECRET_KEY is not set, so channel credentials cannot be stored "
            "(make one with `leaddesk workspaces secret-key`)"
        )
    data = json.dumps(values, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return _fernet(secret).encrypt(data).decode("ascii")


def unseal(token: str | None, secret: str | None) -> dict[str, str]:
    """The JSON object sealed in `token` ({} for none)."""
    if not token:
        return {}
    if not secret:
        raise SealError(
            "LEADDESK_SECRET_KEY is not set, so stored channel credentials cannot be read"
        )
    try:
        data: Any = json.loads(_fernet(secret).decrypt(token.encode("ascii")))
    except (InvalidToken, ValueError, UnicodeError):
        raise SealError(
            "stored channel credentials do not open with this LEADDESK_SECRET_KEY "
            "(was it changed? set the credentials again)"
        ) from None
    if not isinstance(data, dict):
        raise SealError("stored channel credentials are not a JSON object")
    return {str(k): str(v) for k, v in data.items() if v is not None}
