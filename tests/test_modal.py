"""Modal: the layer the real `modal` package plans (read offline), and red/green runs of
real Daft worker-process UDFs through Modal's own container entrypoint
(`python -m modal._container_entrypoint`, fed by hn_modulefix._modal_server over a unix
socket: nothing leaves this machine).

Modal keeps an Image's planned layers only in private attributes, and its container
protocol is internal: both are pinned to the modal client versions in
hn_modulefix._modal.SUPPORTED_MODAL_VERSIONS and _modal_server.CHECKED_MODAL_VERSIONS (1.6.x).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import modal
import pytest

from _support import REPO, clean_env, run
from hn_modulefix._modal import SUPPORTED_MODAL_VERSIONS, image_layers
from hn_modulefix._modal_server import CHECKED_MODAL_VERSIONS

LAYER = '.pipe(hn_modulefix.image_layer())'
SCRIPT = '''\
import dataclasses
import os
import sys

import daft
import modal
{hn_import}
{helper_import}

image = modal.Image.debian_slim(python_version="3.11").pip_install("daft"){workdir}{layer}{mount}
app = modal.App("scenario", image=image)


@dataclasses.dataclass(frozen=True)
class Query:
    text: str


ROW = daft.DataType.struct({{"text": daft.DataType.string(), "pid": daft.DataType.int64(),
                            "module_file": daft.DataType.string()}})


@daft.cls(use_process=True)
class Scorer:
    """Its Arrow return type makes Daft run it in `daft.execution.udf_worker`."""

    def __init__(self, queries, factor) -> None:
        self.queries = queries  # unpickled in the worker: needs this module there
        self.factor = factor

    @daft.method(return_dtype=ROW)
    def __call__(self, text: str):
        return {{"text": text * int(self.factor), "pid": os.getpid(),
                 "module_file": sys.modules[type(self).__module__].__file__}}


def run_pipeline(queries, factor):
    print("scoring %d queries in pid %d" % (len(queries), os.getpid()), flush=True)
    print("a line on stderr", file=sys.stderr, flush=True)
    df = daft.from_pydict({{"text": [q.text for q in queries]}})
    rows = df.with_column("scored", Scorer(queries, factor)(daft.col("text"))).to_pydict()["scored"]
    return {{"texts": [row["text"] for row in rows], "udf_pids": sorted({{row["pid"] for row in rows}}),
             "udf_module_files": sorted({{row["module_file"] for row in rows}}),
             "runner_pid": os.getpid(), "entry_file": sys.modules[Query.__module__].__file__,
             "finder": any(getattr(f, "_hn_modulefix_finder", False) for f in sys.meta_path),
             "modal_sitecustomize_ran": "/__modal/deps" in sys.path, "cwd": os.getcwd()}}


def make_args():
    return ([Query("a"), Query("bc")],)


@app.function()
def score(queries):
{score_body}


@app.function(serialized=True)
def score_serialized(queries):
    return run_pipeline(queries, FACTOR)


@app.cls(serialized=True)
class Service:
    @modal.method()
    def score(self, queries):
        return run_pipeline(queries, FACTOR)


@app.cls()
class Weighted:
    factor: int = modal.parameter(default=2)

    @modal.method()
    def score(self, queries):
        return run_pipeline(queries, self.factor)
'''
WEIGHTS = "import dataclasses\n\nFACTOR = 3\n\n\n@dataclasses.dataclass(frozen=True)\nclass Weight:\n    factor: int\n\n" \
    "    def __int__(self) -> int:\n        return self.factor\n"
# The helper mounted where only a run-time sys.path entry finds it: Modal's runner imports
# it, Daft's worker (which gets the environment, not the runner's sys.path) cannot.
RUNTIME_HELPER = '''\
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
    from weights import Weight

    return run_pipeline(queries, Weight(3))'''


def write_project(tmp_path: Path, *, layer: bool, helper: str = "", workdir: str = "", package: bool = False) -> Path:
    """helper: "" (none: FACTOR = 2), "import" (module-level import of a sibling module
    Modal does not mount) or "runtime" (mounted at /root/lib, imported after a sys.path change)."""
    project = tmp_path / ("with" if layer else "without")
    scripts = project / "scripts"
    scripts.mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'scoring'\n")  # the root image_layer() finds
    if package:
        (scripts / "__init__.py").write_text("")
    helper_import = {"": "FACTOR = 2", "runtime": "FACTOR = 2",
                     "import": "from scripts.weights import FACTOR" if package else "from weights import FACTOR"}[helper]
    (scripts / "pipeline.py").write_text(SCRIPT.format(
        helper_import=helper_import, layer=LAYER if layer else "", hn_import="import hn_modulefix" if layer else "",
        workdir='.workdir("%s")' % workdir if workdir else "",
        mount='.add_local_file("scripts/weights.py", "/root/lib/weights.py")' if helper == "runtime" else "",
        score_body=RUNTIME_HELPER if helper == "runtime" else "    return run_pipeline(queries, FACTOR)"))
    if helper:
        (scripts / "weights.py").write_text(WEIGHTS)
    return project


def emulate(project: Path, *args: str, python: Path = Path(sys.executable)) -> "subprocess.CompletedProcess[str]":
    return run([str(python), "-m", "hn_modulefix", "emulate", *args], cwd=project, timeout=600)


def test_modal_client_version_is_one_the_offline_reading_and_the_stand_in_server_support() -> None:
    assert modal.__version__.startswith(SUPPORTED_MODAL_VERSIONS)
    assert modal.__version__.startswith(CHECKED_MODAL_VERSIONS)


def test_image_layers_read_the_newest_builder_version_unless_told() -> None:
    image = modal.Image.debian_slim(python_version="3.11").env({"A": "1"})
    newest, older = image_layers(image, "2026.10"), image_layers(image, "2025.06")
    assert [(layer.kind, layer.commands, layer.files) for layer in image_layers(image)] == \
        [(layer.kind, layer.commands, layer.files) for layer in newest]  # modal 1.6.4's newest: 2026.10
    assert (newest[0].commands[0], older[0].commands[0]) == ("FROM python:3.11-slim-trixie",
                                                             "FROM python:3.11.12-slim-bookworm")
    assert newest[1].commands == older[1].commands == ["FROM base", "ENV A=1"]


# The builder version changes the base image; hn_modulefix's layers are the same in each.
@pytest.mark.parametrize("copy, builder_version, base", [
    (False, None, "FROM python:3.11-slim-trixie"),
    (True, None, "FROM python:3.11-slim-trixie"),
    (False, "2025.06", "FROM python:3.11.12-slim-bookworm"),
])
def test_layer_plans_package_install_env_and_bundle(tmp_path: Path, hook_python: Path, copy: bool,
                                                    builder_version: str | None, base: str) -> None:
    # hook_python: hn_modulefix installed from the wheel, so the layer copies what a user has.
    project = write_project(tmp_path, layer=True, helper="import")
    code = ("import sys, modal, hn_modulefix\nsys.path.insert(0, 'scripts')\n"
            "from hn_modulefix._modal import image_layers\n"
            "image = modal.Image.debian_slim(python_version='3.11').pipe(hn_modulefix.image_layer("
            "script='scripts/pipeline.py', copy=%r))\n"
            "image = image.run_commands('echo after') if %r else image\nkind = None\n"
            "for layer in image_layers(image, %r):\n"
            "    print(layer.kind, layer.commands, sorted(r for _, r in layer.files))\n"
            "    manifests = [local for local, remote in layer.files if remote.endswith('/bundle/manifest.json')]\n"
            "    kind = __import__('json').load(open(manifests[0])).get('snapshot') if manifests else kind\n"
            "print('snapshot:', kind)\n" % (copy, copy, builder_version))
    result = run([str(hook_python), "-c", code], cwd=project)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # A snapshot of what this process read: the container runs it whatever lies at the original paths.
    assert lines.pop() == "snapshot: True"
    assert lines[0].startswith("build [%r" % base)
    assert lines[1].startswith("build ['FROM base', 'COPY . /'] [") and "'/hn_modulefix/lib/_hn_modulefix_boot.py'" \
        in lines[1] and "'/hn_modulefix/lib/hn_modulefix/_finder.py'" in lines[1] \
        and "'/hn_modulefix/lib/hn_modulefix.pth'" in lines[1] and "'/hn_modulefix/lib/hn_modulefix.start'" not in lines[1]
    assert lines[2] == ("build ['FROM base', 'RUN PYTHONPATH=/hn_modulefix/lib python -m hn_modulefix install-hook'] []")
    assert lines[3] == "build ['FROM base', 'ENV HN_MODULEFIX_MANIFEST=/hn_modulefix/bundle/manifest.json'] []"
    bundle_files = ("['/hn_modulefix/bundle/index.txt', '/hn_modulefix/bundle/manifest.json', "
                    "'/hn_modulefix/bundle/modules/scripts/pipeline.py', "
                    "'/hn_modulefix/bundle/modules/scripts/weights.py', '/hn_modulefix/bundle/names.txt']")
    if copy:
        assert lines[4] == "build ['FROM base', 'COPY . /'] " + bundle_files
        assert lines[5] == "build ['FROM base', 'RUN echo after'] []"
    else:
        assert lines[4:] == ["mount [] " + bundle_files]  # a mount, and last: Modal allows no build step after it


def test_layer_does_nothing_where_the_script_is_imported_again(tmp_path: Path) -> None:
    project = write_project(tmp_path, layer=True)
    code = ("import sys, tempfile\nsys.path.insert(0, 'scripts')\n"
            "def no_files(*a, **k): raise AssertionError('file work in the container')\n"
            "tempfile.mkdtemp = no_files\n"
            "import pipeline\nfrom hn_modulefix._modal import image_layers\n"
            "print(len(image_layers(pipeline.image)))\n")
    inside = run([sys.executable, "-c", code], cwd=project, env=clean_env(MODAL_IS_REMOTE="1"))
    assert (inside.returncode, inside.stdout) == (0, "2\n"), inside.stderr  # debian_slim + pip_install only
    outside = run([sys.executable, "-c", code], cwd=project)
    assert outside.returncode == 1 and "AssertionError: file work in the container" in outside.stderr


def test_layer_does_nothing_when_rebuilt_from_the_bundle(tmp_path: Path) -> None:
    project = write_project(tmp_path, layer=True)
    made = run([sys.executable, "-m", "hn_modulefix", "bundle", "scripts/pipeline.py", "-o", str(tmp_path / "b")],
               cwd=project)
    manifest = made.stdout.splitlines()[-1]
    code = ("import tempfile\n"
            "def no_files(*a, **k): raise AssertionError('file work in a worker')\n"
            "tempfile.mkdtemp = no_files\n"
            "import pipeline\nfrom hn_modulefix._modal import image_layers\n"
            "print(type(pipeline.__spec__.loader).__name__, len(image_layers(pipeline.image)))\n")
    result = run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(HN_MODULEFIX_MANIFEST=manifest))
    assert (result.returncode, result.stdout) == (0, "ShippedLoader 2\n"), result.stderr


def emulated_result(result: "subprocess.CompletedProcess[str]") -> dict:
    """The function's return value, from `emulate`'s last line."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    last = result.stdout.splitlines()[-1]
    assert last.startswith("result: "), result.stdout
    return ast.literal_eval(last[len("result: "):])


