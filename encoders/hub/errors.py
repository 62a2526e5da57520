"""The one error a hub adapter raises when a model cannot be found or loaded."""

from __future__ import annotations

from encoders.base import MmrecError


class HubModelError(MmrecError, RuntimeError):
    """A hub model for a role is missing or unusable; the message says what to do about it."""

    def __init__(self, role: str, source: str, reason: str) -> None:
        self.role = role
        self.source = source
        self.reason = reason
        super().__init__(f"{role} model {source!r}: {reason}")
