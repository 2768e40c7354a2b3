"""Scale: bundling, ship(), a worker's first import and start-up, for 25 / 250 / 2,500 files.

A generated project (benchmarks/_project.py: packages, subpackages, about 13 kB of
Python per file) of each size is measured, in fresh interpreters of a venv with the
wheel installed (A) and of a venv without hn_modulefix (B):

(a) first bundle: `hn_modulefix.bundle(job.py)` into a new directory, median of --runs
    fresh processes: wall time, and CPU time of the process (of which system time: creating
    2,300 small files costs from 0.03 to 0.65 ms each on a virtual disk, from one minute to
    the next) and of its parsing helpers (on a busy machine the helpers get no core of their
    own: see the load average);
(b) `ship()` of the unchanged project, after one ship() made its cache entry: median of
    --runs fresh processes;
(c) a worker's first import of a listed module (`import acme.actor_0`: the module and its
    packages' `__init__`) with the project's manifest active in A vs the same files (a
    copy, so that each side keeps its own bytecode cache) on PYTHONPATH in B, bytecode
    warm: median of --pairs paired CPU times of fresh interpreters, and the instructions
    A executes beyond B (callgrind, when valgrind is installed);
(d) `python -c pass` with that manifest active in A vs B: the same pairs, and the ratio
    of instructions (callgrind, when valgrind is installed); then the instructions of two
    plain installations of this Python, with the hook installed by `install-hook` and
    without (see _pairs.plain_pythons: up to 3.14 a venv's `site` runs the .pth twice, a
    plain one once).

    python benchmarks/scale.py [--sizes 25 250 2500] [--runs 5] [--pairs 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from _pairs import Timer, check_hooked, instructions, machine, paired, plain_pythons, venvs
from _project import LEAF, generate

from tests._support import clean_env

# Runs in A: one bundle or ship() of the project, timed inside the process.
TIMED = """
import json, os, sys, time, warnings
warnings.simplefilter("ignore")  # e.g. a generated name that is also an installed module
import hn_modulefix
script, root, out = sys.argv[1:4]
start, before = time.perf_counter(), os.times()
if out == "ship":
    manifest = hn_modulefix.ship(script, root=root)
else:
    manifest = hn_modulefix.bundle(script, out=out, root=root)
wall, after = time.perf_counter() - start, os.times()
cpu = [after[i] - before[i] for i in range(4)]  # user and system: this process, its helpers
print(json.dumps({"wall": wall, "cpu": cpu[0] + cpu[1], "system": cpu[1], "helpers": cpu[2] + cpu[3],
                  "manifest": str(manifest)}))
