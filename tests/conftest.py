from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

from _support import REPO, build_wheel, make_venv


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
