"""How the bundler reads imports: statements at any depth, importer calls on the lines
that name them, and large waves of files parsed in helper processes."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

import hn_modulefix._bundle as bundle_module
import hn_modulefix._scan as scan_module
from hn_modulefix import BundleError, bundle


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def shipped(manifest: Path) -> set[str]:
    return {name for entry in json.loads(manifest.read_text())["modules"] for name in entry["names"]}


# Each `wanted_N` is imported in one way the scanner must see; each `ghost_N` is only
# named where nothing imports it (a string, a comment, an unrelated call).
JOB = '''"""Uses:

    import ghost_1
    importlib.import_module("ghost_2")
"""
# import ghost_3
import importlib
import wanted_1.deep as alias
from wanted_2 import (
    thing,
    other as renamed,
)
text = "import ghost_4; __import__('ghost_5')"
print("importlib.import_module('ghost_6')")
other.import_module.__name__, load("ghost_7")

if alias:
    import wanted_3
elif thing:
    pass
else:
    import wanted_4
try:
    import wanted_5
except ImportError:
    import wanted_6
else:
    import wanted_7
finally:
    import wanted_8
while False:
    import wanted_9
else:
    import wanted_10
with open(__file__) as f:
    import wanted_11
for _ in ():
    pass
else:
    import wanted_12


@register(importlib.import_module("wanted_13"))
class Job(__import__("wanted_14").Base, metaclass=type):
    def run(self, loader=lambda: importlib.import_module(
            "wanted_15")):
        def inner():
            from pkg.sub import wanted_16
        return [importlib.import_module(n) for n in ("not_literal",)]

    async def later(self):
        async with ctx():
            import wanted_17


@decorate(
    importlib.import_module("wanted_19"))
def decorated():
    pass


def handler():
    try:
        pass
    except __import__("wanted_18").Error:
        pass
'''


def test_every_import_form_ships_and_named_only_modules_do_not(tmp_path: Path) -> None:
    p = tmp_path / "proj"
    write(p / "job.py", JOB)
    for n in range(2, 20):
        write(p / ("wanted_%d.py" % n))
    write(p / "wanted_1" / "__init__.py")  # a package wins over wanted_1.py, as for the path finder
    write(p / "wanted_1" / "deep.py")
    write(p / "pkg" / "sub" / "wanted_16.py")
    for n in range(1, 8):
        write(p / ("ghost_%d.py" % n))
    names = shipped(bundle(p / "job.py", out=tmp_path / "out", root=p))
    assert names == {"job", "wanted_1", "wanted_1.deep", "pkg.sub.wanted_16"} | {"wanted_%d" % n for n in range(2, 20) if n != 16}


@pytest.mark.skipif(sys.version_info < (3, 10), reason="match statements are Python 3.10+")
def test_imports_inside_match_cases_ship(tmp_path: Path) -> None:
    write(tmp_path / "job.py", "import sys\nmatch sys.argv:\n    case [_, 'x'] if __import__('guarded'):\n"
                               "        import in_case\n    case _:\n        pass\n")
    write(tmp_path / "guarded.py")
    write(tmp_path / "in_case.py")
    assert shipped(bundle(tmp_path / "job.py", out=tmp_path / "out", root=tmp_path)) == {"job", "guarded", "in_case"}


def test_relative_imports_at_depth(tmp_path: Path) -> None:
    p = tmp_path / "proj"
    write(p / "job.py", "import top.a.b.c\n")
    for package in ("top", "top/a", "top/a/b", "top/x", "top/a/y"):
        write(p / package / "__init__.py")
    write(p / "top" / "a" / "b" / "c.py", "def f():\n    from ... import x\n    from ..y import z\n"
                                          "    from .... import beyond_the_top\n")
    write(p / "top" / "x" / "w.py")
    write(p / "top" / "a" / "y" / "z.py")
    write(p / "beyond_the_top.py")  # would fail at run time too
    names = shipped(bundle(p / "job.py", out=tmp_path / "out", root=p))
    assert "top.a.y.z" in names and "top.x" in names and "beyond_the_top" not in names


def test_importer_calls_in_other_line_endings_and_spellings(tmp_path: Path) -> None:
    # "\r" alone ends a line for the parser; NFKC makes a fullwidth letter a plain one.
    (tmp_path / "job.py").write_bytes(b"import importlib\rx = 1\r\rdef f():\r    importlib.import_module('old_mac')\r")
    write(tmp_path / "old_mac.py")
    (tmp_path / "other.py").write_bytes("import importlib\nimportlib.\uff49mport_module('fullwidth')\n".encode("utf-8"))
    write(tmp_path / "fullwidth.py")
    manifest = bundle(tmp_path / "job.py", tmp_path / "other.py", out=tmp_path / "out", root=tmp_path)
    assert shipped(manifest) == {"job", "old_mac", "other", "fullwidth"}


def package(root: Path, modules: int, broken: int | None = None) -> Path:
    """A script importing a package of `modules` submodules: one wave of that many files."""
    write(root / "job.py", "import lots\n")
    write(root / "lots" / "__init__.py", "from . import m0\n")
    for n in range(modules):
        write(root / "lots" / ("m%d.py" % n), "import json\nfrom . import m%d\nfrom lots.m%d import f\n"
              "def f():\n    return 1\n" % ((n + 1) % modules, (n + 2) % modules))
    if broken is not None:
        write(root / "lots" / ("m%d.py" % broken), "import json\n\ndef broken(:\n")
    return root / "job.py"


def parsed_here(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files this process parses from now on, each taking a while (this process is
    busy: a helper takes files meanwhile)."""
    here: list[str] = []
    scan = scan_module.scan

    def slow_scan(data: bytes, path: str) -> object:
        here.append(path)
        time.sleep(0.02)
        return scan(data, path)

    monkeypatch.setattr(scan_module, "scan", slow_scan)
    monkeypatch.setattr(bundle_module, "scan", slow_scan)
    return here


