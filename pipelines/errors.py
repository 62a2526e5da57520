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


class WorkerStartError(MmrecError):
    """The worker processes could not start (or load their models): one error before anything is
    recorded, instead of the same failure written against every file."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"the encode worker processes could not start ({reason}); nothing was recorded. If you run "
            'mmrec from a Python script, put the call under `if __name__ == "__main__":` (each worker '
            "imports the script again, and without the guard starts the encode anew), or pass workers=0"
        )


class WorkerPoolBrokenError(MmrecError):
    """The worker pool broke in the middle of a run: what was committed stays, the rest is retried."""

    def __init__(self, reason: str, committed: int) -> None:
        self.reason = reason
        self.committed = committed
        super().__init__(
            f"the encode worker pool broke ({reason}) after {committed} items were committed; those are "
            "kept and the files not yet encoded are not marked failed: run the same command again"
        )


class UnknownEngineError(MmrecError):
    """``--engine`` names no engine, or an option does not fit the engine chosen."""

    def __init__(self, name: str, known: tuple[str, ...], reason: str | None = None) -> None:
        self.name = name
        self.reason = reason or f"unknown engine {name!r}; expected one of {', '.join(known)}"
        super().__init__(f"--engine {name}: {self.reason}")


class EngineStartError(MmrecError):
    """The chosen engine could not start (Ray not installed, no cluster at the address, workers of
    the cluster that cannot import mmrec or load its models): nothing was encoded."""

    def __init__(self, engine: str, reason: str) -> None:
        self.engine = engine
        self.reason = reason
        super().__init__(f"--engine {engine}: {reason}")