def calls(result: "subprocess.CompletedProcess[str]") -> list:
    """The stand-in server's calls (`--calls`), each periodic heartbeat left out."""
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("calls: ")]
    return [call for call in line.split()[1:] if call != "ContainerHeartbeat"]


def assert_worked_in_a_worker(facts: dict, factor: int) -> None:
    assert facts["texts"] == ["a" * factor, "bc" * factor]
    assert facts["udf_pids"] and facts["runner_pid"] not in facts["udf_pids"], facts  # a real Daft worker
    assert facts["finder"] is True and facts["modal_sitecustomize_ran"] is True


# Where a red run fails: "import" = Modal's runner, before any input (it sends TaskResult);
# "worker" = Daft's UDF worker, while the function runs (the runner sends the failure as the
# input's output).
IMPORT_FAILED = ["ContainerHello", "TaskResult"]
FUNCTION_FAILED = ["ContainerHello", "FunctionGetInputs", "FunctionPutOutputs"]


@pytest.mark.parametrize("case, project_kwargs, emulate_args, missing, where", [
    ("helper module not mounted (FILE mode mounts only the script)", {"helper": "import"},
     ["scripts/pipeline.py::score"], "weights", "import"),
    ("helper found only through the runner's run-time sys.path entry", {"helper": "runtime"},
     ["scripts/pipeline.py::score"], "weights", "worker"),
    ("workdir elsewhere, /root not on PYTHONPATH", {"workdir": "/data"},
     ["scripts/pipeline.py::score", "--pythonpath", "/pkg"], "pipeline", "import"),
    ("serialized=True function: nothing mounted, unpickled before any import", {},
     ["scripts/pipeline.py::score_serialized"], "pipeline", "import"),
    ("@app.cls(serialized=True): class state unpickled before any import", {},
     ["scripts/pipeline.py::Service.score"], "pipeline", "import"),
])
def test_emulated_container_fails_without_the_layer_and_works_with_it(
        tmp_path: Path, case: str, project_kwargs: dict, emulate_args: list, missing: str, where: str) -> None:
    args = [*emulate_args, "--args-from", "make_args", "--calls"]
    red = emulate(write_project(tmp_path, layer=False, **project_kwargs), *args)
    assert red.returncode == 1, red.stdout + red.stderr[-3000:]
    # The error as Modal's client raises it: the last line on stderr.
    error = red.stderr.splitlines()[-1]
    if where == "import":
        assert error in ("ModuleNotFoundError: No module named '%s'" % missing,
                         # Modal's wording when unpickling the function or class fails:
                         "modal.exception.DeserializationError: Deserialization failed because the '%s' module is "
                         "not available in the remote environment." % missing), red.stderr[-3000:]
        assert calls(red) == IMPORT_FAILED
    else:
        # Daft's worker died unpickling the UDF, after the runner had imported the helper.
        assert error.startswith("RuntimeError: UDF process closed the connection unexpectedly"), red.stderr[-3000:]
        assert re.search(r"OtherString\(\"ModuleNotFoundError: No module named \\*'%s\\*'\"\)" % missing, error), error
        assert "daft/execution/udf_worker.py\", line 54, in udf_event_loop" in red.stderr
        assert calls(red) == FUNCTION_FAILED

    green = emulate(write_project(tmp_path, layer=True, **project_kwargs), *args)
    facts = emulated_result(green)
    assert calls(green) == ["ContainerHello", "FunctionGetInputs", "FunctionPutOutputs"]
    assert_worked_in_a_worker(facts, 3 if project_kwargs.get("helper") else 2)
    if "workdir" in project_kwargs:
        assert facts["cwd"].endswith("/fs/data")


