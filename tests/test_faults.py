"""Faults and bad input, in fresh interpreters of a venv where the wheel was pip-installed.

In every case `python -c pass` starts and prints nothing (the manifest is read on the
first lookup, never at start).  Importing a listed module then fails with the reason:
a manifest that cannot be used disables the finder with one `hn_modulefix:` stderr line
and the import is a plain ModuleNotFoundError; a shipped file that cannot be used is an
ImportError "hn_modulefix cannot rebuild module ...".  Every shipped source appends to a
marker file when it executes, so the tests see that nothing ran unless its sha256
matched.  (A missing manifest and plain "{" are in test_startup.py.)
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from _support import clean_env, run
from hn_modulefix import ManifestError, bundle
from _hn_modulefix_boot import NAMES_FILE
from hn_modulefix._manifest import dump_names, load

# Imports each name given on the command line; one line per attempt, then what is left.
PROBE = """import sys
for name in sys.argv[1:]:
    try:
        __import__(name)
        print(name, "imported", sys.modules[name].VALUE)
    except ImportError as e:
        print(name, type(e).__name__, str(e).splitlines()[0])
print("left:", sorted(n for n in ("job", "scripts.job") if n in sys.modules))
"""
ATTEMPTS = ("job", "scripts.job", "job")


class Shipped:
    """proj/scripts/job.py bundled as `job` and `scripts.job`, then removed, as on a machine
    that has only the bundle; it marks each execution.  A copy of it lies outside the
    bundle, where no sys.path entry leads."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path / "cwd"
        self.cwd.mkdir()
        self.marker = tmp_path / "executed"
        self.source = "open(%r, 'a').write('job\\n')\nVALUE = 42\n" % str(self.marker)
        script = tmp_path / "proj" / "scripts" / "job.py"
        script.parent.mkdir(parents=True)
        script.write_text(self.source)
        self.outside = tmp_path / "outside" / "job.py"
        self.outside.parent.mkdir()
        self.outside.write_text(self.source)
        self.manifest = bundle(script, out=tmp_path / "bundle", root=tmp_path / "proj")
        self.file = self.manifest.parent / "modules" / "scripts" / "job.py"
        script.unlink()

    def env(self, manifest: Path | None = None) -> dict[str, str]:
        return clean_env(HN_MODULEFIX_MANIFEST=str(manifest or self.manifest))

    def data(self) -> dict:
        return json.loads(self.manifest.read_text())

    def rewrite(self, change: Callable[[dict], object]) -> None:
        """Edit the manifest, and names.txt with it as the bundler would; where the edit makes
        the manifest unusable, without names.txt, so the finder reads the manifest and says so."""
        data = self.data()
        change(data)
        self.manifest.write_text(json.dumps(data))
        names = self.manifest.parent / NAMES_FILE
        try:
            names.write_text(dump_names(load(str(self.manifest))))
        except ManifestError:
            names.unlink(missing_ok=True)

    def ship(self, source: str) -> None:
        """Replace the shipped file and list its sha256: a bundle whose hash matches."""
        self.file.write_text(source)
        digest = hashlib.sha256(source.encode()).hexdigest()
        self.rewrite(lambda data: data["modules"][0].update(sha256=digest))

    def executions(self) -> int:
        return self.marker.read_text().count("job\n") if self.marker.exists() else 0


@pytest.fixture
def shipped(tmp_path: Path) -> Shipped:
    return Shipped(tmp_path)


