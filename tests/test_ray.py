"""Daft on real Ray, red/green: for use_process=True and False, a cluster the driver
starts and an existing cluster the driver connects to; and a worker node that cannot read
the driver's files (its own mount namespace, see _nodes.py), where they are missing or an
older checkout stands at their path.

Each scenario runs in a private network and PID namespace with only loopback (Ray would
bind the machine's external address otherwise); leaving the namespace ends every Ray
process it started.  Ray's temp dir and home (its token file) stay in the test's temp dir.
The workers' interpreter is a fresh venv without hn_modulefix: only the runtime_env can
bring it.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from _nodes import (bare_python, in_namespace, needs_namespace, node, project_and_older_checkout,  # noqa: F401
                    short_tmp, wait_until)  # (fixtures)
from _support import REPO, clean_env, run

DRIVER = REPO / "tests" / "scenarios" / "ray_driver.py"
EXPECTED = "result: [10, 40, 90, 160]"
RUNS = [(fix, use_process) for fix in ("0", "1") for use_process in ("0", "1")]
RAY = '"$PY" -c "import sys; from ray.scripts.scripts import main; sys.argv[0] = \'ray\'; main()"'


def in_ray_namespace(script: str, tmp: Path, python: Path) -> str:
    """`in_namespace` with Ray's temp dir and home (its token file) in `tmp`."""
    (tmp / "r").mkdir(exist_ok=True)
    return in_namespace(script, tmp, PY=str(python), DRIVER=str(DRIVER), SRC=str(REPO / "src"),
                        RAY_TMPDIR=str(tmp / "r"), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
                        RAY_DISABLE_DASHBOARD="1", DAFT_PROGRESS_BAR="0")


DRIVE_ALL = """
for fix in 0 1; do for proc in 0 1; do
  JOB_USE_PROCESS=$proc "$PY" "$DRIVER" "$SRC" {mode} $fix {address} > "$OUT/run_$fix$proc.txt" 2>&1
  echo "exit $fix$proc $?"
done; done
"""


def check_runs(stdout: str, tmp: Path) -> None:
    for fix, use_process in RUNS:
        output = (tmp / ("run_%s%s.txt" % (fix, use_process))).read_text()
        code = "exit %s%s " % (fix, use_process)
        (line,) = [x for x in stdout.splitlines() if x.startswith(code)]
        if fix == "1":
            assert line == code + "0" and EXPECTED in output.splitlines(), output[-3000:]
        else:
            assert line == code + "1" and "No module named 'shapes'" in output and EXPECTED not in output, output[-3000:]


@pytest.mark.ray
@needs_namespace
def test_cluster_started_by_the_driver(bare_python: Path, short_tmp: Path) -> None:
    stdout = in_ray_namespace(DRIVE_ALL.format(mode="local", address=""), short_tmp, bare_python)
    check_runs(stdout, short_tmp)


@pytest.mark.ray
@needs_namespace
def test_existing_cluster(bare_python: Path, short_tmp: Path) -> None:
    script = (RAY + " start --head --port=6390 --node-ip-address=127.0.0.1 --num-cpus=2"
              " --object-store-memory=268435456 --include-dashboard=false --disable-usage-stats"
              ' --temp-dir="$RAY_TMPDIR/ray" > "$OUT/head.txt" 2>&1 || exit 3\n'
              + DRIVE_ALL.format(mode="address", address="127.0.0.1:6390")
              + RAY + " stop --force > /dev/null 2>&1\n")
    check_runs(in_ray_namespace(script, short_tmp, bare_python), short_tmp)