def test_app_cls_parameters_reach_the_class_as_modal_sends_them(tmp_path: Path) -> None:
    # modal 1.6 sends modal.parameter() values as protobuf (never pickled): nothing for the
    # layer to fix, but the emulated class must get them.
    project = write_project(tmp_path, layer=True)
    facts = emulated_result(emulate(project, "scripts/pipeline.py::Weighted.score", "--param", "factor=4",
                                    "--args-from", "make_args"))
    assert_worked_in_a_worker(facts, 4)


def test_emulated_function_output_is_streamed_before_the_result(tmp_path: Path) -> None:
    result = emulate(write_project(tmp_path, layer=True), "scripts/pipeline.py::score", "--args-from", "make_args")
    facts = emulated_result(result)
    assert "scoring 2 queries in pid %d\n" % facts["runner_pid"] in result.stdout
    assert result.stdout.index("scoring 2 queries") < result.stdout.index("result: ")
    assert "a line on stderr\n" in result.stderr


def test_entry_module_keeps_its_mounted_file_in_the_emulated_container(tmp_path: Path) -> None:
    # Modal mounts a FILE-mode script at /root/<stem>.py; with the layer the runner and the
    # worker must still import that file, not the bundle's copy (rebased under --root here).
    root = tmp_path / "container"
    facts = emulated_result(emulate(write_project(tmp_path, layer=True), "scripts/pipeline.py::score",
                                    "--args-from", "make_args", "--root", str(root)))
    mounted = str(root / "fs" / "root" / "pipeline.py")
    assert facts["entry_file"] == mounted
    assert facts["udf_module_files"] == [mounted]


