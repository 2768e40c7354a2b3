"""The finder, in process: import state is saved and restored around every test."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import importlib.util
import json
import marshal
import shutil
import sys
import threading
from importlib.machinery import PathFinder
from pathlib import Path

import pytest

import hn_modulefix
from hn_modulefix import bundle, install, uninstall

pytestmark = pytest.mark.usefixtures("import_state")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def ours() -> list[object]:
    return [f for f in sys.meta_path if getattr(f, "_hn_modulefix_finder", False)]


JOB = ("import dataclasses\nimport json\nfrom helper import Color\n\nEXECUTIONS = []\nEXECUTIONS.append(1)\n\n"
       "@dataclasses.dataclass\nclass Item:\n    x: int\n    color: Color = Color.RED\n")


def make_project(tmp_path: Path) -> Path:
    """proj/scripts/job.py and its sibling helper; returns the bundle's manifest path."""
    project = tmp_path / "proj"
    write(project / "scripts" / "helper.py", "import enum\n\nclass Color(enum.Enum):\n    RED = 1\n")
    write(project / "scripts" / "job.py", JOB)
    return bundle(project / "scripts" / "job.py", out=tmp_path / "bundle", root=project)


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """The bundle alone, as on a worker machine: the project is gone."""
    manifest = make_project(tmp_path)
    shutil.rmtree(tmp_path / "proj")
    return manifest


def test_install_twice_adds_one_finder_ahead_of_the_path_finder_and_uninstall_removes_it(shipped: Path) -> None:
    install(shipped)
    install(str(shipped))
    assert len(ours()) == 1 and sys.meta_path[sys.meta_path.index(PathFinder) - 1] is ours()[0]
    assert repr(ours()[0]) == "<hn_modulefix finder %s (2 modules)>" % shipped
    uninstall()
    uninstall()
    assert ours() == []


def test_uninstall_of_one_manifest_keeps_the_others(shipped: Path, tmp_path: Path) -> None:
    other = bundle(write(tmp_path / "p2" / "other.py", "X = 1\n"), out=tmp_path / "b2", root=tmp_path / "p2")
    install(shipped)
    install(other)
    uninstall(shipped)
    assert [f.manifest_path for f in ours()] == [str(other)]


def test_install_without_manifest_or_env_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HN_MODULEFIX_MANIFEST", raising=False)
    with pytest.raises(ValueError, match="no manifest given and HN_MODULEFIX_MANIFEST is not set"):
        install()


def test_install_reads_the_manifest_eagerly(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(hn_modulefix.ManifestError, match="not valid JSON"):
        install(tmp_path / "manifest.json")
    assert ours() == []


def test_all_names_resolve_to_one_module_executed_once(shipped: Path) -> None:
    install(shipped)
    job = importlib.import_module("job")
    again = importlib.import_module("scripts.job")
    assert job is again is sys.modules["job"] is sys.modules["scripts.job"]
    assert job.EXECUTIONS == [1]
    assert job.__name__ == "job" and job.__spec__.name == "job"
    assert job.__file__ == str(shipped.parent / "modules" / "scripts" / "job.py")  # the only copy here
    item = job.Item(3)
    assert isinstance(item, sys.modules["scripts.job"].Item)
    assert [f.name for f in dataclasses.fields(again.Item)] == ["x", "color"]
    helper = importlib.import_module("scripts.helper")
    assert item.color is helper.Color.RED and isinstance(item.color, enum.Enum)


def test_first_name_asked_becomes_the_module_name(shipped: Path) -> None:
    install(shipped)
    job = importlib.import_module("scripts.job")
    assert job.__name__ == "scripts.job" and job.Item.__module__ == "scripts.job"
    assert importlib.import_module("job") is job
    # The driver's namespace directory is gone here: the shipped one encloses the file.
    assert list(sys.modules["scripts"].__path__) == [str(shipped.parent / "modules" / "scripts")]


def test_unlisted_names_are_not_answered(shipped: Path) -> None:
    install(shipped)
    finder = ours()[0]
    assert finder.find_spec("json_but_not_really") is None
    with pytest.raises(ModuleNotFoundError, match="No module named 'nowhere_at_all'"):
        importlib.import_module("nowhere_at_all")


def test_bytecode_cache_is_written_next_to_the_shipped_file(shipped: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    install(shipped)
    job = importlib.import_module("job")
    assert job.__cached__ and Path(job.__cached__).is_file()


def corrupt(manifest: Path, relpath: str, change) -> Path:
    target = manifest.parent / relpath
    change(target)
    return target


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.unlink(), "the shipped file is missing"),
    (lambda p: p.write_text(p.read_text() + "\n# edited\n"), "sha256 mismatch"),
    (lambda p: (p.unlink(), p.mkdir()), "the shipped path is a directory"),
])
def test_a_damaged_source_raises_importerror_naming_module_file_bundle_and_reason(
        shipped: Path, damage, reason: str) -> None:
    path = corrupt(shipped, "modules/scripts/job.py", damage)
    install(shipped)
    with pytest.raises(ImportError) as info:
        importlib.import_module("scripts.job")
    err = info.value
    first_line = str(err).splitlines()[0]
    assert first_line.startswith("hn_modulefix cannot rebuild module 'scripts.job' (also listed as 'job')")
    assert str(path) in first_line and str(shipped) in first_line and reason in first_line
    assert err.name == "scripts.job" and err.path == str(path)
    assert "job" not in sys.modules and "scripts.job" not in sys.modules