def start_and_probe(python: Path, shipped: Shipped,
                    manifest: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = shipped.env(manifest)
    started = run([str(python), "-c", "pass"], cwd=shipped.cwd, env=env)
    assert (started.returncode, started.stdout, started.stderr) == (0, "", "")
    return run([str(python), "-c", PROBE, *ATTEMPTS], cwd=shipped.cwd, env=env)


def _set(entry_field: str, value: Callable[[Shipped], object]) -> Callable[[Shipped], object]:
    return lambda s: s.rewrite(lambda data: data["modules"][0].update({entry_field: value(s)}))


def _document(text: Callable[[Shipped], str]) -> Callable[[Shipped], object]:
    return lambda s: s.manifest.write_text(text(s))


MANIFEST_FAULTS = {
    "empty": (_document(lambda s: ""), "is not valid JSON: Expecting value"),
    "truncated": (_document(lambda s: s.manifest.read_text()[:40]), "is not valid JSON"),
    "not UTF-8": (lambda s: s.manifest.write_bytes(b"\xff" + s.manifest.read_bytes()), "is not valid JSON"),
    "nested beyond the recursion limit": (_document(lambda s: "[" * 100000 + "]" * 100000),
                                          "is not valid JSON: maximum recursion depth exceeded"),
    "top level a list": (_document(lambda s: json.dumps([s.data()])), "top level: expected a JSON object, got list"),
    "format 2": (lambda s: s.rewrite(lambda d: d.update(hn_modulefix=2)), "hn_modulefix: expected format 1, got 2"),
    "format true": (lambda s: s.rewrite(lambda d: d.update(hn_modulefix=True)),
                    "hn_modulefix: expected format 1, got True"),
    "modules an object": (lambda s: s.rewrite(lambda d: d.update(modules={"job": d["modules"][0]})),
                          "modules: expected a list, got dict"),
    "names a string": (_set("names", lambda s: "job"), "modules[0].names: expected a non-empty list"),
    "sha256 a number": (_set("sha256", lambda s: 12), "modules[0].sha256: expected 64 lowercase hex digits, got 12"),
    "package a string": (_set("package", lambda s: "no"), "modules[0].package: expected true or false, got 'no'"),
    "name with a slash": (_set("names", lambda s: ["job", "scripts/job"]), "'scripts/job' is not a valid module name"),
    "name with a backslash": (_set("names", lambda s: ["job", "scripts\\job"]), "is not a valid module name"),
    "name with an empty segment": (_set("names", lambda s: ["job", "scripts..job"]),
                                   "'scripts..job' is not a valid module name"),
    "name ending in a dot": (_set("names", lambda s: ["job."]), "'job.' is not a valid module name"),
    "empty name": (_set("names", lambda s: [""]), "'' is not a valid module name"),
    # Each escaping path leads to the copy outside the bundle, whose sha256 is the
    # listed one: only the path check stands between it and running.
    "path with ../": (_set("path", lambda s: "../outside/job.py"),
                      "'../outside/job.py' must be a plain relative path inside the bundle"),
    "path with inner ../": (_set("path", lambda s: "modules/../../outside/job.py"),
                            "'modules/../../outside/job.py' must be a plain relative path inside the bundle"),
    "absolute path": (_set("path", lambda s: str(s.outside)), "must be a plain relative path inside the bundle"),
}
DISABLED = ("job ModuleNotFoundError No module named 'job'\n"
            "scripts.job ModuleNotFoundError No module named 'scripts'\n"
            "job ModuleNotFoundError No module named 'job'\n"
            "left: []\n")


@pytest.mark.parametrize("fault", list(MANIFEST_FAULTS))
def test_unusable_manifest_disables_the_finder_with_one_line(hook_python: Path, shipped: Shipped, fault: str) -> None:
    damage, reason = MANIFEST_FAULTS[fault]
    damage(shipped)
    with pytest.raises(ManifestError) as info:  # the oracle: the same check in this process
        load(str(shipped.manifest))
    assert reason in str(info.value)
    result = start_and_probe(hook_python, shipped)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, DISABLED, "hn_modulefix: finder disabled: %s\n" % info.value)
    assert shipped.executions() == 0


def test_manifest_path_naming_a_directory(hook_python: Path, shipped: Shipped) -> None:
    result = start_and_probe(hook_python, shipped, manifest=shipped.manifest.parent)
    assert (result.returncode, result.stdout, result.stderr) == (0, DISABLED, (
        "hn_modulefix: finder disabled: cannot read manifest %s: %s\n" % (shipped.manifest.parent,
                                                                          os.strerror(errno.EISDIR))))


def rebuild_error(shipped: Shipped, name: str, reason: str) -> str:
    alias = "'scripts.job'" if name == "job" else "'job'"
    return "%s ImportError hn_modulefix cannot rebuild module %r (also listed as %s) from %s (bundle %s): %s\n" % (
        name, name, alias, shipped.file, shipped.manifest, reason)


def missing(path: Path) -> str:
    path.unlink()
    return "the shipped file is missing"


def dangling_symlink(path: Path) -> str:
    path.unlink()
    path.symlink_to(path.parent / "gone.py")
    return "the shipped file is missing"


def unreadable(path: Path) -> str:
    """chmod 000 does not stop root: as root the file becomes a symlink to itself, which
    no one can open either."""
    if os.geteuid() != 0:
        path.chmod(0)
        return "the shipped file cannot be read: " + os.strerror(errno.EACCES)
    path.unlink()
    path.symlink_to(path.name)
    return "the shipped file cannot be read: " + os.strerror(errno.ELOOP)


def directory_instead_of_file(path: Path) -> str:
    path.unlink()
    path.mkdir()
    return "the shipped path is a directory, not a file"


def file_instead_of_its_directory(path: Path) -> str:
    shutil.rmtree(path.parent)
    path.parent.write_text("")
    return "the shipped file cannot be read: " + os.strerror(errno.ENOTDIR)


SOURCE_FAULTS = {f.__name__: f for f in (missing, dangling_symlink, unreadable, directory_instead_of_file,
                                         file_instead_of_its_directory)}


