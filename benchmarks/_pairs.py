"""Shared by every benchmark: the two sides (a venv with the wheel installed, one
without hn_modulefix), paired A/B timing and instruction counts.

Each pair times A and B back to back, in alternating order, and keeps the ratio A/B of
the pair: the median of many pairs is robust to machine noise that a ratio of two
separate medians is not.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
# The benchmarks build venvs with the test helpers rather than a copy of them.
sys.path.insert(0, str(REPO))

from tests._support import build_wheel, clean_env, make_venv  # noqa: E402

Timer = Callable[[], float]  # runs the thing once, returns the seconds it took


def venvs(root: Path, *, host_packages: bool = False) -> tuple[str, str]:
    """Interpreters of two fresh venvs under `root`: A with the wheel pip-installed (its
    .pth runs at every start), B without hn_modulefix; `host_packages` as in make_venv."""
    wheel = build_wheel(root / "dist")
    return (str(make_venv(root / "with", wheel=wheel, host_packages=host_packages)),
            str(make_venv(root / "without", host_packages=host_packages)))


def plain_pythons(root: Path) -> tuple[str, str]:
    """Interpreters of two plain (not venv) installations of this Python under `root`, laid
    out as a Modal image's or a system's: A with the hook installed by `install-hook` (how
    image_layer() installs it), B without. A venv's `site` runs every .pth file twice up
    to Python 3.14 (it adds the venv's site-packages in `venv()` and again in `main()`),
    so the .pth costs a venv about twice what it costs a plain installation.

    Each is the base interpreter's binary with its standard library linked in and an empty
    site-packages: the layout of a POSIX build (python.org, pyenv, uv's managed Pythons)."""
    version = "python%d.%d" % sys.version_info[:2]
    binary = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    stdlib = Path(sys.base_prefix) / "lib" / version
    if not (stdlib / "os.py").is_file():
        raise SystemExit("cannot lay out a plain installation of %s: no %s" % (binary, stdlib / "os.py"))
    pythons = []
    for name in ("plain-with", "plain-without"):
        lib = root / name / "lib" / version
        (lib / "site-packages").mkdir(parents=True)
        for entry in stdlib.iterdir():
            if entry.name != "site-packages":
                (lib / entry.name).symlink_to(entry)
        (root / name / "bin").mkdir()
        shutil.copy2(binary, root / name / "bin" / version)
        pythons.append(str(root / name / "bin" / version))
    subprocess.run([pythons[0], "-m", "hn_modulefix", "install-hook"], env=clean_env(PYTHONPATH=str(REPO / "src")),
                   check=True, stdout=subprocess.DEVNULL)
    return pythons[0], pythons[1]


def import_arguments(doc: str, batch: int) -> argparse.Namespace:
    """The options of the import benchmarks: pairs of in-process batches, of fresh starts."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200, help="pairs of %d-import batches in process" % batch)
    parser.add_argument("--fresh-pairs", type=int, default=200, help="pairs of fresh interpreters")
    return parser.parse_args()


def bundle(python: str, script: Path, out: Path) -> str:
    """Bundle `script` (project root: its directory) with the CLI; the manifest path."""
    done = subprocess.run([python, "-m", "hn_modulefix", "bundle", str(script), "-o", str(out)], env=clean_env(),
                          cwd=script.parent, check=True, stdout=subprocess.PIPE, text=True)
    return done.stdout.splitlines()[-1]


SMALL_SCRIPT = "import dataclasses\n\n@dataclasses.dataclass\nclass Item:\n    x: int\n"


def bundled_script(python: str, root: Path, name: str = "job", source: str = SMALL_SCRIPT) -> str:
    """Write `source` as <root>/proj/<name>.py and bundle it; the manifest path."""
    script = root / "proj" / (name + ".py")
    script.parent.mkdir()
    script.write_text(source)
    return bundle(python, script, root / "b")


def check_hooked(python: str, env: dict[str, str]) -> None:
    """Fail unless the start-up hook really is on sys.meta_path in `python` under `env`."""
    done = subprocess.run([python, "-c", "import sys; print([getattr(f, '__name__', '') for f in sys.meta_path "
                                         "if getattr(f, '_hn_modulefix_finder', False)][0])"],
                          env=env, check=True, stdout=subprocess.PIPE, text=True)
    if done.stdout.strip() != "_hn_modulefix_boot":
        raise SystemExit("the start-up hook is not active in %s: %r" % (python, done.stdout))


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def command(argv: list[str], env: dict[str, str], cwd: str | None = None, cpu: bool = False) -> Timer:
    """A fresh process running `argv`, timed from launch to exit (with `cpu`: the CPU time,
    user and system, it used; steadier than wall time on a loaded machine); it must succeed."""
    clock = _children_cpu if cpu else time.perf_counter

    def once() -> float:
        start = clock()
        subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return clock() - start
    return once


def interpreter(python: str, env: dict[str, str], code: str = "pass", cwd: str | None = None,
                cpu: bool = False) -> Timer:
    return command([python, "-c", code], env, cwd, cpu)


def paired(a: Timer, b: Timer, pairs: int, warmup: int = 10) -> tuple[float, float, float]:
    """Median A/B ratio and the median times of A and B, in seconds."""
    for _ in range(warmup):  # warm the page cache, the bytecode and the allocator of both
        a()
        b()
    ratios, times_a, times_b = [], [], []
    for i in range(pairs):
        if i % 2:
            tb, ta = b(), a()
        else:
            ta, tb = a(), b()
        ratios.append(ta / tb)
        times_a.append(ta)
        times_b.append(tb)
    return statistics.median(ratios), statistics.median(times_a), statistics.median(times_b)


def instructions(python: str, env: dict[str, str], code: str = "pass") -> int | None:
    """Instructions executed by one run, counted by callgrind: repeatable where wall
    time is noisy (hash randomization off, so dict layouts match between runs)."""
    if shutil.which("valgrind") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + os.path.join(tmp, "cg"),
                              python, "-c", code], env=dict(env, PYTHONHASHSEED="0"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
    match = re.search(r"Collected : (\d+)", out.stderr)
    return int(match.group(1)) if match else None


def machine() -> str:
    """One line naming what the numbers were measured on."""
    import platform

    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    try:
        system = platform.freedesktop_os_release()["PRETTY_NAME"]
    except (OSError, AttributeError, KeyError):  # not Linux, or Python < 3.10
        system = platform.system()
    return "%d CPUs (%s), Python %s, %s, kernel %s" % (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0,
        model, platform.python_version(), system, platform.release())
