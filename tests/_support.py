"""Shared by the tests and the benchmarks: fresh venvs, the wheel, fresh interpreters."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST_SITE = sysconfig.get_paths()["purelib"]


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any hn_modulefix setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HN_MODULEFIX_")}
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def run(args: list[str], *, cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=clean_env() if env is None else env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def build_wheel(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    result = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                  "-w", str(out), str(REPO)])
    assert result.returncode == 0, result.stderr
    (wheel,) = out.glob("hn_modulefix-*.whl")
    return wheel


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def venv_site(venv: Path) -> Path:
    python = venv_python(venv)
    out = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.strip())


def make_venv(venv: Path, *, wheel: Path | None = None, host_packages: bool = False,
              site_packages: str | None = None) -> Path:
    """A fresh venv; with `wheel`, hn_modulefix pip-installed into it from that wheel.

    `host_packages` makes this environment's packages (daft, cloudpickle, ...) importable
    through a plain path line, which runs none of the host's own .pth hooks;
    `site_packages` does the same for the packages of another site-packages directory.
    """
    result = run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert result.returncode == 0, result.stderr
    if wheel is not None:
        result = run([sys.executable, "-m", "pip", "--python", str(venv_python(venv)), "install", "-q",
                      "--no-deps", "--no-index", str(wheel)])
        assert result.returncode == 0, result.stderr
    for name, directory in (("zz_host_packages.pth", HOST_SITE if host_packages else None),
                            ("zz_test_packages.pth", site_packages)):
        if directory:
            (venv_site(venv) / name).write_text(directory + "\n")
    return venv_python(venv)
