"""Rich progress bars on stderr for long work; silent when stderr is not a terminal or when
a caller (batch mode, tests) turns them off with :func:`set_enabled`."""

from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

_enabled = True
_console = Console(stderr=True)


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


@contextlib.contextmanager
def progress_bar(*extra_columns):
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), *extra_columns,
                        console=_console, disable=not (_enabled and sys.stderr.isatty()))
    with progress:
        yield progress
