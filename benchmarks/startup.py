"""Interpreter start-up: hn_modulefix installed with a manifest active vs not installed.

Two fresh venvs of the same interpreter: A has the wheel pip-installed (so its .pth runs
at every start) and HN_MODULEFIX_MANIFEST names a real bundle; B has no hn_modulefix.
Each pair runs `python -c pass` in A and in B back to back, in alternating order, and
the ratio A/B of the pair is kept: the median of many pairs is robust to machine noise.

    python benchmarks/startup.py [--pairs 400]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests._support import build_wheel, clean_env, make_venv  # noqa: E402


def _time(python: str, env: dict[str, str], code: str) -> float:
    start = time.perf_counter()
    subprocess.run([python, "-c", code], env=env, check=True)
    return time.perf_counter() - start


def paired(a: tuple[str, dict[str, str]], b: tuple[str, dict[str, str]], pairs: int,
           code: str = "pass") -> tuple[float, float, float]:
    """Median A/B ratio and the median times of A and B, in seconds."""
    for _ in range(10):  # warm the page cache and the bytecode of both
        _time(*a, code)
        _time(*b, code)
    ratios, times_a, times_b = [], [], []
    for i in range(pairs):
        if i % 2:
            tb, ta = _time(*b, code), _time(*a, code)
        else:
            ta, tb = _time(*a, code), _time(*b, code)
        ratios.append(ta / tb)
        times_a.append(ta)
        times_b.append(tb)
    return statistics.median(ratios), statistics.median(times_a), statistics.median(times_b)


def instructions(python: str, env: dict[str, str], code: str = "pass") -> int | None:
    """Instructions executed by one start, counted by callgrind: repeatable where wall
    time is noisy (hash randomization off, so dict layouts match between runs)."""
    if shutil.which("valgrind") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + os.path.join(tmp, "cg"),
                              python, "-c", code], env=dict(env, PYTHONHASHSEED="0"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
    match = re.search(r"Collected : (\d+)", out.stderr)
    return int(match.group(1)) if match else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        wheel = build_wheel(root / "dist")
        with_pkg = str(make_venv(root / "with", wheel=wheel))
        without = str(make_venv(root / "without"))
        script = root / "proj" / "job.py"
        script.parent.mkdir()
        script.write_text("import dataclasses\n\n@dataclasses.dataclass\nclass Item:\n    x: int\n")
        bundle = subprocess.run([with_pkg, "-m", "hn_modulefix", "bundle", str(script), "-o", str(root / "b")],
                                env=clean_env(), check=True, stdout=subprocess.PIPE, text=True)
        manifest = bundle.stdout.splitlines()[-1]
        env = clean_env(HN_MODULEFIX_MANIFEST=manifest)
        check = subprocess.run([with_pkg, "-c", "import sys; print(sys.meta_path[-1].__name__)"],
                               env=env, check=True, stdout=subprocess.PIPE, text=True)
        assert check.stdout.strip() == "_hn_modulefix_boot", check.stdout  # the hook really ran in A
        ratio, ta, tb = paired((with_pkg, env), (without, env), args.pairs)
        print("python %s, %d pairs of `python -c pass`" % (sys.version.split()[0], args.pairs))
        print("installed + manifest active: median %.2f ms" % (ta * 1e3))
        print("not installed:               median %.2f ms" % (tb * 1e3))
        print("start-up ratio (median of paired A/B): %.3f" % ratio)
        ia, ib = instructions(with_pkg, env), instructions(without, env)
        if ia and ib:
            print("instructions per start: %d vs %d, ratio %.3f (callgrind)" % (ia, ib, ia / ib))
        inactive = clean_env()
        ratio, ta, tb = paired((with_pkg, inactive), (without, inactive), args.pairs)
        print("installed, no manifest set: start-up ratio %.3f" % ratio)


if __name__ == "__main__":
    main()
