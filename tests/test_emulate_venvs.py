"""`emulate` hides the script's directory from the container, never the interpreter's own
files, wherever they lie: a project's `.venv` (uv's layout) or a symlink there to a venv
elsewhere, a venv that is the script's directory, a whole Python installation (conda-like prefix) inside the project. Each
interpreter holds its packages itself (uv-installed from the registry through uv's cache:
modal and hn_modulefix's wheel), as a user's does."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest

from _support import run
from _uv import uv, uv_venv
from test_modal import emulated_result

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                 reason="hiding the source tree needs root (a tmpfs in a private mount namespace)")]

APP = '''\
import os
import sys

import modal

app = modal.App("venvs", image=modal.Image.debian_slim())


def here():
    return (os.path.dirname(os.path.abspath(__file__)),)


@app.function()
def facts(directory):
    return {"listing": sorted(os.listdir(directory)), "module": __file__, "prefix": sys.prefix}
'''
MODAL = "modal==1.6.4"  # the version the stand-in server was checked against (the test extra's)


def uv_project_venv(project: Path, wheel: Path) -> Path:
    """`uv venv` makes `.venv` inside the project."""
    return uv_venv(project / ".venv", [str(wheel), MODAL])


def venv_linked_into_the_project(project: Path, wheel: Path) -> Path:
    """`.venv` a symlink to a venv kept elsewhere (a shared or cached environment)."""
    elsewhere = project.parent / "venvs" / "shared"
    uv_venv(elsewhere, [str(wheel), MODAL])
    project.mkdir()
    (project / ".venv").symlink_to(elsewhere)
    return project / ".venv" / "bin" / "python"


def venv_is_the_project(project: Path, wheel: Path) -> Path:
    """`python -m venv project`, the script saved in it: the venv is the script's directory."""
    done = run([sys.executable, "-m", "venv", "--without-pip", str(project)])
    assert done.returncode == 0, done.stderr
    done = uv(["pip", "install", "-q", "--python", str(project / "bin" / "python"), str(wheel), MODAL], cwd=project)
    assert done.returncode == 0, done.stderr
    return project / "bin" / "python"


def conda_like_prefix(project: Path, wheel: Path) -> Path:
    """A whole Python installation at project/env (`conda create -p ./env`): no pyvenv.cfg,
    its own prefix found from its executable (a copy of this Python's), its standard library
    an entry per file, packages installed into it with `--system`."""
    version = "python%d.%d" % sys.version_info[:2]
    env = project / "env"
    (env / "bin").mkdir(parents=True)
    executable = env / "bin" / version
    shutil.copy2(os.path.realpath(getattr(sys, "_base_executable", sys.executable)), executable)
    stdlib = Path(sysconfig.get_path("stdlib"))
    lib = env / "lib" / version
    (lib / "site-packages").mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name != "site-packages":
            (lib / entry.name).symlink_to(entry)
    if sys.platlibdir != "lib":
        (env / sys.platlibdir).symlink_to("lib")
    done = uv(["pip", "install", "-q", "--python", str(executable), "--system", "--break-system-packages",
               str(wheel), MODAL], cwd=project)
    assert done.returncode == 0, done.stderr
    prefix = run([str(executable), "-c", "import sys; print(sys.prefix == sys.base_prefix, sys.prefix)"])
    assert prefix.stdout.split() == ["True", str(env)], prefix  # not a venv: an installation
    return executable


@pytest.mark.parametrize("layout, kept", [
    (uv_project_venv, [".venv"]),
    (venv_linked_into_the_project, [".venv"]),
    (venv_is_the_project, ["bin", "lib", "lib64", "pyvenv.cfg"]),
    (conda_like_prefix, ["env"]),
])
def test_emulate_hides_the_source_but_not_the_interpreter(tmp_path: Path, wheel: Path, layout, kept: list) -> None:
    project = tmp_path / "proj"
    python = layout(project, wheel)
    (project / "app.py").write_text(APP)
    (project / "data.txt").write_text("the user's data\n")
    facts = emulated_result(run([str(python), "-m", "hn_modulefix", "emulate", "app.py::facts", "--args-from", "here"],
                                cwd=project))
    # The script's directory shows the interpreter's files and nothing of the user's.
    assert facts["listing"] == kept
    assert facts["module"] == "/root/app.py" or facts["module"].endswith("/fs/root/app.py"), facts


def test_emulate_says_so_when_the_script_lies_where_the_interpreter_needs_everything(
        tmp_path: Path, wheel: Path) -> None:
    python = uv_project_venv(tmp_path, wheel)
    (tmp_path / ".venv" / "bin" / "app.py").write_text(APP)
    result = run([str(python), "-m", "hn_modulefix", "emulate", ".venv/bin/app.py::facts"], cwd=tmp_path)
    bin_dir = os.path.realpath(tmp_path / ".venv" / "bin")
    assert (result.returncode, result.stderr) == (2, (
        "hn-modulefix emulate: error: cannot hide %s, the script's directory, from the container: this interpreter "
        "needs all of %s; move the script out of it\n" % (bin_dir, bin_dir))), result.stderr
