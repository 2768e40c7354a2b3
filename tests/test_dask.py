"""Dask (distributed), red/green, with a script imported the way `modal run` imports it
whose Enum, dataclass and pydantic objects are task arguments and results
(scenarios/dask_user, driven by scenarios/dask_driver.py): LocalClusters started before
and after the fix, a worker holding an older module, a restart in the middle of a run, a
worker that joins later; a `dask scheduler` and a `dask worker` on a node that cannot read
the driver's files, or holds an older checkout at their path.  Results must equal the
script's own `__main__` run.

Everything runs in a loopback-only network namespace (_nodes.py), which needs root.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from _nodes import (bare_python, in_namespace, needs_namespace, node, project_and_older_checkout,  # noqa: F401
                    short_tmp, wait_until)  # (fixtures)
from _support import REPO

# Loaded before any test's import_state snapshot, so never dropped by one: the plugin module
# remembers which plugins this process made, and hn_modulefix.dask_plugin stays bound to it;
# distributed imports the importlib_metadata backport, which takes find_distributions away
# from the standard path finder and puts its own finder on sys.meta_path: a snapshot taken
# before that, restored, would leave no finder for any importlib.metadata lookup in this
# process (nbformat's, in the notebook tests).
import distributed  # noqa: F401,E402
import hn_modulefix._dask  # noqa: F401,E402

DRIVER = REPO / "tests" / "scenarios" / "dask_driver.py"
LOCAL_RED = ["before-none", "after-none"]
LOCAL_GREEN = ["before-plugin", "before-ship", "after-ship"]


def projects(tmp: Path) -> tuple[Path, Path]:
    """The driver's project (a copy of dask_user) and an older checkout of it, whose
    tiles.py computes the area otherwise (units.py is the same)."""
    return project_and_older_checkout(tmp, "dask_user", "scripts/tiles.py", "side * side * order.count",
                                      "side * order.count")


def steps(output: str) -> dict[str, Any]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return {line.get("step", "driver"): line for line in lines}


def results(step: dict[str, Any]) -> list[Any]:
    assert "out" in step, step
    return step["out"]["results"]  # type: ignore[no-any-return]


def main_results(text: str) -> list[Any]:
    return json.loads(text.splitlines()[-1])["results"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every LocalCluster scenario once, in one namespace; their outputs in files."""
    tmp = tmp_path_factory.mktemp("dask-local")
    project, old = projects(tmp)
    run = '"$PY" "$DRIVER" "$SRC" "$PROJECT" $s > "$OUT/$s.txt" 2> "$OUT/$s.err"'
    script = ('(cd "$PROJECT/scripts" && "$PY" tiles.py > "$OUT/main.txt" 2> "$OUT/main.err")\n'
              # A red run waits out its timeout: both at once.
              "for s in %s; do %s & done; wait\n" % (" ".join(LOCAL_RED), run)
              + "for s in %s; do %s; done\n" % (" ".join(LOCAL_GREEN), run))
    (tmp / "tmp").mkdir()  # where the workers unpack the plugin: removed with the test's files
    in_namespace(script, tmp, PY=sys.executable, DRIVER=str(DRIVER), SRC=str(REPO / "src"), PROJECT=str(project),
                 OLD_TILES=str(old / "scripts"), TMPDIR=str(tmp / "tmp"))
    return tmp


def local(runs: Path, scenario: str) -> tuple[dict[str, Any], str]:
    return steps((runs / (scenario + ".txt")).read_text()), (runs / (scenario + ".err")).read_text()


def assert_green(step: dict[str, Any], expected: list[Any], driver_pid: int, err: str) -> None:
    assert "out" in step, (step, err[-3000:])
    assert step["out"]["results"] == expected
    assert driver_pid not in step["out"]["pids"], step


@pytest.mark.slow
@needs_namespace
@pytest.mark.parametrize("when", ["before", "after"])
def test_local_cluster(local_runs: Path, when: str) -> None:
    """Started before the script is imported, a LocalCluster's workers cannot import it;
    started after, they inherit the driver's sys.path, so the script is loaded by file
    location there (as a platform's CLI may).  Red without hn_modulefix; green with the
    plugin (before) and with ship() (after: workers inherit its environment; before: only
    once client.restart() starts them anew)."""
    expected = main_results((local_runs / "main.txt").read_text())
    red, err = local(local_runs, when + "-none")
    assert red["run"]["error"].startswith("TimeoutError"), red
    assert "ModuleNotFoundError: No module named 'tiles'" in err, err[-3000:]
    for fix in ("plugin", "ship"):
        if (local_runs / ("%s-%s.txt" % (when, fix))).exists():
            green, err = local(local_runs, "%s-%s" % (when, fix))
            assert_green(green["run"], expected, green["driver"]["driver_pid"], err)