def test_package_mode_names_the_module_scripts_pipeline(tmp_path: Path) -> None:
    project = write_project(tmp_path, layer=True, helper="import", package=True)
    facts = emulated_result(emulate(project, "-m", "scripts.pipeline::score", "--args-from", "make_args"))
    assert_worked_in_a_worker(facts, 3)
    assert facts["entry_file"].endswith("/fs/root/scripts/pipeline.py")


def test_emulated_image_interpreter_gets_hn_modulefix_only_from_the_layer(tmp_path: Path) -> None:
    # A layer that ships no package: its install step must fail as it would in Modal's build,
    # even though the interpreter running `emulate` has hn_modulefix.
    project = write_project(tmp_path, layer=True)
    script = project / "scripts" / "pipeline.py"
    script.write_text(script.read_text().replace(
        "import hn_modulefix\n",
        "import hn_modulefix\nimport hn_modulefix._modal\nhn_modulefix._modal.stage = os.makedirs  # ships nothing\n"))
    result = emulate(project, "scripts/pipeline.py::score", "--args-from", "make_args")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "image build step failed (exit 1): RUN PYTHONPATH=/hn_modulefix/lib python -m hn_modulefix install-hook" \
        in result.stderr and "No module named hn_modulefix" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="hiding the source tree needs root (a tmpfs in a private mount namespace)")
