"""Concurrency and load in fresh interpreters, through the start-up hook: 32 threads
importing one module's names at once, a Daft pipeline with 8 concurrent process-UDF
workers over 100 batches, and 100 worker processes started one after another."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import pytest

from _support import clean_env, run
from hn_modulefix import bundle

THREADS = 32
# 32 threads wait at a barrier, then import the module under its two names in turn.
RACE = """import importlib, json, sys, threading
barrier = threading.Barrier(%d)
outcomes = [None] * barrier.parties

def worker(i):
    barrier.wait()
    try:
        outcomes[i] = id(importlib.import_module("slow" if i %% 2 else "scripts.slow"))
    except ImportError as e:
        outcomes[i] = "%%s: %%s" %% (type(e.__cause__).__name__, str(e).rpartition("): ")[2])

threads = [threading.Thread(target=worker, args=(i,)) for i in range(barrier.parties)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"outcomes": outcomes, "runs": len(sys.modules.get("slow_runs", [])),
                  "left": sorted(n for n in ("slow", "scripts.slow") if n in sys.modules)}))
""" % THREADS


def race(python: Path, tmp_path: Path, body: str) -> dict:
    script = tmp_path / "proj" / "scripts" / "slow.py"
    script.parent.mkdir(parents=True)
    # The sleep holds the other 31 threads at the module while it executes.
    script.write_text("import sys, time\nsys.modules.setdefault('slow_runs', []).append(1)\ntime.sleep(0.1)\n" + body)
    manifest = bundle(script, out=tmp_path / "bundle", root=tmp_path / "proj")
    result = run([str(python), "-c", RACE], cwd=tmp_path, env=clean_env(HN_MODULEFIX_MANIFEST=str(manifest)))
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    return json.loads(result.stdout)


def test_threads_racing_through_the_start_up_hook_share_one_execution(hook_python: Path, tmp_path: Path) -> None:
    # The first lookup also loads the real finder and the manifest behind the hook's lock.
    outcome = race(hook_python, tmp_path, "READY = True\n")
    assert len(set(outcome["outcomes"])) == 1 and isinstance(outcome["outcomes"][0], int)
    assert (outcome["runs"], outcome["left"]) == (1, ["scripts.slow", "slow"])


def test_threads_racing_into_a_failing_module_all_fail_and_leave_no_name(hook_python: Path, tmp_path: Path) -> None:
    outcome = race(hook_python, tmp_path, "raise ValueError('nope')\n")
    assert outcome["outcomes"] == ["ValueError: executing it raised ValueError: nope"] * THREADS
    # A failed execution leaves nothing to share: each import executed the file itself
    # and failed the same way, as importlib retries any module that failed.
    assert (outcome["runs"], outcome["left"]) == (THREADS, [])


HELPERS = """import dataclasses


@dataclasses.dataclass(frozen=True)
class Scale:
    factor: int
    offset: int


def scaled(x: int, scale: Scale) -> int:
    return x * scale.factor + scale.offset
"""
# A pipeline whose UDF state holds an instance of a local module's class, so every
# worker must import both modules to unpickle it.
PIPELINE = """import os

import daft
from daft import DataType, Series

from load_helpers import Scale, scaled

ROWS, BATCH, WORKERS = 1000, 10, 8
OUT = DataType.struct({"y": DataType.int64(), "pid": DataType.int64(), "batch": DataType.int64()})


@daft.cls(use_process=True, max_concurrency=WORKERS)
class Pool:
    def __init__(self, scale: Scale) -> None:
        self.scale = scale

    @daft.method.batch(return_dtype=OUT, batch_size=BATCH, unnest=True)
    def __call__(self, x: Series) -> Series:
        xs = x.to_pylist()
        return Series.from_pylist([{"y": scaled(v, self.scale), "pid": os.getpid(), "batch": xs[0]} for v in xs])


@daft.cls(use_process=True)
class Single:
    def __init__(self, scale: Scale) -> None:
        self.scale = scale

    @daft.method(return_dtype=OUT, unnest=True)
    def __call__(self, x: int) -> dict:
        return {"y": scaled(x, self.scale), "pid": os.getpid(), "batch": 0}


def concurrent() -> dict:
    df = daft.from_pydict({"x": list(range(ROWS))})
    return df.select(daft.col("x"), Pool(Scale(3, 7))(daft.col("x"))).to_pydict()


def sequential(starts: int) -> list:
    # A new UDF instance per query: each query starts, and stops, its own worker.
    return [daft.from_pydict({"x": [i, i + 1]}).select(daft.col("x"), Single(Scale(i, 1))(daft.col("x"))).to_pydict()
            for i in range(starts)]
"""
# Unpickling the UDF needs both; which one the worker misses first is Daft's business.
MISSING = re.compile(r"No module named \\?'(loadpipe|load_helpers)\\?'")
# Imported the way Modal imports a script: its directory on sys.path at run time only,
# the working directory elsewhere.
DRIVER = ("import importlib, json, sys\nsys.path.insert(0, %r)\n"
          "print(json.dumps(getattr(importlib.import_module('loadpipe'), sys.argv[1])(*map(int, sys.argv[2:]))))\n")


@pytest.fixture
def pipeline(tmp_path: Path) -> tuple[str, str, Path]:
    """(driver code, manifest, working directory) for the bundled pipeline."""
    scripts = tmp_path / "proj" / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "load_helpers.py").write_text(HELPERS)
    (scripts / "loadpipe.py").write_text(PIPELINE)
    manifest = bundle(scripts / "loadpipe.py", out=tmp_path / "bundle", root=tmp_path / "proj")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return DRIVER % str(scripts), str(manifest), elsewhere


@pytest.mark.slow
def test_eight_concurrent_workers_over_100_batches(hook_python: Path, pipeline: tuple[str, str, Path]) -> None:
    driver, manifest, cwd = pipeline
    red = run([str(hook_python), "-c", driver, "concurrent"], cwd=cwd, timeout=120)
    assert red.returncode != 0 and MISSING.search(red.stderr), red.stderr[-2000:]

    result = run([str(hook_python), "-c", driver, "concurrent"], cwd=cwd,
                 env=clean_env(HN_MODULEFIX_MANIFEST=manifest), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    rows = sorted(zip(out["x"], out["y"], out["batch"], out["pid"]))
    assert [(x, y) for x, y, _, _ in rows] == [(x, 3 * x + 7) for x in range(1000)]
    # 100 batches of 10 rows, each whole in one worker; 8 worker processes served them.
    assert [batch for _, _, batch, _ in rows] == [x - x % 10 for x in range(1000)]
    by_batch = collections.defaultdict(set)
    for x, _, batch, pid in rows:
        by_batch[batch].add(pid)
    assert len(by_batch) == 100 and all(len(pids) == 1 for pids in by_batch.values())
    assert len({pid for *_, pid in rows}) == 8


@pytest.mark.slow
def test_100_workers_started_one_after_another(hook_python: Path, pipeline: tuple[str, str, Path]) -> None:
    driver, manifest, cwd = pipeline
    result = run([str(hook_python), "-c", driver, "sequential", "100"], cwd=cwd,
                 env=clean_env(HN_MODULEFIX_MANIFEST=manifest), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout)
    assert [(run["x"], run["y"]) for run in runs] == [([i, i + 1], [i * i + 1, (i + 1) * i + 1]) for i in range(100)]
    assert len({pid for run in runs for pid in run["pid"]}) == 100  # a fresh worker each time, none lost
