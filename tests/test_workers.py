"""Red/green in real worker processes: Daft process UDFs, multiprocessing spawn pools and
ProcessPoolExecutor.  Each red run is the same scenario without hn_modulefix."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from _support import REPO, clean_env, run

IMPORT_LIKE_MODAL = ("import importlib, json, sys\nsys.path.insert(0, %r)\n"
                     "print(json.dumps(importlib.import_module('pipeline').run(), sort_keys=True))\n")
MISSING = re.compile(r"No module named \\?'(pipeline|helpers|jobs)\\?'")


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


@pytest.mark.parametrize("kind", ["pool", "executor"])
def test_spawned_workers_fail_without_and_work_with_bundle(hook_python: Path, tmp_path: Path, kind: str) -> None:
    scenario = tmp_path / "scenario"
    shutil.copytree(REPO / "tests" / "scenarios", scenario)
    driver = [str(hook_python), str(scenario / "pool_driver.py"), kind]

    red = run(driver, cwd=tmp_path, timeout=120)
    assert red.returncode != 0 and "No module named 'jobs'" in red.stderr, red.stderr[-2000:]

    manifest = cli_bundle(hook_python, str(scenario / "user" / "jobs.py"), "-o", str(tmp_path / "bundle"), cwd=scenario)
    green = run(driver, cwd=tmp_path, env=clean_env(HN_MODULEFIX_MANIFEST=manifest), timeout=120)
    assert (green.returncode, green.stdout) == (0, "[('square', 3, 9), ('cube', 2, 8), ('square', 5, 25)]\n"), \
        green.stderr[-2000:]


def test_example_daft_local_shows_red_then_green(tmp_path: Path) -> None:
    result = run([sys.executable, str(REPO / "examples" / "daft_local.py")], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[1].startswith("   exit 1: ModuleNotFoundError: No module named")
    assert lines[-1] == "as expected: run 1 fails, runs 2 and 3 agree"
