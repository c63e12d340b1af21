"""A rich progress bar on stderr, so stdout keeps only the figures (or the JSON)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

# Redraws per second: the bar runs in the load client's process, so it stays cheap.
REFRESH_PER_S = 4


@dataclass(frozen=True, slots=True)
class Bar:
    progress: Progress
    task: TaskID

    def __call__(self, done: int) -> None:
        self.progress.update(self.task, completed=done)

    def stage(self, description: str, done: int) -> None:
        self.progress.update(self.task, description=description, completed=done)

    def log(self, text: str) -> None:
        """A line above the bar (printing past the bar would tear it)."""
        self.progress.console.print(text, highlight=False, markup=False, soft_wrap=True)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Bar]:
    """Yields the bar, callable with the work done so far; it disappears at the end."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        refresh_per_second=REFRESH_PER_S,
        transient=True,
    )
    with progress:
        yield Bar(progress, progress.add_task(description, total=total))
