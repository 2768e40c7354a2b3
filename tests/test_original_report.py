"""The original report, literally: examples/original_report is a uv project; uv (the test
extra's) makes its `.venv` inside it (`uv sync`, as `uv run` does) and every command runs
through `uv run` from the project root, as in the report:

- the local side of `modal run scripts/test_modal_failure_repro.py`: Modal's own
  `import_file_or_module(parse_import_ref(...))` (what `modal run` calls before it contacts
  any server), then the local entrypoint, which runs the pipeline in this process with
  `.local()` as the report did. Red without `hn_modulefix.ship()`, green with it.
- the container side: `uv run hn-modulefix emulate ...::run_pipeline`, the pipeline object
  as the function's argument. Red without `.pipe(hn_modulefix.image_layer())` where /root
  is not on PYTHONPATH (`--pythonpath /pkg`: the function works in a scratch directory),
  green with it.

Each red run fails in Daft's UDF worker with the report's error; each green run gives what
the same command gives from scripts/, with the predictions made in a worker process.

Daft 0.6.14: HyperNodes 0.4.8 asks for daft>=0.6.11 but imports `daft.daft.PyNodeInfo`,
which daft 0.7.0 removed; 0.6.14 is the newest 0.6 release, so the newest Daft it runs on.
"""

from __future__ import annotations

import subprocess
import json
import re
import shutil
from pathlib import Path

import pytest

from _support import REPO
from _uv import uv
from test_modal import emulated_result

pytestmark = pytest.mark.slow

SCRIPT = "scripts/test_modal_failure_repro.py"
IMPORT = "import hn_modulefix\n"
SHIP = "hn_modulefix.ship()  # local side: Daft's workers on this machine get this script\n"
LAYER = "    .pipe(hn_modulefix.image_layer())  # container side: every process in it gets this script\n"
# What `modal run SCRIPT` does on this machine before any server is contacted, then what it
# does with the local entrypoint once the app runs (modal/cli/run.py calls its raw function).
LOCAL_SIDE = """\
import sys
from modal.cli.import_refs import import_file_or_module, parse_import_ref
module = import_file_or_module(parse_import_ref(sys.argv[1], command="modal run"), base_cmd="modal run")
module.main.info.raw_f()
"""
EMULATE = ["hn-modulefix", "emulate", "--args-from", "pipeline_args", "--pythonpath", "/pkg"]
REPORTED = re.compile(r"OtherString\(\"ModuleNotFoundError: No module named \\*'test_modal_failure_repro\\*'\"\)")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A copy of the example whose hn_modulefix comes from this checkout's wheel, synced by uv."""
    project = tmp_path_factory.mktemp("report") / "original_report"
    shutil.copytree(REPO / "examples" / "original_report", project,
                    ignore=shutil.ignore_patterns(".venv", "uv.lock", "__pycache__"))
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    source = 'hn_modulefix = { path = "../..", editable = false }\n'
    assert source in text
    pyproject.write_text(text.replace(source, 'hn_modulefix = { path = "%s" }\n' % wheel))
    done = uv(["sync", "-q"], cwd=project)
    assert done.returncode == 0, done.stderr
    assert (project / ".venv" / "pyvenv.cfg").is_file()  # uv's layout: the venv inside the project
    return project


def script_without(project: Path, *lines: str) -> None:
    """The example's script with `lines` taken out (each must be there)."""
    text = (REPO / "examples" / "original_report" / SCRIPT).read_text()
    for line in lines:
        assert text.count(line) == 1, line
        text = text.replace(line, "")
    (project / SCRIPT).write_text(text)


def local_side(cwd: Path, script: str) -> "subprocess.CompletedProcess[str]":
    return uv(["run", "-q", "python", "-c", LOCAL_SIDE, script], cwd=cwd)


def assert_reported_error(result: "subprocess.CompletedProcess[str]") -> None:
    assert result.returncode != 0, result.stdout
    assert REPORTED.search(result.stderr), result.stderr[-3000:]
    assert 'daft/execution/udf_worker.py", line 54, in udf_event_loop' in result.stderr  # in Daft's UDF worker


def made_in_a_worker(facts: dict) -> dict:
    """`facts` without pids, once each prediction is checked to come from another process."""
    pids = {p.pop("made_in_pid") for p in facts["predictions"]}
    assert pids and facts.pop("ran_in_pid") not in pids, facts
    assert len(facts["predictions"]) == 3, facts
    return facts


def test_local_side_of_modal_run_from_the_project_root(project: Path) -> None:
    script_without(project, SHIP)
    assert_reported_error(local_side(project, SCRIPT))
    from_scripts = local_side(project / "scripts", "test_modal_failure_repro.py")  # the report's workaround
    assert from_scripts.returncode == 0, from_scripts.stderr[-3000:]

    script_without(project)
    green = local_side(project, SCRIPT)
    assert green.returncode == 0, green.stderr[-3000:]
    facts = made_in_a_worker(json.loads(green.stdout.splitlines()[-1]))
    assert facts == made_in_a_worker(json.loads(from_scripts.stdout.splitlines()[-1]))


def emulated(result: "subprocess.CompletedProcess[str]") -> dict:
    return made_in_a_worker(emulated_result(result))


def test_container_side_of_modal_run_from_the_project_root(project: Path) -> None:
    # The report's script: no hn_modulefix at all (its image could not import it).
    script_without(project, IMPORT, SHIP, LAYER)
    assert_reported_error(uv(["run", "-q", *EMULATE, SCRIPT + "::run_pipeline"], cwd=project))

    script_without(project)
    green = emulated(uv(["run", "-q", *EMULATE, SCRIPT + "::run_pipeline"], cwd=project))
    assert green == emulated(uv(["run", "-q", *EMULATE, "test_modal_failure_repro.py::run_pipeline"],
                                cwd=project / "scripts"))
