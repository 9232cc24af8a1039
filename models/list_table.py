"""Capture-pattern tables of multiple systems estimation: reading and checking them.

A table has one 0/1 column per list (source), then ``count``: the number of cases seen on exactly
that combination of lists (format of the tables distributed with the R package
MultipleSystemsEstimation). Combinations not in the file count 0; the all-zero combination is
the unobserved dark figure and may not appear.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iff.errors import IffInputError, InputProblem, read_user_text

MAX_LISTS = 12


@dataclass(frozen=True)
class ListTable:
    """A validated capture-pattern table.

    Attributes
    ----------
    lists
        Names of the lists, in file order.
    patterns
        Every observable pattern, shape ``(2**K - 1, K)``, 0/1.
    counts
        Cases seen on exactly that pattern (0 where the file has no row).
    file
        Name of the file, for messages.
    """

    lists: tuple[str, ...]
    patterns: np.ndarray
    counts: np.ndarray
    file: str = "<table>"

    @property
    def observed(self) -> int:
        """Number of distinct cases on at least one list."""
        return int(self.counts.sum())

    def overlap(self, j: int, k: int) -> int:
        """Cases seen on both lists ``j`` and ``k``."""
        both = (self.patterns[:, j] == 1) & (self.patterns[:, k] == 1)
        return int(self.counts[both].sum())


def all_patterns(k: int) -> np.ndarray:
    """All ``2**k - 1`` non-zero 0/1 patterns, in lexicographic order (shape ``(2**k-1, k)``)."""
    grid = np.array(list(itertools.product((0, 1), repeat=k)), dtype=int)
    return grid[1:]


def read_list_table(path: Path | str, file: str | None = None) -> ListTable:
    """Read and check a list table: one 0/1 column per list, then ``count``.

    Parameters
    ----------
    path
        The CSV file.
    file
        How to name it in messages (default: ``path`` as given).

    Raises
    ------
    IffInputError
        Naming file, line, column and reason for every problem: fewer than 2 lists, values
        other than 0/1, negative or non-integer counts, an all-zero pattern, duplicated
        patterns, lists with no cases, no case on more than one list.
    """
    file = file or str(path)
    text = read_user_text(Path(path), file, "CSV")
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise IffInputError(InputProblem(f"malformed CSV: {e}", file=file)) from None
    rows = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not rows:
        raise IffInputError(InputProblem("empty file: expected a header of list names and "
                                         "'count'", file=file))
    (_, header), body = rows[0], rows[1:]
    header = [h.strip() for h in header]
    problems: list[InputProblem] = []
    if header[-1] != "count":
        raise IffInputError(InputProblem(
            f"the last column must be 'count', got '{header[-1]}' (format: one 0/1 column per "
            "list, then count)", file=file, row=1, field=header[-1]))
    lists = tuple(header[:-1])
    if len(lists) < 2:
        raise IffInputError(InputProblem(
            f"{len(lists)} list column(s): multiple systems estimation needs at least 2 lists",
            file=file, row=1))
    if len(lists) > MAX_LISTS:
        raise IffInputError(InputProblem(
            f"{len(lists)} lists: at most {MAX_LISTS} are supported", file=file, row=1))
    for name in lists:
        if not name:
            problems.append(InputProblem("empty list name in the header", file=file, row=1))
        elif header.count(name) > 1:
            problems.append(InputProblem(f"list name '{name}' appears twice", file=file,
                                         row=1, field=name))
    if not body:
        problems.append(InputProblem("no data rows", file=file))
    k = len(lists)
    seen: dict[tuple[int, ...], int] = {}
    index = {tuple(p): i for i, p in enumerate(all_patterns(k))}
    counts = np.zeros(2**k - 1, dtype=np.int64)
    for line, r in body:
        cells = [c.strip() for c in r]
        if len(cells) != k + 1:
            problems.append(InputProblem(
                f"{len(cells)} values, the header has {k + 1}", file=file, row=line))
            continue
        pattern, bad = [], False
        for name, c in zip(lists, cells[:-1], strict=True):
            if c not in ("0", "1"):
                problems.append(InputProblem(f"'{c}' is not 0 or 1", file=file, row=line,
                                             field=name))
                bad = True
            else:
                pattern.append(int(c))
        count = _parse_count(cells[-1], file, line, problems)
        if bad or count is None:
            continue
        key = tuple(pattern)
        if not any(key):
            problems.append(InputProblem(
                "all-zero pattern: cases on no list cannot be observed (the dark figure is what "
                "is estimated); remove the row", file=file, row=line))
            continue
        if key in seen:
            problems.append(InputProblem(
                f"pattern {''.join(map(str, key))} duplicates line {seen[key]}", file=file,
                row=line))
            continue
        seen[key] = line
        counts[index[key]] = count
    if problems:
        raise IffInputError(problems)
    table = ListTable(lists=lists, patterns=all_patterns(k), counts=counts, file=file)
    empty = [name for j, name in enumerate(lists) if table.counts[table.patterns[:, j] == 1].sum()
             == 0]
    if empty:
        raise IffInputError([InputProblem(
            "no case is on this list: it carries no information; drop the column", file=file,
            row=1, field=name) for name in empty])
    if not table.counts[table.patterns.sum(axis=1) >= 2].any():
        # Some lists never overlapping is a warning (models/mse.py); none overlapping at all
        # leaves every model without a finite estimate: the result would be the prior alone.
        raise IffInputError(InputProblem(
            f"no case is on more than one list: the lists ({', '.join(lists)}) never overlap, "
            "so the table says nothing about the cases missed by every list (no finite "
            "estimate under any model); multiple systems estimation needs lists that share "
            "cases", file=file, row=1))
    return table


def _parse_count(text: str, file: str, line: int, problems: list[InputProblem]) -> int | None:
    try:
        value = float(text)
    except ValueError:
        problems.append(InputProblem(f"count '{text}' is not a number", file=file, row=line,
                                     field="count"))
        return None
    if not math.isfinite(value) or value < 0 or value != int(value):
        problems.append(InputProblem(
            f"count {text} must be a non-negative whole number", file=file, row=line,
            field="count"))
        return None
    return int(value)
