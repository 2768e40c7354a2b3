"""Notebooks: `ship()` and `image_layer()` called with no script from a Jupyter kernel,
whose `__main__` has no file.  Real notebooks run headless through a real kernel
(ipykernel, executed by nbclient) of this test environment's interpreter; in-process
tests cover which imported modules count as the project's and under which names.

The project: `mylib.py` at its root (a `pyproject.toml` marks it), imported from a notebook
in `notebooks/` through `sys.path.insert(0, "..")`; `mylib` imports `textfmt` only inside a
function, so the kernel never imports it and only the import closure can ship it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import warnings
from pathlib import Path
from typing import Iterator

import pytest

from _support import REPO
from hn_modulefix import _bundle

MYLIB = '''\
import dataclasses


@dataclasses.dataclass(frozen=True)
class Tag:
    prefix: str

    def label(self, text: str) -> str:
        from textfmt import shout  # never imported by the kernel

        return shout(self.prefix + text)
'''
TEXTFMT = "def shout(text: str) -> str:\n    return text.upper() + '!'\n"
SETUP = '''\
import json, os, sys
sys.path.insert(0, "..")
import mylib
print(json.dumps({"executable": sys.executable, "cwd": os.getcwd(), "kernel": os.getpid()}))'''


def write_project(where: Path) -> Path:
    project = where / "proj"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'proj'\nversion = '0'\n")
    (project / "mylib.py").write_text(MYLIB)
    (project / "textfmt.py").write_text(TEXTFMT)
    return project


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A kernelspec of this interpreter in a private JUPYTER_PATH (so no kernel installed
    on the machine can stand in), and an environment without hn_modulefix settings."""
    home = tmp_path_factory.mktemp("jupyter")
    spec = home / "data" / "kernels" / "hn-modulefix-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "hn_modulefix tests", "language": "python",
        "env": {"XDG_CACHE_HOME": str(home / "cache"), "IPYTHONDIR": str(home / "ipython"),
                "DAFT_PROGRESS_BAR": "0"}}))
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("HN_MODULEFIX_")] + ["PYTHONPATH"]:
            patch.delenv(name, raising=False)
        patch.setenv("JUPYTER_PATH", str(home / "data"))
        patch.setenv("JUPYTER_RUNTIME_DIR", str(home / "runtime"))
        yield home


