"""Modal: the layer the real `modal` package plans (read offline), and red/green runs of
real Daft process UDFs in the stand-in container (hn_modulefix._emulate).

Modal keeps an Image's planned layers only in private attributes; this reading is pinned
to the modal client versions in hn_modulefix._modal.SUPPORTED_MODAL_VERSIONS (1.6.x).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import modal
import pytest

from _support import REPO, clean_env, run
from hn_modulefix._modal import SUPPORTED_MODAL_VERSIONS, image_layers

LAYER = '.pipe(hn_modulefix.image_layer())'
SCRIPT = '''\
import dataclasses

import daft
import modal
{hn_import}
{helper_import}

image = modal.Image.debian_slim(python_version="3.11").pip_install("daft"){workdir}{layer}
app = modal.App("scenario", image=image)


@dataclasses.dataclass(frozen=True)
class Query:
    text: str


@daft.cls(use_process=True)
class Scorer:
    def __init__(self, factor) -> None:
        self.factor = factor

    @daft.method(return_dtype=daft.DataType.python())
    def __call__(self, text: str):
        return Query(text * {factor})


def score_queries(queries):
    df = daft.from_pydict({{"text": [q.text for q in queries]}})
    return df.with_column("scored", Scorer({factor})(daft.col("text"))).to_pydict()["scored"]


def make_args():
    return ([Query("a"), Query("bc")],)


@app.function()
def score(queries):
    return score_queries(queries)


@app.function(serialized=True)
def score_serialized(queries):
    return score_queries(queries)
'''
WEIGHTS = "import dataclasses\n\nFACTOR = 3\n\n\n@dataclasses.dataclass(frozen=True)\nclass Weight:\n    factor: int\n"


def write_project(tmp_path: Path, *, layer: bool, helper: bool = False, workdir: str = "",
                  package: bool = False) -> Path:
    project = tmp_path / ("with" if layer else "without")
    scripts = project / "scripts"
    scripts.mkdir(parents=True)
    if package:
        (scripts / "__init__.py").write_text("")
    helper_import = ("from scripts.weights import FACTOR, Weight" if package else "from weights import FACTOR, Weight") \
        if helper else ""
    (scripts / "pipeline.py").write_text(SCRIPT.format(
        helper_import=helper_import, layer=LAYER if layer else "", hn_import="import hn_modulefix" if layer else "", factor="FACTOR" if helper else "2",
        workdir='.workdir("%s")' % workdir if workdir else ""))
    if helper:
        (scripts / "weights.py").write_text(WEIGHTS)
    return project


def emulate(project: Path, *args: str, python: Path = Path(sys.executable)) -> "subprocess.CompletedProcess[str]":
    return run([str(python), "-m", "hn_modulefix", "emulate", *args], cwd=project, timeout=600)


def test_modal_client_version_is_one_the_offline_reading_supports() -> None:
    assert modal.__version__.startswith(SUPPORTED_MODAL_VERSIONS)


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
    project = write_project(tmp_path, layer=True, helper=True)
    code = ("import sys, modal, hn_modulefix\nsys.path.insert(0, 'scripts')\n"
            "from hn_modulefix._modal import image_layers\n"
            "image = modal.Image.debian_slim(python_version='3.11').pipe(hn_modulefix.image_layer("
            "script='scripts/pipeline.py', copy=%r))\n"
            "image = image.run_commands('echo after') if %r else image\n"
            "for layer in image_layers(image, %r):\n"
            "    print(layer.kind, layer.commands, sorted(r for _, r in layer.files))\n" % (copy, copy, builder_version))
    result = run([str(hook_python), "-c", code], cwd=project)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("build [%r" % base)
    assert lines[1].startswith("build ['FROM base', 'COPY . /'] [") and "'/hn_modulefix/lib/_hn_modulefix_boot.py'" \
        in lines[1] and "'/hn_modulefix/lib/hn_modulefix/_finder.py'" in lines[1] \
        and "'/hn_modulefix/lib/hn_modulefix.pth'" in lines[1] and "'/hn_modulefix/lib/hn_modulefix.start'" in lines[1]
    assert lines[2] == ("build ['FROM base', 'RUN PYTHONPATH=/hn_modulefix/lib python -m hn_modulefix install-hook'] []")
    assert lines[3] == "build ['FROM base', 'ENV HN_MODULEFIX_MANIFEST=/hn_modulefix/bundle/manifest.json'] []"
    bundle_files = ("['/hn_modulefix/bundle/manifest.json', '/hn_modulefix/bundle/modules/scripts/pipeline.py', "
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


MISSING = re.compile(r"No module named '(\w+)'")


@pytest.mark.parametrize("case, project_kwargs, emulate_args, missing", [
    ("helper module not mounted", {"helper": True}, ["scripts/pipeline.py::score", "--args-from", "make_args"],
     "weights"),
    ("workdir elsewhere, /root reachable only as the working directory", {"workdir": "/data"},
     ["scripts/pipeline.py::score", "--args-from", "make_args", "--pythonpath", "/pkg"], "pipeline"),
    ("client-pickled arguments unpickled before the import", {"helper": True},
     ["scripts/pipeline.py::score", "--args-from", "make_args", "--args-first"], "weights"),
    ("serialized=True: nothing mounted", {}, ["scripts/pipeline.py::score_serialized", "--args-from", "make_args"],
     "pipeline"),
])
def test_emulated_container_fails_without_the_layer_and_works_with_it(
        tmp_path: Path, case: str, project_kwargs: dict, emulate_args: list, missing: str) -> None:
    red = emulate(write_project(tmp_path, layer=False, **project_kwargs), *emulate_args)
    assert red.returncode == 1 and red.stdout.splitlines()[-1] == "failed: exit 1", red.stdout + red.stderr
    assert missing in MISSING.findall(red.stderr), red.stderr[-3000:]

    green = emulate(write_project(tmp_path, layer=True, **project_kwargs), *emulate_args)
    assert green.returncode == 0, green.stdout + green.stderr[-3000:]
    facts = dict(line.split(": ", 1) for line in green.stdout.splitlines() if ": " in line and not line.startswith("note"))
    assert facts["hn_modulefix_finder"] == "True" and facts["modal_sitecustomize_ran"] == "True"
    factor = 3 if project_kwargs.get("helper") else 2
    assert facts["result"] == "[Query(text=%r), Query(text=%r)]" % ("a" * factor, "bc" * factor)
    if "workdir" in project_kwargs:
        assert facts["cwd"].endswith("/fs/data")


def test_package_mode_names_the_module_scripts_pipeline(tmp_path: Path) -> None:
    project = write_project(tmp_path, layer=True, helper=True, package=True)
    result = emulate(project, "-m", "scripts.pipeline::score", "--args-from", "make_args")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "result: [Query(text='aaa'), Query(text='bcbcbc')]" in result.stdout


def test_example_modal_daft_pipeline_red_and_green(tmp_path: Path, hook_python: Path) -> None:
    # Run from the wheel-installed hn_modulefix: the layer ships what a user's install has.
    shutil.copy(REPO / "examples" / "modal_daft_pipeline.py", tmp_path)
    shutil.copy(REPO / "examples" / "retrieval_utils.py", tmp_path)
    args = ["modal_daft_pipeline.py::retrieve", "--args-from", "example_queries"]
    green = emulate(tmp_path, *args, python=hook_python)
    assert green.returncode == 0, green.stdout + green.stderr[-3000:]
    assert "result: [Prediction(query='what runs python in containers', doc_id='modal'" in green.stdout
    script = tmp_path / "modal_daft_pipeline.py"
    # The script as it was before the one-line change (and its import).
    script.write_text(script.read_text().replace("    .pipe(hn_modulefix.image_layer())\n", "")
                      .replace("import hn_modulefix\n", ""))
    red = emulate(tmp_path, *args, python=hook_python)
    assert red.returncode == 1 and "No module named 'retrieval_utils'" in red.stderr
