"""uv, as a user runs it: the `uv` package of the test extra, its own cache (the user's,
shared between runs: a warm cache installs from hard links in about a second), this
interpreter as the Python of every venv it makes (it never downloads one), packages from
the registry uv is configured for (UV_* variables, else its default)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Sequence

from _support import clean_env, run


def uv_bin() -> str:
    import uv  # the `uv` package of the test extra: its binary, not one found on PATH

    return uv.find_uv_bin()


def uv_env(**extra: str) -> dict[str, str]:
    env = clean_env(UV_PYTHON=sys.executable, UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1", **extra)
    env.pop("VIRTUAL_ENV", None)  # an activated venv is not the project's: uv would warn
    return env


def uv(args: Sequence[str], *, cwd: Path, timeout: float = 600, **env: str) -> "subprocess.CompletedProcess[str]":
    return run([uv_bin(), *args], cwd=cwd, env=uv_env(**env), timeout=timeout)


def uv_venv(venv: Path, requirements: Sequence[str], python: str = sys.executable) -> Path:
    """`uv venv` at `venv` (uv's layout) with `requirements` uv-installed; its interpreter."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    for args in (["venv", "-q", "--python", python, str(venv)],
                 ["pip", "install", "-q", "--python", str(venv / "bin" / "python"), *requirements]):
        done = uv(args, cwd=venv.parent)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return venv / "bin" / "python"