def test_emulated_container_cannot_see_the_source_tree(tmp_path: Path) -> None:
    project = write_project(tmp_path, layer=True)
    script = project / "scripts" / "pipeline.py"
    script.write_text(script.read_text() + (
        "\n\ndef source_dir():\n    return (os.path.dirname(os.path.abspath(__file__)),)\n\n\n"
        "@app.function()\ndef listing(path):\n    return sorted(os.listdir(path))\n"))
    result = emulate(project, "scripts/pipeline.py::listing", "--args-from", "source_dir")
    assert emulated_result(result) == []  # an empty tmpfs where scripts/ is on this machine


def test_emulated_exception_is_reported_as_modal_reports_it(tmp_path: Path) -> None:
    project = write_project(tmp_path, layer=False)
    script = project / "scripts" / "pipeline.py"
    script.write_text(script.read_text() + "\n\n@app.function()\ndef fail(x):\n    raise ValueError('bad %r' % (x,))\n")
    result = emulate(project, "scripts/pipeline.py::fail", "--args-from", "make_args")
    assert result.returncode == 1
    remote = result.stderr[result.stderr.rindex("Traceback (most recent call last):"):].splitlines()
    assert remote[-1] == "ValueError: bad [Query(text='a'), Query(text='bc')]"
    assert "/fs/root/pipeline.py\", line" in remote[-2] and ", in fail" in remote[-2]
    assert "_emulate.py" not in "\n".join(remote) and "asyncio" not in "\n".join(remote)  # the container's frames only


@pytest.mark.parametrize("ref, message", [
    ("scripts/pipeline.py::make_args",
     "scripts/pipeline.py::make_args: 'make_args' is not a Modal function: decorate it with @app.function() "
     "(app = modal.App(...)), or its class with @app.cls()"),
    ("scripts/pipeline.py", "'scripts/pipeline.py': name the function: scripts/pipeline.py::FUNCTION "
                            "(or SCRIPT::CLASS.METHOD)"),
    ("scripts/pipeline.py::nothing",
     "scripts/pipeline.py::nothing: no function 'nothing' there (its Modal functions and classes: Service, "
     "Weighted, score, score_serialized)"),
    ("scripts/pipeline.py::Weighted.score --param weight=3",
     "--param weight=3: expected NAME=VALUE with NAME one of factor"),
    ("scripts/missing.py::score", "scripts/missing.py: no such script"),
    ("scripts/pipeline.py::Service.nothing",
     "scripts/pipeline.py::Service.nothing: name a method of class Service: scripts/pipeline.py::Service.METHOD "
     "(its methods: score)"),
])
def test_emulate_usage_errors_are_one_line(tmp_path: Path, ref: str, message: str) -> None:
    project = write_project(tmp_path, layer=False)
    result = emulate(project, *ref.split())
    assert (result.returncode, result.stdout, result.stderr) == (2, "", "hn-modulefix emulate: error: %s\n" % message)
    debug = run([sys.executable, "-m", "hn_modulefix", "emulate", *ref.split()], cwd=project,
                env=clean_env(HN_MODULEFIX_DEBUG="1"))
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.endswith("hn-modulefix emulate: error: %s\n" % message)


def test_example_modal_daft_pipeline_red_and_green(tmp_path: Path, hook_python: Path) -> None:
    # Run from the wheel-installed hn_modulefix: the layer ships what a user's install has.
    shutil.copy(REPO / "examples" / "modal_daft_pipeline.py", tmp_path)
    shutil.copy(REPO / "examples" / "retrieval_utils.py", tmp_path)
    args = ["modal_daft_pipeline.py::retrieve", "--args-from", "example_queries"]
    green = emulate(tmp_path, *args, python=hook_python)
    predictions = emulated_result(green)
    assert [(p["query"], p["doc_id"]) for p in predictions] == [
        ("what runs python in containers", "modal"), ("dataframe udf", "daft"), ("pickles classes by reference", "pickle")]
    runner_pid = int(re.search(r"retrieving in pid (\d+)", green.stdout).group(1))  # type: ignore[union-attr]
    assert {p["worker_pid"] for p in predictions} and runner_pid not in {p["worker_pid"] for p in predictions}
    script = tmp_path / "modal_daft_pipeline.py"
    # The script as it was before the one-line change (and its import).
    script.write_text(script.read_text().replace("    .pipe(hn_modulefix.image_layer())\n", "")
                      .replace("import hn_modulefix\n", ""))
    red = emulate(tmp_path, *args, python=hook_python)
    assert red.returncode == 1 and red.stderr.splitlines()[-1] == "ModuleNotFoundError: No module named 'retrieval_utils'"