def run_notebook(directory: Path, cells: list[str]) -> list[str]:
    """Execute the cells in a fresh kernel whose working directory is `directory` (as
    Jupyter starts a notebook's kernel); return each cell's stdout.  A cell that raises
    fails the test with the kernel's traceback."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell) for cell in cells])
    NotebookClient(notebook, kernel_name="hn-modulefix-test", timeout=300,
                   resources={"metadata": {"path": str(directory)}}).execute()
    return ["".join(out.get("text", "") for out in cell.outputs if out.get("name") == "stdout")
            for cell in notebook.cells]


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


DAFT_UDF = '''\
import daft


@daft.cls(use_process=True)
class Labeller:
    """A string return type: Daft runs it in `daft.execution.udf_worker`."""

    def __init__(self, tag):
        self.tag = tag  # a mylib.Tag: pickled by reference, so the worker imports mylib

    @daft.method(return_dtype=daft.DataType.string())
    def __call__(self, text):
        return json.dumps({"pid": os.getpid(), "label": self.tag.label(text)})


def run():
    df = daft.from_pydict({"text": ["a", "b"]}).with_column("out", Labeller(mylib.Tag("x-"))(daft.col("text")))
    try:
        rows = [json.loads(row) for row in df.to_pydict()["out"]]
    except Exception as exc:
        print(json.dumps({"error": str(exc)}))
    else:
        print(json.dumps({"rows": rows}))'''


@pytest.mark.slow
def test_ship_in_a_notebook_makes_the_daft_worker_import_the_project_module(kernel_env: Path,
                                                                             tmp_path: Path) -> None:
    project = write_project(tmp_path)
    setup, _, red, shipped, green = run_notebook(project / "notebooks", [
        SETUP, DAFT_UDF, "run()", "import hn_modulefix\nprint(hn_modulefix.ship())", "run()"])
    kernel = last_json(setup)
    assert kernel["executable"] == sys.executable and kernel["cwd"] == str(project / "notebooks")
    # Before ship(): the worker (cwd notebooks/) cannot import the module the kernel took from "..".
    error = last_json(red)["error"]  # Daft quotes the worker's output, escaped
    assert re.search(r"ModuleNotFoundError: No module named \\*'mylib\\*'", error), error
    assert "daft/execution/udf_worker.py" in error, error

    from hn_modulefix._manifest import load

    manifest = load(shipped.strip())
    assert [(source.names, source.original) for source in manifest.sources] == [
        (("mylib",), str(project / "mylib.py")), (("textfmt",), str(project / "textfmt.py"))]
    rows = last_json(green)["rows"]
    assert [row["label"] for row in rows] == ["X-A!", "X-B!"]
    assert {row["pid"] for row in rows} and kernel["kernel"] not in {row["pid"] for row in rows}  # Daft's worker


MODAL_CELLS = [SETUP, '''\
import modal
import hn_modulefix
from modal._utils.async_utils import synchronizer
from hn_modulefix._modal import _closure

image = modal.Image.debian_slim(python_version="3.11")
layered = image.pipe(hn_modulefix.image_layer())
without_layer, with_layer = modal.App("without-layer", image=image), modal.App("with-layer", image=layered)


def label(text):
    return {"label": mylib.Tag("nb-").label(text), "mylib": mylib.__file__, "pid": os.getpid()}


red = without_layer.function()(label)
green = with_layer.function()(label)
print(_closure(synchronizer._translate_in(red)._load)["info"]._type.value)  # Modal's source type''', '''\
from hn_modulefix._manifest import load
from hn_modulefix._modal import image_layers

bundle = image_layers(layered)[-1]
local = {remote: local for local, remote in bundle.files}
print(json.dumps({"kind": bundle.kind, "files": sorted(local),
                  "names": {s.relpath: s.names for s in load(local["/hn_modulefix/bundle/manifest.json"]).sources}}))''',
    '''\
for function in (red, green):
    result = hn_modulefix.emulate(function, args=("a",))
    print(json.dumps({"value": result.value, "error": "%s: %s" % (type(result.error).__name__, result.error)}))''']


@pytest.fixture(scope="module")
def modal_notebook(kernel_env: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The notebook run once: a Modal function defined in it, on an image without and one
    with `image_layer()`, each called in the emulated container."""
    project = write_project(tmp_path_factory.mktemp("modal-notebook"))
    return project, run_notebook(project / "notebooks", MODAL_CELLS)


@pytest.mark.slow
def test_image_layer_from_a_kernel_ships_the_project_modules_it_imported(
        modal_notebook: tuple[Path, list[str]]) -> None:
    _, (_, source_type, layer, _) = modal_notebook
    assert source_type.strip() == "notebook"  # Modal serializes it: nothing of the project is mounted
    bundle = json.loads(layer)
    assert bundle["kind"] == "mount" and bundle["files"] == [
        "/hn_modulefix/bundle/index.txt", "/hn_modulefix/bundle/manifest.json", "/hn_modulefix/bundle/modules/mylib.py",
        "/hn_modulefix/bundle/modules/textfmt.py", "/hn_modulefix/bundle/names.txt"]
    assert bundle["names"] == {"modules/mylib.py": ["mylib"], "modules/textfmt.py": ["textfmt"]}


@pytest.mark.slow
def test_modal_function_defined_in_a_notebook_unpickles_in_the_container_with_the_layer(
        modal_notebook: tuple[Path, list[str]]) -> None:
    project, (setup, _, _, calls) = modal_notebook
    red, green = (json.loads(line) for line in calls.strip().splitlines()[-2:])
    assert red == {"value": None, "error": "DeserializationError: Deserialization failed because the 'mylib' "
                                           "module is not available in the remote environment."}
    assert green["error"] == "NoneType: None"
    value = green["value"]
    assert value["label"] == "NB-A!" and value["pid"] != last_json(setup)["kernel"]
    if os.geteuid() == 0 and shutil.which("unshare"):
        # The shipped copy: the emulated container cannot see the project.
        assert value["mylib"].endswith("/fs/hn_modulefix/bundle/modules/mylib.py"), value
    else:
        # The project left visible: the finder takes the driver's unchanged file.
        assert value["mylib"] == str(project / "mylib.py"), value


# In process: which modules of an interpreter count as the project's, and their names.

