"""Errors the pipelines raise on purpose (all :class:`mmrec.errors.MmrecError`, so the CLI prints them)."""

from __future__ import annotations

from mmrec.errors import MmrecError


class NothingEncodedError(MmrecError):
    """A file decoded but gave no modality at all (no frames, no audio, no text)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class EncodeAbortedError(MmrecError):
    """``--fail-fast`` stopped the run at the first file that could not be encoded."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason} (stopped because of --fail-fast)")
