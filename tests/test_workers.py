"""Red/green in real worker processes: Daft process UDFs (daft 0.7.26 and 0.6.14 on the
host's Python, daft 0.7.26 on Python 3.13 in a Debian chroot, HyperNodes 0.4.8 on daft
0.6.14), multiprocessing spawn pools and ProcessPoolExecutor.  Each red run is the same
scenario without hn_modulefix; each worker claim is checked against the worker's pid."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from _pythons import Python
from _support import REPO, clean_env, run

IMPORT_LIKE_MODAL = ("import importlib, json, sys\nsys.path.insert(0, %r)\n"
                     "print(json.dumps(importlib.import_module('pipeline').run(), sort_keys=True))\n")
MISSING = re.compile(r"No module named \\?'(pipeline|helpers|jobs)\\?'")
# daft 0.6.14 sometimes crashes while the interpreter finalizes (SIGSEGV, or an abort in
# PyGILState_Release), with or without hn_modulefix: the drivers leave once the result is out.
LEAVE = "sys.stdout.flush(); os._exit(0)\n"
IMPORT_UDFS = ("import importlib, json, os, sys\nsys.path.insert(0, %r)\n"
               "print(json.dumps(importlib.import_module('udfs').run(%r)))\n" + LEAVE)


def cli_bundle(python: Path, *args: str, cwd: Path) -> str:
    result = run([str(python), "-m", "hn_modulefix", "bundle", *args], cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


def test_daft_process_udf_fails_without_and_matches_main_with_bundle(
        example_project: Path, hook_python: Path, tmp_path: Path) -> None:
    scripts = example_project / "scripts"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = IMPORT_LIKE_MODAL % str(scripts)

    red = run([str(hook_python), "-c", code], cwd=elsewhere)
    assert red.returncode != 0 and MISSING.search(red.stderr), red.stderr[-2000:]

    manifest = cli_bundle(hook_python, "scripts/pipeline.py", "-o", str(tmp_path / "bundle"), cwd=example_project)
    green = run([str(hook_python), "-c", code], cwd=elsewhere, env=clean_env(HN_MODULEFIX_MANIFEST=manifest))
    assert green.returncode == 0, green.stderr[-3000:]

    as_main = run([str(hook_python), "pipeline.py"], cwd=scripts)
    assert as_main.returncode == 0, as_main.stderr[-3000:]
    assert json.loads(green.stdout) == json.loads(as_main.stdout)
    assert json.loads(green.stdout)["sentiment"] == ["POSITIVE", "NEGATIVE", "NEUTRAL", "NEUTRAL"]


POOL_RESULTS = "[('square', 3, 9), ('cube', 2, 8), ('square', 5, 25)]"


def pool_driver(python: Path, tmp_path: Path, *args: str, manifest: str | None = None) -> tuple[str, dict[str, Any]]:
    """tests/scenarios/pool_driver.py run with `args`, which must succeed: its results line
    and the pids, with every result made in a worker (another pid than the driver's)."""
    # ship()'s cache in the test's own directory, never the user's.
    env = clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"), **({"HN_MODULEFIX_MANIFEST": manifest} if manifest else {}))
    done = run([str(python), str(tmp_path / "scenario" / "pool_driver.py"), *args], cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, (args, done.stderr[-3000:])
    results, pids = done.stdout.splitlines()
    found = json.loads(pids)
    assert found["workers"] and found["driver"] not in found["workers"], found
    return results, found


@pytest.mark.parametrize("kind, method", [("pool", "spawn"), ("executor", "spawn"), ("executor", "forkserver")])
def test_spawned_workers_fail_without_a_sys_path_entry_and_work_with_bundle_or_ship(
        hook_python: Path, tmp_path: Path, kind: str, method: str) -> None:
    scenario = tmp_path / "scenario"
    shutil.copytree(REPO / "tests" / "scenarios", scenario, ignore=shutil.ignore_patterns("__pycache__"))
    # Spawned and forkserver children receive the parent's sys.path: a script imported as
    # `modal run` imports it (its directory put first on sys.path) needs nothing.
    assert pool_driver(hook_python, tmp_path, kind, method, "--modal")[0] == POOL_RESULTS

    # Loaded by file location with no sys.path entry, the children cannot import it.
    red = run([str(hook_python), str(scenario / "pool_driver.py"), kind, method], cwd=tmp_path, timeout=120)
    assert red.returncode != 0 and "No module named 'jobs'" in red.stderr, red.stderr[-2000:]
    if kind == "pool":
        # The worker dies unpickling its task, the pool starts another and the task is lost:
        # the map waits for ever; here until the driver's timeout.
        assert red.stderr.rstrip().endswith("multiprocessing.context.TimeoutError"), red.stderr[-2000:]
    else:
        assert "BrokenProcessPool" in red.stderr, red.stderr[-2000:]

    manifest = cli_bundle(hook_python, str(scenario / "user" / "jobs.py"), "-o", str(tmp_path / "bundle"), cwd=scenario)
    assert pool_driver(hook_python, tmp_path, kind, method, manifest=manifest)[0] == POOL_RESULTS
    assert pool_driver(hook_python, tmp_path, kind, method, "--ship")[0] == POOL_RESULTS


def test_loky_workers_fail_without_and_work_with_ship_also_those_started_before_it(
        hook_python: Path, tmp_path: Path) -> None:
    shutil.copytree(REPO / "tests" / "scenarios", tmp_path / "scenario", ignore=shutil.ignore_patterns("__pycache__"))
    driver = [str(hook_python), str(tmp_path / "scenario" / "pool_driver.py"), "loky"]
    red = run(driver, cwd=tmp_path, timeout=120)
    assert red.returncode != 0 and "No module named 'jobs'" in red.stderr, red.stderr[-2000:]
    assert pool_driver(hook_python, tmp_path, "loky", "--ship")[0] == POOL_RESULTS

    # joblib#1705: loky's reusable executor keeps its workers across calls, and workers
    # started before the script was imported lack even its sys.path entry.
    red = run(driver + ["--modal", "--early"], cwd=tmp_path, timeout=120)
    assert red.returncode != 0 and "No module named 'jobs'" in red.stderr, red.stderr[-2000:]
    # ship() shuts that executor down; the next call starts workers that get the manifest.
    results, pids = pool_driver(hook_python, tmp_path, "loky", "--modal", "--early", "--ship")
    assert results == POOL_RESULTS and pids["early"] and not set(pids["early"]) & set(pids["workers"]), pids


@pytest.mark.parametrize("method, shadow", [("spawn", "module"), ("forkserver", "module"), ("spawn", "namespace")])
def test_workers_of_a_shipping_driver_get_its_module_past_a_same_named_one_beside_it(
        hook_python: Path, tmp_path: Path, method: str, shadow: str) -> None:
    # The children run the driver's script again, with its directory first on sys.path: a
    # same-named module or directory there is not the driver's (which it loaded by location).
    scenario = tmp_path / "scenario"
    shutil.copytree(REPO / "tests" / "scenarios", scenario, ignore=shutil.ignore_patterns("__pycache__"))
    if shadow == "module":
        (scenario / "jobs.py").write_text("raise RuntimeError('not the driver module: another jobs.py')\n")
    else:
        (scenario / "jobs").mkdir()
    driver = [str(hook_python), str(scenario / "pool_driver.py"), "executor", method]
    red = run(driver, cwd=tmp_path, timeout=120)
    expected = ("RuntimeError: not the driver module" if shadow == "module"
                else "AttributeError: Can't get attribute 'work' on <module 'jobs' (<_frozen_importlib_external.Namesp")
    assert red.returncode != 0 and expected in red.stderr, red.stderr[-2000:]
    assert pool_driver(hook_python, tmp_path, "executor", method, "--ship")[0] == POOL_RESULTS


def test_example_daft_local_shows_red_then_green(tmp_path: Path) -> None:
    result = run([sys.executable, str(REPO / "examples" / "daft_local.py")], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[1].startswith("   exit 1: ModuleNotFoundError: No module named")
    assert lines[-1] == "as expected: run 1 fails, runs 2 and 3 agree"


def udfs_red_green(python: Python, tmp_path: Path, kind: str) -> None:
    """tests/scenarios/daft_user/udfs.py imported the Modal way: red without a bundle, green
    with one, and the UDF ran in a worker process (another pid than the driver's)."""
    scenario, elsewhere = tmp_path / "daft_user", tmp_path / "elsewhere"
    shutil.copytree(REPO / "tests" / "scenarios" / "daft_user", scenario, ignore=shutil.ignore_patterns("__pycache__"))
    elsewhere.mkdir()
    code = IMPORT_UDFS % (python.path(scenario), kind)
    red = python.run(["python", "-c", code], cwd=elsewhere)
    assert red.returncode != 0 and re.search(r"No module named \\?'udfs\\?'", red.stderr), red.stderr[-2000:]
    done = python.run(["python", "-m", "hn_modulefix", "bundle", "udfs.py", "-o", python.path(tmp_path / "bundle")],
                      cwd=scenario)
    assert done.returncode == 0, done.stderr
    green = python.run(["python", "-c", code], cwd=elsewhere, env={"HN_MODULEFIX_MANIFEST": done.stdout.split()[-1]})
    assert green.returncode == 0, green.stderr[-3000:]
    result = json.loads(green.stdout)
    assert result["texts"] == ["tag:a", "tag:b", "tag:c"]
    assert result["worker_pids"] and result["driver_pid"] not in result["worker_pids"], result


def test_daft_udf_returning_arrow_runs_in_a_worker_red_then_green(daft_python: Python, tmp_path: Path) -> None:
    udfs_red_green(daft_python, tmp_path, "arrow")


def test_daft_06_udf_returning_python_objects_runs_in_a_worker_red_then_green(daft06_python: Python,
                                                                              tmp_path: Path) -> None:
    # daft 0.7 runs such a UDF in the calling process: only 0.6 can show this case.
    udfs_red_green(daft06_python, tmp_path, "python")


def test_daft_on_python_3_13_red_then_green(daft_chroot: Python, tmp_path: Path) -> None:
    udfs_red_green(daft_chroot, tmp_path, "arrow")


IMPORT_HYPERNODES = ("import importlib, json, os, sys\nsys.path.insert(0, %r)\n"
                     "print(json.dumps(importlib.import_module('hypernodes_pipeline').run(), sort_keys=True))\n" + LEAVE)
AS_MAIN = "import os, runpy, sys\nrunpy.run_path('hypernodes_pipeline.py', run_name='__main__')\n" + LEAVE


def test_hypernodes_example_imported_like_modal_red_then_green_and_equal_to_main(daft06_python: Python,
                                                                                  tmp_path: Path) -> None:
    examples = REPO / "examples"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = IMPORT_HYPERNODES % str(examples)
    red = daft06_python.run(["python", "-c", code], cwd=elsewhere)
    assert red.returncode != 0 and re.search(r"No module named \\?'hypernodes_pipeline\\?'", red.stderr), \
        red.stderr[-2000:]
    manifest = cli_bundle(daft06_python.venv / "bin" / "python", "hypernodes_pipeline.py",
                          "-o", str(tmp_path / "bundle"), cwd=examples)
    green = daft06_python.run(["python", "-c", code], cwd=elsewhere, env={"HN_MODULEFIX_MANIFEST": manifest})
    assert green.returncode == 0, green.stderr[-3000:]
    as_main = daft06_python.run(["python", "-c", AS_MAIN], cwd=examples)
    assert as_main.returncode == 0, as_main.stderr[-3000:]
    imported, main = json.loads(green.stdout), json.loads(as_main.stdout)
    for result in (imported, main):  # every prediction was made in a UDF worker
        assert {p.pop("pid") for p in result["predictions"]}.isdisjoint({result["driver_pid"]}), result
    assert imported["predictions"] == main["predictions"]
    assert [p["doc_id"] for p in imported["predictions"]] == ["daft", "pickle", "modal"]