@pytest.mark.usefixtures("import_state")
def test_imported_local_modules_are_the_project_files_under_the_names_used(tmp_path: Path) -> None:
    project = write_project(tmp_path)
    package = project / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg.core import VALUE\n")
    (package / "extra.py").write_text("")
    # A module of the same name as one the interpreter imported, in another search root:
    # pkg's `import mylib` gets the imported mylib, as in the interpreter.
    (project / "src" / "mylib.py").write_text("")
    (package / "core.py").write_text("VALUE = 1\n\n\ndef later():\n    import mylib\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "outside.py").write_text("")
    # The project's own venv (uv makes .venv inside the project): installed, never shipped.
    venv_site = project / ".venv" / "lib" / "python3" / "site-packages"
    venv_site.mkdir(parents=True)
    (venv_site / "installed.py").write_text("")
    sys.path[:0] = [str(project / "notebooks" / ".."), str(project / "src"), str(elsewhere), str(venv_site)]
    import installed  # noqa: F401
    import mylib  # noqa: F401
    import outside  # noqa: F401
    import pkg  # noqa: F401

    sys.modules["mylib_alias"] = sys.modules["mylib"]  # an alias entry: its objects name "mylib"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = _bundle.imported_local_modules(project)
    assert [(m.name, m.path, m.package, m.search_root) for m in found] == [
        ("mylib", str(project / "mylib.py"), False, str(project)),
        ("pkg", str(package / "__init__.py"), True, str(project / "src")),
        ("pkg.core", str(package / "core.py"), False, str(project / "src"))]
    planned = {item.relpath: item.names for item in _bundle.plan(*found)}
    # Each under the name the interpreter used (never "src.pkg"); a package ships whole;
    # what a shipped module imports comes along (textfmt, which mylib imports in a function).
    assert planned == {"modules/mylib.py": ("mylib",), "modules/pkg/__init__.py": ("pkg",),
                       "modules/pkg/core.py": ("pkg.core",), "modules/pkg/extra.py": ("pkg.extra",),
                       "modules/textfmt.py": ("textfmt",)}


def test_hn_modulefix_itself_is_never_shipped_from_its_own_checkout() -> None:
    import hn_modulefix

    if not Path(hn_modulefix.__file__).resolve().is_relative_to(REPO):
        pytest.skip("hn_modulefix is not installed editable from this checkout")
    assert [m.name for m in _bundle.imported_local_modules(REPO) if "hn_modulefix" in m.name] == []


@pytest.mark.usefixtures("import_state")
def test_a_module_loaded_under_a_name_its_file_does_not_have_is_left_out_with_a_warning(tmp_path: Path) -> None:
    import importlib.util

    project = write_project(tmp_path)
    spec = importlib.util.spec_from_file_location("renamed", project / "mylib.py")
    assert spec is not None and spec.loader is not None
    sys.modules["renamed"] = module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.warns(UserWarning, match=r"module 'renamed' is not shipped: its file .*/proj/mylib\.py does not "
                                         r"lie where that name would be found"):
        assert _bundle.imported_local_modules(project) == []


def test_project_root_is_the_nearest_marked_ancestor_else_the_start(tmp_path: Path) -> None:
    project = write_project(tmp_path)
    deep = project / "notebooks" / "deeper"
    deep.mkdir()
    assert _bundle.project_root(deep) == str(project)
    (project / "notebooks" / ".git").mkdir()
    assert _bundle.project_root(deep) == str(project / "notebooks")
    bare = tmp_path / "bare"
    bare.mkdir()
    assert _bundle.project_root(bare) == str(bare)  # nothing marks a project up to /


def test_interactive_main_that_imported_nothing_of_the_project_is_told_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = write_project(tmp_path)
    monkeypatch.chdir(project / "notebooks")
    with pytest.raises(ValueError, match=r"^ship\(\): called from an interactive __main__ \(a notebook\?\) that has "
                                         r"imported no module of the project %s: import your modules before calling "
                                         r"it, or pass root= or the script$" % project):
        _bundle.calling_scripts({"__name__": "__main__"}, "ship()")
    with pytest.raises(ValueError, match=r"^ship\(\): the calling module 'made' has no file; pass the script"):
        _bundle.calling_scripts({"__name__": "made"}, "ship()")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _bundle.calling_scripts({"__name__": "__main__", "__file__": "x.py"}, "ship()") == ["x.py"]
