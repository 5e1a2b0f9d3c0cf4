"""The exceptions of modelwatch, raised alike in embedded and remote mode.

The Rust extension raises these classes (``crates/python/src/errors.rs``) and the
remote client maps the HTTP API's status codes onto them: 400 is ``ValidationError``,
404 ``NotFoundError``, 409 ``ConflictError``, 401/403 ``AuthError``.
"""

from __future__ import annotations

from typing import Optional


class ModelwatchError(Exception):
    """Every error modelwatch raises."""


class ValidationError(ModelwatchError, ValueError):
    """Bad input; ``field`` names it (``value``, ``samples[3].model``, ``severity``…)."""

    def __init__(self, message: str, field: Optional[str] = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class NotFoundError(ModelwatchError, LookupError):
    """No such alert, rule or series."""


class ConflictError(ModelwatchError):
    """An impossible transition (resolving a resolved alert) or a lost race."""


class StoreError(ModelwatchError):
    """The database failed or refused the operation."""


class AuthError(ModelwatchError, PermissionError):
    """The server wants a token (401) or a token with more scope (403)."""


class UnavailableError(ModelwatchError, ConnectionError):
    """The server cannot be reached or answered 5xx."""