@pytest.mark.slow
@needs_namespace
def test_plugin_replaces_a_module_a_worker_imported_before(local_runs: Path) -> None:
    """A long-lived worker that imported an older tiles.py (from its own path) runs it
    silently without hn_modulefix; the plugin drops it, says so, and the next tasks run
    the driver's bytes."""
    expected = main_results((local_runs / "main.txt").read_text())
    out, err = local(local_runs, "before-plugin")
    old_file = str(local_runs / "old" / "scripts" / "tiles.py")
    assert list(out["old"]["out"].values()) == [old_file], out["old"]
    stale = out["stale"]["out"]
    assert stale["files"] == [old_file] and stale["results"] != expected, stale
    (event,) = out["events"]["out"]
    assert event["action"] == "dropped-stale" and event["modules"] == ["tiles (%s)" % old_file], event
    assert_green(out["run"], expected, out["driver"]["driver_pid"], err)
    assert out["run"]["out"]["files"] == [str(local_runs / "proj" / "scripts" / "tiles.py")]
    assert "had imported tiles (%s) from other bytes than the driver's" % old_file in err


@pytest.mark.slow
@needs_namespace
def test_plugin_reaches_restarted_and_joining_workers(local_runs: Path) -> None:
    expected = main_results((local_runs / "main.txt").read_text())
    out, err = local(local_runs, "before-plugin")
    driver, first = out["driver"]["driver_pid"], out["run"]["out"]["pids"]
    restart = out["restart"]["out"]
    assert restart["restarted"] and restart["cancelled"] == ["cancelled"] * 3, restart
    assert_green({"out": restart["run"]}, expected, driver, err)
    assert not set(restart["run"]["pids"]) & set(first), restart
    assert_green(out["joined"], expected, driver, err)
    assert not set(out["joined"]["out"]["pids"]) & set(first + restart["run"]["pids"]), out["joined"]
    # Unregistered, the worker side takes its finder and environment away again.
    assert out["unregistered"]["out"] == [{"environ": None, "finders": []}] * 2, out["unregistered"]


@pytest.mark.slow
@needs_namespace
@pytest.mark.parametrize("checkout", ["none", "older"])
def test_scheduler_and_worker_nodes(checkout: str, bare_python: Path, short_tmp: Path) -> None:
    """`dask scheduler` beside the driver and `dask worker` on a node of its own (mount and
    PID namespace) where the driver's project, temp dir and home, the scheduler's temp
    dir and hn_modulefix's source are empty, or (`older`) the project path holds an older
    checkout.  The interpreter has no hn_modulefix: only the plugin brings it.  Red: the
    scheduler cannot unpickle the task graph.  Green: the worker runs the shipped copy."""
    project, old = projects(short_tmp)
    main_run = in_namespace('cd "$PROJECT/scripts" && "$PY" tiles.py', short_tmp, PY=str(bare_python),
                            PROJECT=str(project))
    expected = main_results(main_run)
    dirs = {name: short_tmp / name for name in ("driver_tmp", "scheduler_tmp", "worker_tmp")}
    for path in dirs.values():
        path.mkdir()
    hidden = [short_tmp / "home", dirs["driver_tmp"], dirs["scheduler_tmp"], REPO / "src", REPO / "tests"]
    if checkout == "none":
        hidden.append(project)
    address = "tcp://127.0.0.1:8791"
    script = ('TMPDIR="%s" "$PY" -m dask scheduler --host 127.0.0.1 --port 8791 --no-dashboard'
              ' > "$OUT/scheduler.txt" 2>&1 &\n' % dirs["scheduler_tmp"]
              + node('env TMPDIR="%s" "$PY" -m dask worker %s --nworkers 1 --nthreads 1 --no-dashboard'
                     % (dirs["worker_tmp"], address), '"$OUT/worker.txt"', hide=hidden,
                     bind={project: old} if checkout == "older" else {}, own_pids=True)
              + wait_until('grep -q "Registered to" "$OUT/worker.txt"', 60, "the worker")
              + "for s in none plugin; do\n"
              '  TMPDIR="%s" "$PY" "$DRIVER" "$SRC" "$PROJECT" address-$s %s > "$OUT/$s.txt" 2>&1\n'
              "done\n" % (dirs["driver_tmp"], address))
    in_namespace(script, short_tmp, PY=str(bare_python), DRIVER=str(DRIVER), SRC=str(REPO / "src"),
                 PROJECT=str(project))
    red_text, green_text = (short_tmp / "none.txt").read_text(), (short_tmp / "plugin.txt").read_text()
    red, green = steps(red_text), steps(green_text)
    assert red["run"]["error"].startswith("RuntimeError: Error during deserialization of the task graph"), red_text
    assert "ModuleNotFoundError: No module named 'tiles'" in (short_tmp / "scheduler.txt").read_text()
    assert_green(green["run"], expected, green["driver"]["driver_pid"], green_text)
    where = green["where"]["out"]
    (worker,) = where["workers"]
    assert green["run"]["out"]["pids"] == [worker["pid"]], where
    assert worker["mnt"] != where["driver"]["mnt"] and worker["pidns"] != where["driver"]["pidns"], where
    # The worker unpacked the plugin in its own temp dir, and ran that copy.
    (shipped,) = green["run"]["out"]["files"]
    parts = Path(shipped).relative_to(dirs["worker_tmp"]).parts
    assert parts[0] == "hn_modulefix-dask-%d" % os.getuid() and parts[2:] == ("bundle", "modules", "scripts", "tiles.py")
    # A process the worker starts gets the modules through the environment it inherits.
    (child,) = green["child"]["out"]
    assert (child["pid"], child["stdout"], child["stderr"]) == (worker["pid"], shipped + "\n", ""), child
    (report,) = green["doctor"]["out"]
    manifest = dirs["worker_tmp"] / parts[0] / parts[1] / "bundle" / "manifest.json"
    assert "%s (from HN_MODULEFIX_MANIFEST): parses, 2 files" % manifest in report, report
    assert report.endswith("no problems found"), report


