"""Daft on real Ray, red/green, for use_process=True and False: a cluster the driver
starts, an existing cluster the driver connects to, and two nodes whose bundle files are
deleted on the driver before the job runs.

Each scenario runs in a private network and PID namespace with only loopback (Ray would
bind the machine's external address otherwise); leaving the namespace ends every Ray
process it started.  Ray's temp dir and home (its token file) stay in the test's temp dir.
The workers' interpreter is a fresh venv without hn_modulefix: only the runtime_env can
bring it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from _nodes import bare_python, in_namespace, needs_namespace, short_tmp  # noqa: F401 (fixtures)
from _support import REPO, clean_env, run

DRIVER = REPO / "tests" / "scenarios" / "ray_driver.py"
EXPECTED = "result: [10, 40, 90, 160]"
RUNS = [(fix, use_process) for fix in ("0", "1") for use_process in ("0", "1")]


def in_ray_namespace(script: str, tmp: Path, python: Path) -> str:
    """`in_namespace` with Ray's temp dir and home (its token file) in `tmp`."""
    (tmp / "r").mkdir()
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
    ray = '"$PY" -c "import sys; from ray.scripts.scripts import main; sys.argv[0] = \'ray\'; main()"'
    script = (ray + " start --head --port=6390 --node-ip-address=127.0.0.1 --num-cpus=2"
              " --object-store-memory=268435456 --include-dashboard=false --disable-usage-stats"
              ' --temp-dir="$RAY_TMPDIR/ray" > "$OUT/head.txt" 2>&1 || exit 3\n'
              + DRIVE_ALL.format(mode="address", address="127.0.0.1:6390")
              + ray + " stop --force > /dev/null 2>&1\n")
    check_runs(in_ray_namespace(script, short_tmp, bare_python), short_tmp)


@pytest.mark.ray
@needs_namespace
def test_two_nodes_with_the_local_bundle_deleted(bare_python: Path, short_tmp: Path) -> None:
    stdout = in_ray_namespace(DRIVE_ALL.format(mode="cluster", address=""), short_tmp, bare_python)
    check_runs(stdout, short_tmp)
    assert "nodes: 2" in (short_tmp / "run_11.txt").read_text()


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
