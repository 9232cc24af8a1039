"""What every benchmark's JSON records about its run, and how it is written.

Imported by the ``bench_*.py`` scripts (this folder is on ``sys.path`` when one runs as a
script). ``make_results.py`` reads these fields back: ``command``, ``machine`` (CPUs, platform,
load average at start and end) and ``created_at``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any


def command_line(script: str) -> str:
    """The command that ran this benchmark, from the repository root."""
    return (f"python benchmarks/{script} " + " ".join(sys.argv[1:])).strip()


def machine() -> dict[str, Any]:
    """CPUs, platform and the load average now (1, 5, 15 min): other processes inflate every
    time, so each result says how busy the machine was when it began."""
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


def created_at() -> str:
    """Local time now, ISO 8601 with its UTC offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_result(result: dict[str, Any], path: Path) -> None:
    """Record the load average at the end in ``result["machine"]`` and write ``result`` as
    indented JSON to ``path`` (its folder made if missing)."""
    result["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
