"""Typed errors of iff.

Every problem with user input is an :class:`InputProblem` that names where it is (file, field,
row) and why. Problems are collected into one :class:`IffInputError` so a user sees all of them
at once, before any sampling. The CLI turns that error into exit code 2 without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class InputProblem:
    """One problem found in user input.

    Parameters
    ----------
    reason
        What is wrong, in words a user understands.
    file
        The file the problem is in, as the user wrote or passed it.
    field
        Dotted path of the config field or the CSV column.
    row
        1-based line number in the file (the CSV header is line 1), if known.
    """

    reason: str
    file: str | None = None
    field: str | None = None
    row: int | None = None

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file if self.row is None else f"{self.file}:{self.row}")
        elif self.row is not None:
            where.append(f"line {self.row}")
        if self.field:
            where.append(self.field)
        prefix = ": ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class IffError(Exception):
    """Base class of all errors raised on purpose by iff."""


class IffInputError(IffError):
    """Invalid user input (config, data file, command-line option); exit code 2."""

    def __init__(self, problems: InputProblem | Sequence[InputProblem]):
        if isinstance(problems, InputProblem):
            problems = [problems]
        self.problems: list[InputProblem] = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        """Return all problems, one per line."""
        n = len(self.problems)
        head = "1 problem found" if n == 1 else f"{n} problems found"
        return head + ":\n" + "\n".join(f"  - {p}" for p in self.problems)


class ResultsError(IffError):
    """A results folder or file is missing, corrupt or would be overwritten."""


class ConvergenceError(IffError):
    """Sampling finished but failed the convergence checks (CLI exit code 3)."""


class ConvergenceWarning(UserWarning):
    """Results that failed the convergence checks were produced or summarised (Python API: the
    CLI reports the same through its messages and exit code 3)."""


def read_user_text(path: Path, file: str, kind: str) -> str:
    """Read a user's text file as UTF-8 (a leading byte-order mark is dropped).

    Parameters
    ----------
    path
        The file.
    file
        How to name it in messages.
    kind
        What it should be, for messages (e.g. ``"YAML"``, ``"CSV"``).

    Raises
    ------
    IffInputError
        If the file is missing, a folder, or not UTF-8 (naming the line of the bad byte).
    """
    try:
        data = Path(path).read_bytes()
        return data.decode("utf-8-sig")
    except FileNotFoundError:
        raise IffInputError(InputProblem("file not found", file=file)) from None
    except IsADirectoryError:
        raise IffInputError(InputProblem(f"is a folder, not a {kind} file", file=file)) from None
    except UnicodeDecodeError as e:
        raise IffInputError(InputProblem(
            f"not UTF-8 text (byte {e.start}); save the file as UTF-8 {kind}", file=file,
            row=data.count(b"\n", 0, e.start) + 1)) from None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return a " (did you mean 'x'?)" hint, or an empty string if nothing is close.

    Parameters
    ----------
    word
        The unknown word the user typed.
    choices
        The valid words.
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