def test_hash_is_checked_before_anything_executes(shipped: Path, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    corrupt(shipped, "modules/scripts/job.py", lambda p: p.write_text("open(%r, 'w').close()\n" % str(marker)))
    install(shipped)
    with pytest.raises(ImportError, match="sha256 mismatch"):
        importlib.import_module("job")
    assert not marker.exists()


def rebundle_with(tmp_path: Path, source: str) -> Path:
    write(tmp_path / "p2" / "bad.py", source)
    return bundle(tmp_path / "p2" / "bad.py", out=tmp_path / "b2", root=tmp_path / "p2")


def test_module_raising_at_import_leaves_nothing_behind_and_fails_again(tmp_path: Path) -> None:
    manifest = rebundle_with(tmp_path, "import sys\nCOUNT = sys.modules.setdefault('bad_counter', [])\n"
                                       "COUNT.append(1)\nraise RuntimeError('boom at import')\n")
    install(manifest)
    for attempt in (1, 2):
        with pytest.raises(ImportError) as info:
            importlib.import_module("bad")
        assert "executing it raised RuntimeError: boom at import" in str(info.value)
        assert isinstance(info.value.__cause__, RuntimeError)
        assert "bad" not in sys.modules
        assert sys.modules["bad_counter"] == [1] * attempt


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    manifest = tmp_path / "b2" / "manifest.json"
    rebundle_with(tmp_path, "x = 1\n")
    (tmp_path / "p2" / "bad.py").unlink()  # only the shipped copy, which is then
    # replaced by a file with a syntax error (and a manifest that matches it): written by hand.
    bad = manifest.parent / "modules" / "bad.py"
    bad.write_text("x = 1\ndef (:\n")
    data = json.loads(manifest.read_text())
    import hashlib

    data["modules"][0]["sha256"] = hashlib.sha256(bad.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(data))
    install(manifest)
    with pytest.raises(ImportError, match="syntax error at line 2") as info:
        importlib.import_module("bad")
    assert isinstance(info.value.__cause__, SyntaxError)


def test_circular_import_through_an_alias_gets_the_partial_module(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    write(project / "scripts" / "a.py", "import b\nVALUE = 1\n")
    write(project / "scripts" / "b.py", "import scripts.a as a_alias\nSEEN = a_alias\n")
    manifest = bundle(project / "scripts" / "a.py", out=tmp_path / "bundle", root=project)
    install(manifest)
    a = importlib.import_module("a")
    assert sys.modules["b"].SEEN is a and sys.modules["scripts.a"] is a and a.VALUE == 1


def test_threads_importing_every_name_at_once_share_one_execution(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    write(project / "scripts" / "slow.py",
          "import sys, time\nsys.modules.setdefault('slow_runs', []).append(1)\ntime.sleep(0.2)\nREADY = True\n")
    install(bundle(project / "scripts" / "slow.py", out=tmp_path / "bundle", root=project))
    barrier = threading.Barrier(32)
    results: list[object] = [None] * 32
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = importlib.import_module("slow" if i % 2 else "scripts.slow")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sys.modules["slow_runs"] == [1]
    assert len({id(m) for m in results}) == 1 and results[0].READY


def test_threads_importing_a_failing_module_all_fail_and_leave_nothing(tmp_path: Path) -> None:
    manifest = rebundle_with(tmp_path, "import time\ntime.sleep(0.1)\nraise ValueError('nope')\n")
    install(manifest)
    barrier = threading.Barrier(16)
    outcomes: list[str] = []

    def worker() -> None:
        barrier.wait()
        try:
            importlib.import_module("bad")
            outcomes.append("imported")
        except ImportError as exc:
            outcomes.append(type(exc.__cause__).__name__)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == ["ValueError"] * 16
    assert "bad" not in sys.modules


# -- which file a listed name is executed from -----------------------------------------


def test_the_drivers_own_file_is_used_where_it_exists(tmp_path: Path) -> None:
    manifest = make_project(tmp_path)
    install(manifest)
    job = importlib.import_module("job")
    assert job.__file__ == str(tmp_path / "proj" / "scripts" / "job.py")
    assert hn_modulefix._finder.from_bundle(job.__spec__)


def test_a_module_another_finder_locates_is_used_when_its_bytes_match(shipped: Path, tmp_path: Path) -> None:
    mount = write(tmp_path / "root" / "job.py", JOB)  # Modal's /root/<stem>.py, say
    write(tmp_path / "root" / "helper.py", "raise RuntimeError('not this one: other bytes')\n")
    sys.path.insert(0, str(mount.parent))
    install(shipped)
    job = importlib.import_module("job")
    assert job.__file__ == str(mount) and job.EXECUTIONS == [1]
    # helper.py there has other content: the shipped copy is used instead, silently right.
    assert sys.modules["helper"].__file__ == str(shipped.parent / "modules" / "scripts" / "helper.py")


@pytest.mark.parametrize("other", ["module", "namespace"])
def test_another_module_or_a_namespace_directory_never_shadows(shipped: Path, tmp_path: Path, other: str) -> None:
    if other == "module":
        write(tmp_path / "real" / "job.py", "WHERE = 'real'\n")
    else:
        (tmp_path / "real" / "job").mkdir(parents=True)
    sys.path.insert(0, str(tmp_path / "real"))
    install(shipped)
    job = importlib.import_module("job")
    assert job.__file__ == str(shipped.parent / "modules" / "scripts" / "job.py") and not hasattr(job, "WHERE")


def test_an_edited_original_fails_and_names_it(tmp_path: Path) -> None:
    manifest = make_project(tmp_path)
    original = tmp_path / "proj" / "scripts" / "job.py"
    original.write_text(JOB + "EDITED = True\n")
    install(manifest)
    with pytest.raises(ImportError) as info:
        importlib.import_module("job")
    assert str(info.value).startswith("hn_modulefix cannot rebuild module 'job' (also listed as 'scripts.job') from "
                                      "%s (bundle %s): it changed since it was bundled" % (original, manifest))
    assert "job" not in sys.modules


def test_a_shipped_package_path_names_its_directory(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    write(project / "kit" / "__init__.py", "")
    write(project / "kit" / "parts.py", "X = 1\n")
    write(project / "job.py", "import kit.parts\n")
    manifest = bundle(project / "job.py", out=tmp_path / "bundle", root=project)
    shutil.rmtree(project)
    install(manifest)
    kit = importlib.import_module("kit")
    assert kit.__path__ == [str(tmp_path / "bundle" / "modules" / "kit")]
    assert importlib.import_module("kit.parts").__spec__.loader.__class__.__name__ == "ShippedLoader"


def test_the_bytes_executed_are_the_bytes_verified(shipped: Path, tmp_path: Path) -> None:
    install(shipped)
    spec = ours()[0].find_spec("scripts.helper")
    # Replaced after the check: a second read would execute this.
    (shipped.parent / "modules" / "scripts" / "helper.py").write_text("raise RuntimeError('second read')\n")
    module = importlib.util.module_from_spec(spec)
    sys.modules["scripts.helper"] = module
    spec.loader.exec_module(module)
    assert module.Color.RED.value == 1


def pyc_header(flags: int, source: Path) -> bytes:
    if flags:
        return importlib.util.MAGIC_NUMBER + flags.to_bytes(4, "little") + importlib.util.source_hash(
            source.read_bytes())
    stat = source.stat()
    return (importlib.util.MAGIC_NUMBER + b"\0\0\0\0" + int(stat.st_mtime).to_bytes(4, "little")
            + stat.st_size.to_bytes(4, "little"))


@pytest.mark.parametrize("flags", [0, 1], ids=["timestamp", "unchecked-hash"])
def test_a_bytecode_cache_that_does_not_check_the_source_never_runs(shipped: Path, flags: int) -> None:
    helper = shipped.parent / "modules" / "scripts" / "helper.py"
    cache = Path(importlib.util.cache_from_source(str(helper)))
    cache.parent.mkdir(exist_ok=True)
    evil = compile("raise RuntimeError('tampered bytecode ran')\n", str(helper), "exec")
    cache.write_bytes(pyc_header(flags, helper) + marshal.dumps(evil))
    install(shipped)
    assert importlib.import_module("scripts.helper").Color.RED.value == 1


def test_the_cache_written_is_hash_checked_and_used(shipped: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    install(shipped)
    helper = importlib.import_module("scripts.helper")
    cache = Path(helper.__cached__).read_bytes()
    assert cache[4:8] == b"\x03\x00\x00\x00"  # checked hash-based (PEP 552)
    assert cache[8:16] == importlib.util.source_hash(Path(helper.__file__).read_bytes())


def test_a_module_failing_after_importing_its_alias_leaves_neither_name(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    write(project / "scripts" / "bad.py", "import scripts.bad\nraise ValueError('after the alias')\n")
    manifest = bundle(project / "scripts" / "bad.py", out=tmp_path / "bundle", root=project)
    install(manifest)
    with pytest.raises(ImportError, match="executing it raised ValueError: after the alias"):
        importlib.import_module("bad")
    assert "bad" not in sys.modules and "scripts.bad" not in sys.modules


def test_a_byte_identical_module_imported_earlier_under_another_name_is_reused(tmp_path: Path) -> None:
    manifest = make_project(tmp_path)
    sys.path.insert(0, str(tmp_path / "proj" / "scripts"))
    job = importlib.import_module("job")  # before the finder, as the driver did
    install(manifest)
    assert importlib.import_module("scripts.job") is job and job.EXECUTIONS == [1]


def test_a_failure_deep_in_an_import_chain_is_named_first(tmp_path: Path) -> None:
    project = tmp_path / "chain"
    write(project / "top.py", "import middle\n")
    write(project / "middle.py", "import inner\n")
    write(project / "inner.py", "import root_cause\n")
    write(project / "root_cause.py", "raise ValueError('the real problem')\n")
    manifest = bundle(project / "top.py", out=tmp_path / "b", root=project)
    install(manifest)
    with pytest.raises(ImportError) as info:
        importlib.import_module("top")

    def clause(name: str) -> str:  # the driver's own files are here: they are the ones executed
        return "hn_modulefix cannot rebuild module %r from %s (bundle %s): " % (name, project / (name + ".py"), manifest)

    assert str(info.value) == (clause("top") + "while executing, " + clause("root_cause")
                               + "executing it raised ValueError: the real problem"
                               " (import chain: 'middle' -> 'inner' -> 'root_cause')")
    assert str(info.value.__cause__) == (clause("middle") + "while executing, " + clause("root_cause")
                                         + "executing it raised ValueError: the real problem"
                                         " (import chain: 'inner' -> 'root_cause')")
    # One level down there is no chain to show.
    assert str(info.value.__cause__.__cause__) == (clause("inner") + "while executing, " + clause("root_cause")
                                                   + "executing it raised ValueError: the real problem")


# -- snapshots: the bytes the driver ran ---------------------------------------------------


def snapshot_project(tmp_path: Path) -> Path:
    """make_project's bundle as ship() makes it: a snapshot of what the driver runs."""
    from hn_modulefix._bundle import plan, write as write_bundle

    make_project(tmp_path)
    project = tmp_path / "proj"
    return write_bundle(plan(project / "scripts" / "job.py", root=project), tmp_path / "snapshot", snapshot=True)


def test_a_snapshot_runs_the_shipped_copy_where_the_original_has_other_bytes(tmp_path: Path) -> None:
    manifest = snapshot_project(tmp_path)
    original = tmp_path / "proj" / "scripts" / "job.py"
    # Saved while the job runs, or an older checkout at the driver's path (a Ray node), also
    # on this process's sys.path: neither is executed, neither blocks.
    original.write_text("raise RuntimeError('not the bytes the driver ran')\n")
    sys.path.insert(0, str(original.parent))
    install(manifest)
    job = importlib.import_module("scripts.job")
    assert job.__file__ == str(manifest.parent / "modules" / "scripts" / "job.py") and job.EXECUTIONS == [1]
    assert importlib.import_module("job") is job
    # helper.py is unchanged at the original path: it runs there, where files beside it are.
    assert sys.modules["helper"].__file__ == str(tmp_path / "proj" / "scripts" / "helper.py")


def test_an_ahead_of_time_bundle_still_refuses_an_edited_original(tmp_path: Path) -> None:
    manifest = make_project(tmp_path)
    (tmp_path / "proj" / "scripts" / "job.py").write_text(JOB + "EDITED = True\n")
    install(manifest)
    finder = ours()[0]
    assert not finder.manifest.snapshot
    with pytest.raises(ImportError, match="it changed since it was bundled"):
        importlib.import_module("scripts.job")


def test_a_module_of_other_bytes_imported_under_a_listed_name_is_never_the_alias(tmp_path: Path) -> None:
    manifest = make_project(tmp_path)
    write(tmp_path / "other" / "job.py", "WHERE = 'another job.py'\n")
    sys.path.insert(0, str(tmp_path / "other"))
    other = importlib.import_module("job")  # before the finder: another module of that file name
    install(manifest)
    job = importlib.import_module("scripts.job")
    assert job is not other and job.EXECUTIONS == [1] and job.__file__ == str(tmp_path / "proj" / "scripts" / "job.py")


def test_a_spec_executed_again_after_a_failure_verifies_its_bytes_again(tmp_path: Path) -> None:
    marker = tmp_path / "second_run"
    manifest = rebundle_with(tmp_path, "import os\nif not os.path.exists(%r):\n    raise ValueError('first run')\n"
                                       % str(marker))
    shutil.rmtree(tmp_path / "p2")  # the shipped copy is the only copy
    install(manifest)
    spec = ours()[0].find_spec("bad")
    with pytest.raises(ImportError, match="first run"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    # Replaced after the failure: executing the same spec again must not run it.
    (manifest.parent / "modules" / "bad.py").write_text("EVIL = True\n")
    marker.touch()
    with pytest.raises(ImportError, match="sha256 mismatch") as info:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert info.value.path == str(manifest.parent / "modules" / "bad.py")


def test_a_namespace_parent_spans_the_drivers_directory_where_it_exists(tmp_path: Path) -> None:
    manifest = make_project(tmp_path)  # scripts/ is a namespace directory, not on this sys.path
    install(manifest)
    importlib.import_module("scripts.job")
    assert list(sys.modules["scripts"].__path__) == [str(tmp_path / "proj" / "scripts")]
    assert sys.modules["scripts.job"].__file__ == str(tmp_path / "proj" / "scripts" / "job.py")
