"""Atomic writes of published files, and the rule that none is silently overwritten.

Every file is written to a hidden temporary name in its destination folder and renamed into
place, so a reader (or a killed process) never sees half a file. Existing files are refused as a
whole, before anything is written, unless the caller passes ``force`` (``--force``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from iff.errors import ResultsError


def refuse_existing(paths: Iterable[Path], force: bool) -> None:
    """Raise :class:`ResultsError` naming every existing path, unless ``force``."""
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not force:
        raise ResultsError(
            f"{len(existing)} output file(s) exist: {', '.join(existing)}; use --force to replace "
            "them, or --out to write elsewhere")


def write_atomic(path: Path, content: bytes | str | Callable[[Path], None]) -> Path:
    """Write ``content`` (bytes, text, or a function that writes a given path) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        elif isinstance(content, str):
            tmp.write_text(content, encoding="utf-8", newline="\n")
        else:
            content(tmp)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