@pytest.mark.ray
@pytest.mark.slow
@needs_namespace
@pytest.mark.parametrize("checkout", ["none", "older"])
def test_worker_node_that_cannot_read_the_drivers_files(checkout: str, bare_python: Path, short_tmp: Path) -> None:
    """The head has no CPUs: every task runs on the other node (only Daft's scheduler actor,
    which Daft pins to the head, runs beside the driver).  That node has its own mount
    namespace where the driver's project, home (the cache), temp dir, Ray directory and
    hn_modulefix's source are empty directories, or (`older`) the project path holds an
    older checkout.  Only the runtime_env can bring the driver's modules there."""
    # shapes.py computes the area otherwise in the older checkout; job.py is the same.
    project, old = project_and_older_checkout(short_tmp, "ray_user", "scripts/shapes.py", "self.side * self.side",
                                              "self.side + self.side")
    main_run = run([str(bare_python), "scripts/job.py"], cwd=project)
    assert main_run.returncode == 0 and main_run.stdout.startswith("result: "), main_run.stderr[-3000:]
    driver_tmp, head_dir, node_dir = short_tmp / "driver_tmp", short_tmp / "r" / "head", short_tmp / "r" / "node"
    for path in (driver_tmp, head_dir, node_dir, short_tmp / "home"):
        path.mkdir(parents=True)
    hidden = [short_tmp / "home", driver_tmp, head_dir, REPO / "src", REPO / "tests"]
    if checkout == "none":
        hidden.append(project)
    port = "127.0.0.1:6391"
    script = (RAY + " start --head --num-cpus=0 --port=6391 --node-ip-address=127.0.0.1"
              " --object-store-memory=268435456 --include-dashboard=false --disable-usage-stats"
              ' --temp-dir="%s" > "$OUT/head.txt" 2>&1 || exit 3\n' % head_dir
              + node(RAY + " start --address=%s --num-cpus=2 --node-ip-address=127.0.0.1"
                     " --object-store-memory=268435456 --disable-usage-stats --temp-dir=%s --block"
                     % (port, node_dir), '"$OUT/node.txt"', hide=hidden,
                     bind={project: old} if checkout == "older" else {})
              + wait_until('grep -q "Ray runtime started" "$OUT/node.txt"', 60, "the worker node")
              + "for fix in 0 1; do\n"
              + '  JOB_PROJECT="%s" TMPDIR="%s" JOB_USE_PROCESS=1 JOB_ORIGIN=1 "$PY" "$DRIVER" "$SRC" address $fix %s'
                ' > "$OUT/run_$fix.txt" 2>&1\n' % (project, driver_tmp, port)
              + '  echo "exit $fix $?"\ndone\n')
    stdout = in_ray_namespace(script, short_tmp, bare_python).splitlines()
    red, green = (short_tmp / "run_0.txt").read_text(), (short_tmp / "run_1.txt").read_text()
    assert "exit 0 1" in stdout and not any(x.startswith("result: ") for x in red.splitlines()), red[-3000:]
    assert re.search(r"ModuleNotFoundError: No module named '(job|shapes)'", red), red[-3000:]
    assert "exit 1 0" in stdout, green[-3000:]
    lines = green.splitlines()
    assert main_run.stdout.splitlines()[-1] in lines, green[-3000:]
    driver = json.loads(next(x for x in lines if x.startswith("driver: "))[8:])
    origin = json.loads(next(x for x in lines if x.startswith("origin: "))[8:])
    assert driver["alive"] == 2 and origin["node"] != driver["node"] and origin["pid"] != driver["pid"], green[-3000:]
    # The worker node's own directory for what a runtime_env brought: the shipped copy.
    shipped = Path(origin["shapes"]).relative_to(node_dir)
    assert shipped.parts[1:3] == ("runtime_resources", "py_modules_files") and shipped.name == "shapes.py", origin
    # Where the node holds the listed bytes at the driver's path (job.py is the same in
    # the older checkout), the module keeps its original __file__.
    if checkout == "older":
        assert origin["job"] == str(project / "scripts" / "job.py"), origin
    else:
        assert Path(origin["job"]).parent == Path(origin["shapes"]).parent, origin


