from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

import _pythons
from _pythons import Python
from _support import REPO, build_wheel, make_venv

HOST = "%d.%d" % sys.version_info[:2]
# The interpreters the `interpreter` fixture runs a test on: the host's and the chroots'.
VERSIONS = sorted(set(_pythons.PYTHONS) | {HOST}, key=lambda v: tuple(map(int, v.split("."))))
DAFT_VERSIONS = ["0.7.26", "0.6.14"]
# .ci/run sets it: there the tests on other interpreters must run, not skip.
REQUIRE_CHROOTS = os.environ.get("HN_MODULEFIX_REQUIRE_CHROOTS") == "1"


def _builds_needed(item: pytest.Item) -> set[str]:
    params: dict[str, Any] = item.callspec.params if hasattr(item, "callspec") else {}
    needed = set()
    if params.get("interpreter", HOST) != HOST:
        needed.add(_pythons.PYTHONS[params["interpreter"]])
    if "daft_chroot" in item.fixturenames:  # type: ignore[attr-defined]
        needed |= {"trixie", "daft-0.7.26@3.13"}
    if params.get("daft_python") == "0.6.14" or "daft06_python" in item.fixturenames:  # type: ignore[attr-defined]
        needed.add("daft-0.6.14")
    return needed


def pytest_collection_finish(session: pytest.Session) -> None:
    # Chroots and venvs take minutes to build the first time: build them while other tests run.
    if not session.config.option.collectonly:
        _pythons.start(sorted(set().union(*(_builds_needed(item) for item in session.items))))


def built(name: str) -> Any:
    try:
        return _pythons.get(name)
    except _pythons.Unavailable as exc:
        message = "cannot build %s here: %s" % (name, exc)
        if REQUIRE_CHROOTS:
            pytest.fail(message + " (HN_MODULEFIX_REQUIRE_CHROOTS=1: these tests must run)")
        pytest.skip(message)


@pytest.fixture
def import_state() -> Iterator[None]:
    """Save sys.meta_path, sys.path and the set of loaded modules; restore them in place
    (the import system holds references to these very objects: never rebind them)."""
    meta_path, path, modules = list(sys.meta_path), list(sys.path), set(sys.modules)
    importer_cache = dict(sys.path_importer_cache)
    try:
        yield
    finally:
        sys.meta_path[:] = meta_path
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            del sys.modules[name]
        sys.path_importer_cache.clear()
        sys.path_importer_cache.update(importer_cache)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def hook_python(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """The interpreter of a fresh venv where hn_modulefix was pip-installed from the
    wheel (so its .pth really runs), with this environment's daft & co importable."""
    return make_venv(tmp_path_factory.mktemp("venv") / "hooked", wheel=wheel, host_packages=True)


@pytest.fixture
def example_project(tmp_path: Path) -> Path:
    """A copy of examples/scripts as <tmp>/proj/scripts."""
    project = tmp_path / "proj"
    shutil.copytree(REPO / "examples" / "scripts", project / "scripts",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return project


@pytest.fixture(scope="session", params=VERSIONS)
def interpreter(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Python:
    """A venv of each Python (the host's, and 3.9, 3.13, 3.14, 3.15 from Debian chroots) with
    hn_modulefix pip-installed from the wheel."""
    version: str = request.param
    if version != HOST:
        built(_pythons.PYTHONS[version])
    return _pythons.venv_python(version, tmp_path_factory.mktemp("venv-" + version) / "hooked",
                                tmp_path_factory.getbasetemp(), wheel)


@pytest.fixture(scope="session")
def daft_chroot(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Python:
    """Python 3.13 (trixie) with daft 0.7.26 from the registry and hn_modulefix from the wheel."""
    site = built("daft-0.7.26@3.13")
    return _pythons.chroot_python("3.13", tmp_path_factory.mktemp("venv-daft-3.13") / "hooked",
                                  tmp_path_factory.getbasetemp(), wheel, site_packages=site)


@pytest.fixture(scope="session")
def daft06_python(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Python:
    """The host's Python with daft 0.6.14, HyperNodes 0.4.8 and pydantic (a cached venv) and
    hn_modulefix from the wheel."""
    site = built("daft-0.6.14")
    return _pythons.host_python(tmp_path_factory.mktemp("venv-daft06") / "hooked", wheel, site_packages=site)


@pytest.fixture(params=DAFT_VERSIONS)
def daft_python(request: pytest.FixtureRequest, hook_python: Path) -> Python:
    """The host's Python with hn_modulefix and each Daft version the suite runs on."""
    if request.param == "0.6.14":
        python: Python = request.getfixturevalue("daft06_python")
        return python
    return Python(HOST, hook_python.parent.parent, hook_python.parent.parent)