"""


def timed(python: str, script: Path, out: str, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run([python, "-c", TIMED, str(script), str(script.parent), out], env=env,
                          check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def cpu_command(argv: list[str], env: dict[str, str], cwd: str | None = None) -> Timer:
    """A fresh process running `argv`: the CPU time it used (user and system), which
    other processes on the machine disturb much less than its wall time."""
    def once() -> float:
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise subprocess.CalledProcessError(process.returncode, argv)
        return usage.ru_utime + usage.ru_stime
    return once


def measure(size: int, work: Path, pythons: tuple[str, str, str, str], runs: int, pairs: int) -> dict[str, float]:
    with_pkg, without, plain_with, plain_without = pythons
    project = work / ("p%d" % size)
    script = generate(project, size)
    env = clean_env(XDG_CACHE_HOME=str(work / "cache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode warm, as in a real worker
    row: dict[str, float] = {"files": sum(1 for _ in project.rglob("*.py"))}
    row["MB"] = sum(p.stat().st_size for p in project.rglob("*.py")) / 1e6

    bundles = [timed(with_pkg, script, str(work / ("b%d-%d" % (size, run))), env) for run in range(runs)]
    row["bundle_wall"] = median([float(b["wall"]) for b in bundles])  # type: ignore[arg-type]
    row["bundle_cpu"] = median([float(b["cpu"]) for b in bundles])  # type: ignore[arg-type]
    row["bundle_system"] = median([float(b["system"]) for b in bundles])  # type: ignore[arg-type]
    row["bundle_helpers"] = median([float(b["helpers"]) for b in bundles])  # type: ignore[arg-type]
    manifest = str(bundles[0]["manifest"])
    row["closure"] = len(json.loads(Path(manifest).read_text())["modules"])
    row["manifest_kB"] = os.path.getsize(manifest) / 1e3
    row["names_kB"] = os.path.getsize(os.path.join(os.path.dirname(manifest), "names.txt")) / 1e3

    timed(with_pkg, script, "ship", env)  # makes the cache entry
    ships = [timed(with_pkg, script, "ship", env) for _ in range(runs)]
    row["ship_wall"] = median([float(s["wall"]) for s in ships])  # type: ignore[arg-type]

    # B imports a copy: one __pycache__ per side (A's loader keeps hash-checked bytecode).
    copy = work / ("copy%d" % size)
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("__pycache__"))
    active = dict(env, HN_MODULEFIX_MANIFEST=manifest)
    check_hooked(with_pkg, active)
    plain = dict(env, PYTHONPATH=str(copy))
    code = "import %s" % LEAF
    ratio, ta, tb = paired(cpu_command([with_pkg, "-c", code], active, cwd=str(work)),
                           cpu_command([without, "-c", code], plain, cwd=str(work)), pairs)
    row.update(import_ratio=ratio, import_a=ta, import_b=tb)
    ia, ib = instructions(with_pkg, active, code), instructions(without, plain, code)
    row["import_instr"] = (ia - ib) / 1e6 if ia and ib else float("nan")

    ratio, ta, tb = paired(cpu_command([with_pkg, "-c", "pass"], active, cwd=str(work)),
                           cpu_command([without, "-c", "pass"], env, cwd=str(work)), pairs)
    row.update(start_ratio=ratio, start_a=ta, start_b=tb)
    ia, ib = instructions(with_pkg, active), instructions(without, env)
    row["start_instr"] = ia / ib if ia and ib else float("nan")
    check_hooked(plain_with, active)
    ia, ib = instructions(plain_with, active), instructions(plain_without, env)
    row["plain_instr"] = ia / ib if ia and ib else float("nan")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 250, 2500], help="files per project")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per bundle and ship() timing")
    parser.add_argument("--pairs", type=int, default=100, help="pairs of fresh interpreters for (c) and (d)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pythons = venvs(work) + plain_pythons(work / "plain")
        rows = [measure(size, work, pythons, args.runs, args.pairs) for size in args.sizes]
    print(machine())
    try:
        print("load average at the end: %.1f %.1f %.1f" % os.getloadavg())
    except OSError:
        pass
    print("%d runs per timing; %d pairs of fresh interpreters per ratio (CPU time)" % (args.runs, args.pairs))
    header = ("files", "MB", "closure", "manifest", "names.txt", "(a) first bundle", "(b) ship() unchanged",
              "(c) first import, A vs B", "(d) -c pass A/B", "(d) instr. A/B", "(d) instr. A/B, plain")
    print(" | ".join(header))
    print(" | ".join("-" * len(h) for h in header))
    for r in rows:
        print(" | ".join((
            "%d" % r["files"], "%.1f" % r["MB"], "%d" % r["closure"], "%.0f kB" % r["manifest_kB"],
            "%.1f kB" % r["names_kB"], "%.2f s (CPU %.2f s, %.2f s of it system, + %.2f s in helpers)" % (
                r["bundle_wall"], r["bundle_cpu"], r["bundle_system"], r["bundle_helpers"]),
            "%.3f s" % r["ship_wall"],
            "%.1f vs %.1f ms: %+.1f ms, ratio %.3f; %+.1f M instr." % (
                r["import_a"] * 1e3, r["import_b"] * 1e3, (r["import_a"] - r["import_b"]) * 1e3, r["import_ratio"],
                r["import_instr"]),
            "%.3f" % r["start_ratio"], "%.3f" % r["start_instr"], "%.3f" % r["plain_instr"])))


if __name__ == "__main__":
    main()