def test_check_a_task_argument(import_state: None) -> None:
    """What Dask pickles for a task's argument, checked as locally: red, then green with
    the plugin's bundle."""
    import importlib

    from distributed.protocol.pickle import dumps

    import hn_modulefix

    scripts = REPO / "tests" / "scenarios" / "dask_user" / "scripts"
    sys.path.insert(0, str(scripts))
    tiles = importlib.import_module("tiles")
    payload = dumps(tiles.ORDERS[0])
    red = hn_modulefix.check(payload)
    assert [m.module for m in red.failed] == ["tiles"], red.report()
    assert "client.register_plugin(hn_modulefix.dask_plugin())" in red.report()
    plugin = hn_modulefix.dask_plugin(tiles.__file__, root=scripts.parent)
    green = hn_modulefix.check(payload, manifest=plugin.manifest)  # type: ignore[attr-defined]
    assert green.ok and [m.status for m in green.modules if m.module == "tiles"] == ["bundle"], green.report()


def test_the_drivers_own_process_is_left_alone(import_state: None) -> None:
    """A LocalCluster's scheduler, and its workers with processes=False, run in the
    driver's process: the plugin unpacks, installs and exports nothing there, and the
    driver's modules stay the ones it imported."""
    import importlib

    from distributed import Client, LocalCluster

    import hn_modulefix

    scripts = REPO / "tests" / "scenarios" / "dask_user" / "scripts"
    sys.path.insert(0, str(scripts))
    tiles = importlib.import_module("tiles")
    meta_path, environ = list(sys.meta_path), dict(os.environ)
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        client.register_plugin(hn_modulefix.dask_plugin(tiles.__file__, root=scripts.parent))
        out = tiles.run(client)
        assert out["pids"] == [os.getpid()] and out["files"] == [tiles.__file__]
        assert sys.modules["tiles"] is tiles and sys.meta_path == meta_path and dict(os.environ) == environ


def test_dask_plugin_names_modules_from_the_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hn_modulefix

    proj = tmp_path / "work" / "src" / "proj"
    (proj / "jobs").mkdir(parents=True)
    (proj / "pyproject.toml").write_text("")
    (proj / "jobs" / "run.py").write_text("import helper\n")
    (proj / "jobs" / "helper.py").write_text("VALUE = 1\n")
    monkeypatch.chdir(tmp_path / "work")  # two directories above the project, as ship() is tested
    plugin = hn_modulefix.dask_plugin(str(proj / "jobs" / "run.py"))
    listed = [entry["names"] for entry in json.loads(Path(plugin.manifest).read_text())["modules"]]
    assert listed == [["helper", "jobs.helper"], ["run", "jobs.run"]]
