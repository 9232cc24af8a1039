"""Safe YAML loading with line numbers and duplicate-key detection.

PyYAML silently keeps the last of two equal keys; a config with a duplicated key is almost always
a mistake, so it is an error here. Every mapping key's line is recorded so validation errors can
say where in the file they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from iff.errors import IffInputError, InputProblem, read_user_text

Loc = tuple[str | int, ...]


def _walk(node: yaml.Node, path: Loc, lines: dict[Loc, int], problems: list[InputProblem],
          file: str) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(InputProblem(
                    f"key '{key}' appears twice (first on line {seen[key]})",
                    file=file, field=".".join(map(str, (*path, key))), row=line))
            seen[key] = line
            _walk(value_node, (*path, key), lines, problems, file)
            lines[(*path, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, problems, file)


def load_yaml(path: Path, display: str | None = None) -> tuple[dict[str, Any], dict[Loc, int]]:
    """Load a YAML mapping safely.

    Parameters
    ----------
    path
        The file to read.
    display
        How to name the file in messages (defaults to ``str(path)``).

    Returns
    -------
    data, lines
        The mapping, and the 1-based line of each key path (tuples of keys and list indices).

    Raises
    ------
    IffInputError
        If the file is missing, not UTF-8, not YAML, not a mapping, or has duplicated keys.
    """
    name = display or str(path)
    text = read_user_text(Path(path), name, "YAML")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise IffInputError(InputProblem("file is empty; expected a YAML mapping", file=name))
        lines: dict[Loc, int] = {}
        problems: list[InputProblem] = []
        _walk(node, (), lines, problems, name)
        if problems:
            raise IffInputError(problems)
        data = loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        reason = getattr(e, "problem", None) or str(e)
        raise IffInputError(InputProblem(
            f"not valid YAML: {reason}", file=name,
            row=mark.line + 1 if mark is not None else None)) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise IffInputError(InputProblem(
            f"expected a YAML mapping at the top level, found {type(data).__name__}", file=name))
    return data, lines
