"""The progress-reporting hook long work takes, so the library stays free of any UI (the CLI passes rich's)."""

from collections.abc import Callable, Iterable

Track = Callable[[Iterable, str], Iterable]  # (items, description) -> the same items, reported as they pass


def no_progress(items: Iterable, description: str) -> Iterable:
    return items


Say = Callable[[str], None]  # one line on a stage done (the CLI prints it where no progress bar shows)


def no_lines(line: str) -> None:
    pass