def test_a_large_wave_is_shared_with_a_helper_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = package(tmp_path / "proj", 200)
    here = parsed_here(monkeypatch)
    names = shipped(bundle(script, out=tmp_path / "out", root=tmp_path / "proj"))
    assert names == {"job", "lots"} | {"lots.m%d" % n for n in range(200)}
    # The files this process did not parse were parsed by the helper (in another pid).
    assert len(here) < 150, len(here)


def test_a_helper_of_another_python_version_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its grammar and its marshal format are its own: what it would parse is parsed here.
    script = package(tmp_path / "proj", 30)
    monkeypatch.setattr(sys, "hexversion", sys.hexversion + 1)
    here = parsed_here(monkeypatch)
    names = shipped(bundle(script, out=tmp_path / "out", root=tmp_path / "proj"))
    assert names == {"job", "lots"} | {"lots.m%d" % n for n in range(30)}
    assert len(here) == 32


def test_a_syntax_error_found_in_a_helper_is_reported_as_here(tmp_path: Path) -> None:
    script = package(tmp_path / "proj", 100, broken=97)
    with pytest.raises(BundleError, match=r"lots[/\\]m97\.py:3: syntax error: "):
        bundle(script, out=tmp_path / "out", root=tmp_path / "proj")


def test_a_helper_that_never_answers_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What sys.executable names may not be Python (an embedding application) and hang.
    hang = write(tmp_path / "hang", "#!/bin/sh\nexec sleep 60\n")
    os.chmod(hang, 0o755)
    monkeypatch.setattr(sys, "executable", str(hang))
    monkeypatch.setattr(scan_module, "_START_TIMEOUT", 0.5)
    script = package(tmp_path / "proj", 50)
    start = time.monotonic()
    names = shipped(bundle(script, out=tmp_path / "out", root=tmp_path / "proj"))
    assert names == {"job", "lots"} | {"lots.m%d" % n for n in range(50)}
    assert time.monotonic() - start < 30


def test_a_helper_that_is_not_python_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")
    script = package(tmp_path / "proj", 50)
    assert shipped(bundle(script, out=tmp_path / "out", root=tmp_path / "proj")) == \
        {"job", "lots"} | {"lots.m%d" % n for n in range(50)}


@pytest.mark.parametrize("order", [1, -1])
def test_a_module_two_scripts_share_resolves_its_imports_for_each(tmp_path: Path, order: int) -> None:
    # `lib.x` runs `import helper` in both programs; only b/ holds a helper, which is
    # what lib.x gets when b/run_b.py runs.  Whichever script comes first, it ships.
    p = tmp_path / "proj"
    write(p / "a" / "run_a.py", "import lib.x\n")
    write(p / "b" / "run_b.py", "import lib.x\n")
    write(p / "lib" / "x.py", "import helper\n")
    write(p / "b" / "helper.py")
    scripts = [p / "a" / "run_a.py", p / "b" / "run_b.py"][::order]
    assert "helper" in shipped(bundle(*scripts, out=tmp_path / "out", root=p))