@pytest.mark.parametrize("fault", list(SOURCE_FAULTS))
def test_unusable_shipped_file_is_an_importerror_naming_the_reason(hook_python: Path, shipped: Shipped,
                                                                   fault: str) -> None:
    reason = SOURCE_FAULTS[fault](shipped.file)
    result = start_and_probe(hook_python, shipped)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "".join(rebuild_error(shipped, n, reason) for n in ATTEMPTS) + "left: []\n"
    assert shipped.executions() == 0


def test_source_changed_after_bundling_never_executes(hook_python: Path, shipped: Shipped) -> None:
    listed = shipped.data()["modules"][0]["sha256"]
    tampered = shipped.source.replace("VALUE = 42", "VALUE = 43")  # still writes the marker if it runs
    shipped.file.write_text(tampered)
    reason = ("sha256 mismatch: the manifest lists %s, the file has %s (changed after bundling? re-run "
              "`hn-modulefix bundle`)" % (listed[:12], hashlib.sha256(tampered.encode()).hexdigest()[:12]))
    result = start_and_probe(hook_python, shipped)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "".join(rebuild_error(shipped, n, reason) for n in ATTEMPTS) + "left: []\n"
    assert shipped.executions() == 0


def test_syntax_error_with_a_matching_hash(hook_python: Path, shipped: Shipped) -> None:
    shipped.ship("VALUE = 1\ndef (:\n")
    with pytest.raises(SyntaxError) as info:
        compile(shipped.file.read_text(), str(shipped.file), "exec")
    reason = "syntax error at line 2: %s" % info.value.msg
    result = start_and_probe(hook_python, shipped)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "".join(rebuild_error(shipped, n, reason) for n in ATTEMPTS) + "left: []\n"


def test_module_raising_at_import_fails_every_time_and_leaves_no_name(hook_python: Path, shipped: Shipped) -> None:
    shipped.ship(shipped.source + "raise RuntimeError('boom at import')\n")
    result = start_and_probe(hook_python, shipped)
    assert (result.returncode, result.stderr) == (0, "")
    reason = "executing it raised RuntimeError: boom at import"
    assert result.stdout == "".join(rebuild_error(shipped, n, reason) for n in ATTEMPTS) + "left: []\n"
    assert shipped.executions() == len(ATTEMPTS)  # its hash matched: it ran, and ran again on each retry


def test_intact_bundle_imports_once_under_every_name(hook_python: Path, shipped: Shipped) -> None:
    # The control for the cases above: the same probe with nothing broken.
    result = start_and_probe(hook_python, shipped)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "job imported 42\nscripts.job imported 42\njob imported 42\nleft: ['job', 'scripts.job']\n", "")
    assert shipped.executions() == 1


def test_very_large_manifest(hook_python: Path, shipped: Shipped) -> None:
    entries = [{"names": ["gen_%05d" % i, "gen.m%05d" % i], "path": "modules/gen/m%05d.py" % i,
                "sha256": hashlib.sha256(b"%d" % i).hexdigest(), "package": False} for i in range(20000)]
    shipped.rewrite(lambda data: data["modules"].extend(entries))
    env = shipped.env()
    started = run([str(hook_python), "-c", "import sys; print('json' in sys.modules, [getattr(f, '__name__', '') "
                   "for f in sys.meta_path if getattr(f, '_hn_modulefix_finder', False)][0])"],
                  cwd=shipped.cwd, env=env)
    # Starting reads nothing: the size of the manifest cannot slow it down.
    assert (started.returncode, started.stdout, started.stderr) == (0, "False _hn_modulefix_boot\n", "")
    code = ("import time\nstart = time.perf_counter()\nimport job\nelapsed = time.perf_counter() - start\n"
            "print(job.VALUE)\ntry:\n    import gen.m12345\nexcept ImportError as e:\n    print(str(e))\n"
            "print(elapsed)\n")
    begun = time.perf_counter()
    result = run([str(hook_python), "-c", code], cwd=shipped.cwd, env=env)
    wall = time.perf_counter() - begun
    assert (result.returncode, result.stderr) == (0, "")
    value, missing, first_lookup = result.stdout.splitlines()
    assert value == "42"
    assert missing == ("hn_modulefix cannot rebuild module 'gen.m12345' (also listed as 'gen_12345') from %s "
                       "(bundle %s): the shipped file is missing" % (
                           shipped.manifest.parent / "modules" / "gen" / "m12345.py", shipped.manifest))
    # Loose bounds, an order of magnitude above what a 2-core machine takes (about 0.1 s
    # for the first lookup): they catch quadratic work, not noise.
    assert float(first_lookup) < 2.0 and wall < 10.0
