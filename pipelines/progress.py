"""Progress display for an encode run: files/s, ETA, failures and per-stage seconds in one line."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)


class EncodeProgress:
    """A rich progress bar on stderr, or a no-op when disabled (tests, --json, child processes)."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total = total
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task: int | None = None
        self._failed = 0

    def __enter__(self) -> EncodeProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]encode[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
                console=Console(stderr=True),
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total, rate="")
        return self

    def advance(self, failed: bool) -> None:
        if failed:
            self._failed += 1
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)
            speed = self._progress.tasks[0].speed
            self._progress.update(self._task, rate=f"{speed:.2f} files/s" if speed else "")

    def describe(self, failures: int, stages: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=f"failed {failures} | {stages}")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
