"""Errors a user can fix, shown as one line, and interrupted runs, recorded as what they are.

:class:`ProjectError` is the base of the errors this project raises about bad data, parameters and
inputs (their messages name the file or key, what is wrong and the fix). :func:`one_line` finds
such an error in a chain (Kedro wraps a dataset's error in its own) and gives its message on one
line; errors it does not recognise are bugs, shown with their traceback.

:class:`RunInterrupted` is what SIGINT and SIGTERM raise during a run
(:func:`interrupts_raise`): an ``Exception``, so Kedro's error hooks run, the MLflow run is closed as
KILLED, and the message says where the run stopped and how to resume it.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

PACKAGE_DIR = Path(__file__).resolve().parent
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class ProjectError(ValueError):
    """Bad data, parameters or inputs; the message names where, what is wrong and the fix."""


class RunInterrupted(Exception):  # noqa: N818 - an interruption, not an error of the run
    """SIGINT or SIGTERM arrived during a run; :meth:`at` records where it stopped."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.fold: str | None = None
        self.epoch: int | None = None
        self.checkpoint_epoch: int | None = None
        self.node: str | None = None
        self.place: str | None = None  # a command's own words for where it stopped

    def at(self, fold: str, epoch: int, checkpoint_epoch: int | None) -> RunInterrupted:
        """This interruption, stopped in ``fold`` after ``epoch`` with its last checkpoint at ``checkpoint_epoch``."""
        self.fold, self.epoch, self.checkpoint_epoch = fold, epoch, checkpoint_epoch
        return self

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signal_name, 1)

    def tags(self) -> dict[str, str]:
        """MLflow tags that say where the run stopped."""
        tags = {"interrupted_by": self.signal_name}
        for key, value in {"interrupted_in_fold": self.fold, "interrupted_after_epoch": self.epoch,
                           "last_checkpoint_epoch": self.checkpoint_epoch, "interrupted_in_node": self.node}.items():  # fmt: skip
            if value is not None:
                tags[key] = str(value)
        return tags

    def __str__(self) -> str:
        if self.place is not None:
            return (f"run interrupted by {self.signal_name} during {self.place}; finished folds and checkpoints are "
                    "kept; run the same command again to resume")  # fmt: skip
        if self.fold is not None:
            where = f"in {self.fold} after epoch {self.epoch}"
            kept = (
                f"its checkpoint of epoch {self.checkpoint_epoch} is kept"
                if self.checkpoint_epoch
                else "no checkpoint of it was written yet"
            )
        else:
            where = f"in node {self.node}" if self.node else "before any node ran"
            kept = "the outputs of finished nodes are kept"
        return f"run interrupted by {self.signal_name} {where}; {kept}; run the same command again to resume"


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)  # twice: now
    raise RunInterrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """Inside the block SIGINT and SIGTERM raise :class:`RunInterrupted` (a second signal acts at once).

    Only in the main thread; a SIGINT the process was started to ignore (``nohup``, ``&`` in a
    script) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, _raise_interrupted)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ if error.__cause__ is not None or error.__suppress_context__ else error.__context__
    return seen


def _raised_here(error: BaseException) -> bool:
    """Raised on purpose by this package's code (the innermost frame is in the package)."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(PACKAGE_DIR)


def _flat(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("For further information visit")]
    joined = lines[0] if lines else ""
    for line in lines[1:]:
        joined += (" " if joined.endswith((";", ":", ",")) else "; ") + line
    return joined


_PARAMETER = re.compile(r"^- Parameter '([^']+)': .*?\d+ validation errors? for \w+$")
_DETAIL = re.compile(r"\s*\[type=([^,\]]+)(?:, input_value=(.*?), input_type=\w+)?\]$")


def _parameter_problems(text: str) -> str:
    """Kedro's parameter validation report (pydantic's, per parameter) as ``key: problem`` items."""
    problems, parameter, location = [], None, None
    for line in text.splitlines():
        if match := _PARAMETER.match(line):
            parameter, location = match.group(1), None
        elif parameter is None or not line.strip() or line.startswith("    "):
            continue
        elif not line.startswith(" "):
            location = line.strip()
        else:
            detail = _DETAIL.search(line)
            problem = _DETAIL.sub("", line.strip()).removeprefix("Value error, ")
            if detail and detail.group(2) and detail.group(1) != "value_error":  # our own messages say it
                problem += f" (got {detail.group(2)})"
            key = ".".join(part for part in (parameter, location) if part and part != "__root__")
            problems.append(problem if problem.startswith(f"{parameter}.") else f"{key}: {problem}")
    return "parameters: " + "; ".join(problems) if problems else _flat(text)


def _recognised(error: BaseException) -> bool:
    from kedro.validation.exceptions import ParameterValidationError  # noqa: PLC0415 - Kedro only when needed

    if isinstance(error, ProjectError | RunInterrupted | ParameterValidationError | ValidationError):
        return True
    return isinstance(error, ValueError | KeyError | FileNotFoundError) and _raised_here(error)


def one_line(error: BaseException) -> str | None:
    """The message of the user-fixable error in ``error``'s chain, on one line; None for a bug."""
    from kedro.io.core import DatasetError  # noqa: PLC0415
    from kedro.validation.exceptions import ParameterValidationError  # noqa: PLC0415

    chain = _chain(error)
    for candidate in reversed(chain):  # the innermost: Kedro's wrappers repeat it with less detail
        if isinstance(candidate, ParameterValidationError):
            return _parameter_problems(str(candidate))
        if _recognised(candidate):
            text = candidate.args[0] if isinstance(candidate, KeyError) and candidate.args else str(candidate)
            return _flat(str(text))
    datasets = [candidate for candidate in chain if isinstance(candidate, DatasetError)]
    return _flat(str(datasets[-1])) if datasets else None
