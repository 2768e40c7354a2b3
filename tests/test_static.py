"""The library's promises that no runtime test on this Python can check: strict typing,
and no syntax or stdlib feature newer than Python 3.9 (only 3.11 runs here)."""

from __future__ import annotations

import sys
from pathlib import Path

from _support import REPO, run

LIBRARY = [str(REPO / "src" / "hn_modulefix"), str(REPO / "src" / "_hn_modulefix_boot.py")]


def test_library_is_strictly_typed() -> None:
    result = run([sys.executable, "-m", "mypy", "--strict", "--ignore-missing-imports", "--no-error-summary",
                  *LIBRARY], cwd=REPO)
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr


def test_library_needs_nothing_newer_than_python_3_9() -> None:
    vermin = str(Path(sys.executable).parent / "vermin")  # a console script only: no `python -m vermin`
    result = run([vermin, "--no-tips", "--eval-annotations", "--violations",
                  "-t=3.9-", *LIBRARY], cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