def test_runtime_env_merges_into_base_and_keeps_it() -> None:
    from hn_modulefix import ray_runtime_env

    base = {"env_vars": {"A": "1"}, "py_modules": ["/somewhere/mod.py"], "pip": ["x"]}
    env = ray_runtime_env(str(REPO / "tests" / "scenarios" / "ray_user" / "scripts" / "job.py"), base=base)
    assert base == {"env_vars": {"A": "1"}, "py_modules": ["/somewhere/mod.py"], "pip": ["x"]}  # not mutated
    assert env["pip"] == ["x"] and env["env_vars"]["A"] == "1"
    assert env["py_modules"][0] == "/somewhere/mod.py"
    names = [Path(p).name for p in env["py_modules"][1:]]
    assert names[0].startswith("hn_modulefix_bundle_")
    assert names[1:] == ["hn_modulefix", "_hn_modulefix_boot.py", "sitecustomize.py"]
    assert env["env_vars"]["HN_MODULEFIX_MANIFEST"] == "pythonpath:%s/manifest.json" % names[0]
    # A snapshot: a node holding other files at the driver's paths runs the bytes shipped.
    assert json.loads((Path(env["py_modules"][1]) / "manifest.json").read_text())["snapshot"] is True
    with pytest.raises(ValueError, match="env_vars already sets HN_MODULEFIX_MANIFEST"):
        ray_runtime_env(str(REPO / "examples" / "scripts" / "pipeline.py"),
                        base={"env_vars": {"HN_MODULEFIX_MANIFEST": "/x"}})


def test_pythonpath_manifest_reference_resolves_lazily(tmp_path: Path) -> None:
    from hn_modulefix import bundle

    (tmp_path / "job.py").write_text("X = 1\n")
    bundle(tmp_path / "job.py", out=tmp_path / "shipped" / "hn_modulefix_bundle_x", root=tmp_path)
    env = clean_env(HN_MODULEFIX_MANIFEST="pythonpath:hn_modulefix_bundle_x/manifest.json",
                    PYTHONPATH=str(tmp_path / "shipped"))
    ok = run([sys.executable, "-c", "import job; print(job.X)"], cwd=tmp_path / "shipped", env=env)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "1\n", "")
    (tmp_path / "empty").mkdir()
    env["PYTHONPATH"] = str(tmp_path / "empty")
    missing = run([sys.executable, "-c", "import job"], cwd=tmp_path / "empty", env=env)
    assert missing.returncode == 1
    assert missing.stderr.splitlines()[0] == ("hn_modulefix: finder disabled: manifest pythonpath:"
                                              "hn_modulefix_bundle_x/manifest.json: no sys.path entry holds "
                                              "hn_modulefix_bundle_x/manifest.json")


@pytest.mark.ray
@needs_namespace
def test_example_ray_daft(bare_python: Path, short_tmp: Path) -> None:
    # The workers' interpreter cannot import hn_modulefix: only the example's runtime_env
    # can bring it to them.  The driver imports it from src/, in its own process only.
    assert run([str(bare_python), "-c", "import hn_modulefix"]).stderr.splitlines()[-1] == (
        "ModuleNotFoundError: No module named 'hn_modulefix'")
    wrapper, example = REPO / "tests" / "scenarios" / "driver_with_src.py", REPO / "examples" / "ray_daft.py"
    script = "".join('"$PY" %s "$SRC" %s %s > "$OUT/%s.txt" 2>&1; echo "exit %s $?"\n' % (wrapper, example, flag, name, name)
                     for name, flag in (("red", "--without"), ("green", "")))
    stdout = in_ray_namespace(script, short_tmp, bare_python).splitlines()
    red, green = (short_tmp / "red.txt").read_text(), (short_tmp / "green.txt").read_text()
    # Whichever of the script's two modules the workers unpickle first.
    assert "exit red 1" in stdout and re.search(r"ModuleNotFoundError: No module named '(helpers|pipeline)'", red), \
        red[-3000:]
    assert "exit green 0" in stdout, green[-3000:]
    assert '"sentiment": ["POSITIVE", "NEGATIVE", "NEUTRAL", "NEUTRAL"]' in green.splitlines()[-1]