def test_emulate_refuses_modal_versions_the_stand_in_was_not_checked_against(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from hn_modulefix._emulate import EmulateUsageError, emulate as emulate_in_process

    monkeypatch.setattr(modal, "__version__", "1.7.0")
    with pytest.raises(EmulateUsageError, match=r"^the stand-in Modal server speaks the container protocol of "
                                                r"modal 1\.6\.x, not 1\.7\.0$"):
        emulate_in_process(str(tmp_path / "pipeline.py::score"))


def test_stand_in_server_answers_only_the_container_calls(tmp_path: Path) -> None:
    # Modal's own client stub against the server: a call outside the container's protocol
    # is UNIMPLEMENTED (and recorded), never silently answered.
    import asyncio

    import grpclib
    import grpclib.client
    from google.protobuf import empty_pb2
    from modal_proto import api_grpc, api_pb2

    from hn_modulefix._modal_server import StandInServer

    async def talk(path: str) -> tuple[object, object]:
        channel = grpclib.client.Channel(path=path)
        try:
            stub = api_grpc.ModalClientStub(channel)
            await stub.ContainerHello(empty_pb2.Empty())
            first = await stub.FunctionGetInputs(api_pb2.FunctionGetInputsRequest(function_id="fu-1"))
            with pytest.raises(grpclib.GRPCError) as refused:
                await stub.VolumeCommit(api_pb2.VolumeCommitRequest(volume_id="vo-1"))
            return first, refused.value
        finally:
            channel.close()

    server = StandInServer(str(tmp_path / "modal.sock"), api_pb2.FunctionInput(args=b"x"))
    with server:
        first, refused = asyncio.run(talk(server.path))
    (item,) = first.inputs  # type: ignore[attr-defined]
    assert (item.input.args, item.input.final_input) == (b"x", True)
    assert refused.status == grpclib.const.Status.UNIMPLEMENTED  # type: ignore[attr-defined]
    assert server.calls == ["ContainerHello", "FunctionGetInputs", "VolumeCommit"]
    assert server.unanswered == ["VolumeCommit"]


def test_stand_in_server_that_cannot_start_says_why_at_once(tmp_path: Path) -> None:
    import threading

    from modal_proto import api_pb2

    from hn_modulefix._modal_server import StandInServer

    server = StandInServer(str(tmp_path / "missing" / "modal.sock"), api_pb2.FunctionInput())
    raised: list = []

    def start() -> None:
        try:
            server.start()
        except OSError as exc:
            raised.append(exc)

    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    starter.join(timeout=30)
    assert not starter.is_alive(), "start() still waiting for a server that failed"
    assert len(raised) == 1 and isinstance(raised[0], FileNotFoundError), raised


def test_emulated_container_that_runs_too_long_is_stopped_with_its_workers(tmp_path: Path) -> None:
    project = write_project(tmp_path, layer=True)
    script = project / "scripts" / "pipeline.py"
    # The runner waits inside a Daft worker; both must be gone when emulate returns.
    script.write_text(script.read_text().replace(
        "    return {\"text\": text * int(self.factor),",
        "    if text == 'slow':\n            import time; time.sleep(300)\n        return {\"text\": text * int(self.factor),") +
        "\n\ndef slow_args():\n    return ([Query('slow')],)\n")
    root = tmp_path / "container"
    result = emulate(project, "scripts/pipeline.py::score", "--args-from", "slow_args", "--timeout", "20",
                     "--root", str(root))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == ("TimeoutError: the container ran longer than 20s: stopped it and every "
                                              "process it started")
    # The runner and the worker both run the image interpreter, under the container root.
    left = run(["pgrep", "-a", "-f", str(root / "image" / "bin" / "python")])
    assert left.stdout == "", left.stdout
