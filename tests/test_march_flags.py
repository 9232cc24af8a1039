"""g++'s -march flags: detected by one process, reused by the next without running g++."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytensor
import pytest
from pytensor.link.c.cmodule import GCC_compiler

from iff import march_flags

needs_cpuinfo = pytest.mark.skipif(march_flags._entry() is None,
                                   reason="no CPU identity or no g++ here: nothing is kept")

DETECT = ("from pytensor.link.c.cmodule import GCC_compiler\n"
          "from iff import march_flags\n"
          "march_flags.reuse()\n"
          "assert GCC_compiler.march_flags is None, 'flags set before any process kept them'\n"
          "GCC_compiler.compile_args()  # PyTensor runs g++ to detect them\n"
          "march_flags.keep()\n"
          "print(march_flags._entry())\n")
REUSE = ("import json\n"
         "import pytensor.link.c.cmodule as cmodule\n"
         "from iff import march_flags\n"
         "def no_gcc(*args, **kwargs):\n"
         "    raise AssertionError('g++ was run to detect the flags again')\n"
         "cmodule.subprocess_Popen = no_gcc\n"
         "march_flags.reuse()\n"
         "args = cmodule.GCC_compiler.compile_args()\n"
         "print(json.dumps(cmodule.GCC_compiler.march_flags))\n")


@needs_cpuinfo
def test_flags_one_process_detected_are_set_in_the_next_without_gcc(tmp_path):
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp_path}"}
    detect = subprocess.run([sys.executable, "-c", DETECT], env=env, capture_output=True,
                            text=True, check=True)
    entry = Path(detect.stdout.strip().splitlines()[-1])
    assert entry.is_relative_to(tmp_path) and entry.exists()
    kept = json.loads(entry.read_text(encoding="utf-8"))
    reuse = subprocess.run([sys.executable, "-c", REUSE], env=env, capture_output=True,
                           text=True, check=True)
    assert json.loads(reuse.stdout.strip().splitlines()[-1]) == kept
    assert list(tmp_path.rglob("*.tmp")) == []  # written whole


def test_no_entry_where_the_cpu_is_unknown_or_the_user_sets_march(monkeypatch):
    monkeypatch.setattr(march_flags, "_compiler_identity", lambda: "/usr/bin/g++ 1 2")
    monkeypatch.setattr(march_flags, "_cpu_identity", lambda: "model name: A\nflags: sse avx")
    a = march_flags._entry()
    monkeypatch.setattr(march_flags, "_cpu_identity", lambda: "model name: B\nflags: sse")
    b = march_flags._entry()
    assert a is not None and b is not None and a != b  # one file per CPU
    monkeypatch.setattr(march_flags, "_cpu_identity", lambda: None)
    assert march_flags._entry() is None
    monkeypatch.setattr(march_flags, "_cpu_identity", lambda: "model name: A\nflags: sse avx")
    monkeypatch.setattr(pytensor.config, "gcc__cxxflags", "-O3 -march=x86-64")
    assert march_flags._entry() is None


@pytest.mark.parametrize("content", ["not json", '{"flags": 1}', '["-march=x", 3]'])
def test_an_unreadable_entry_leaves_the_flags_to_pytensor(tmp_path, monkeypatch, content):
    entry = tmp_path / "flags.json"
    entry.write_text(content, encoding="utf-8")
    monkeypatch.setattr(march_flags, "_entry", lambda: entry)
    monkeypatch.setattr(GCC_compiler, "march_flags", None)
    march_flags.reuse()
    assert GCC_compiler.march_flags is None


def test_only_detected_flags_are_kept_and_an_entry_is_not_rewritten(tmp_path, monkeypatch):
    entry = tmp_path / "sub" / "flags.json"
    monkeypatch.setattr(march_flags, "_entry", lambda: entry)
    monkeypatch.setattr(GCC_compiler, "march_flags", None)
    march_flags.keep()  # nothing detected: nothing written
    assert not entry.exists()
    monkeypatch.setattr(GCC_compiler, "march_flags", [])
    march_flags.keep()  # detection failed: left to the next process to try again
    assert not entry.exists()
    monkeypatch.setattr(GCC_compiler, "march_flags", ["-march=znver3", "-mavx2"])
    march_flags.keep()
    assert json.loads(entry.read_text(encoding="utf-8")) == ["-march=znver3", "-mavx2"]
    monkeypatch.setattr(GCC_compiler, "march_flags", ["-march=other"])
    march_flags.keep()  # the first process's file stays
    assert json.loads(entry.read_text(encoding="utf-8")) == ["-march=znver3", "-mavx2"]
    monkeypatch.setattr(GCC_compiler, "march_flags", None)
    march_flags.reuse()
    assert GCC_compiler.march_flags == ["-march=znver3", "-mavx2"]
