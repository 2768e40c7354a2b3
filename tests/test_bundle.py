"""The bundler: what ships, under which names, and how the CLI reports it."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from _support import clean_env, run
from hn_modulefix import BundleError, _bundle, bundle


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def listing(manifest: Path) -> dict[str, list[str]]:
    data = json.loads(manifest.read_text())
    return {entry["path"]: entry["names"] for entry in data["modules"]}


def test_script_siblings_packages_and_hidden_imports_ship(tmp_path: Path) -> None:
    p = tmp_path / "proj"
    write(p / "scripts" / "pipeline.py",
          "import json, os\nimport daft\nfrom helpers import f\nimport mylib.sub\n"
          "def later():\n    import lazy\n    import importlib\n    importlib.import_module('dynamic')\n")
    write(p / "scripts" / "helpers.py", "from . import nothing_relative_at_top_level\nimport deep.deeper\ndef f(): pass\n")
    write(p / "scripts" / "lazy.py")
    write(p / "scripts" / "dynamic.py")
    write(p / "scripts" / "unused.py")
    write(p / "scripts" / "deep" / "deeper.py", "from .. import lazy\n")  # namespace dir, relative import
    write(p / "mylib" / "__init__.py", "from .sub import g\n")
    write(p / "mylib" / "sub.py", "from . import other\ndef g(): pass\n")
    write(p / "mylib" / "other.py")
    write(p / "mylib" / "plugins" / "__init__.py")
    write(p / "mylib" / "plugins" / "extra.py")
    manifest = bundle(p / "scripts" / "pipeline.py", out=tmp_path / "out", root=p)
    assert manifest == tmp_path / "out" / "manifest.json"
    assert listing(manifest) == {
        "modules/scripts/pipeline.py": ["pipeline", "scripts.pipeline"],
        "modules/scripts/helpers.py": ["helpers", "scripts.helpers"],
        "modules/scripts/lazy.py": ["lazy", "scripts.lazy"],
        "modules/scripts/dynamic.py": ["dynamic", "scripts.dynamic"],
        "modules/scripts/deep/deeper.py": ["deep.deeper", "scripts.deep.deeper"],
        "modules/mylib/__init__.py": ["mylib"],
        "modules/mylib/sub.py": ["mylib.sub"],
        "modules/mylib/other.py": ["mylib.other"],
        "modules/mylib/plugins/__init__.py": ["mylib.plugins"],
        "modules/mylib/plugins/extra.py": ["mylib.plugins.extra"],
    }
    data = json.loads(manifest.read_text())
    for entry in data["modules"]:
        shipped = manifest.parent / entry["path"]
        assert hashlib.sha256(shipped.read_bytes()).hexdigest() == entry["sha256"]
        assert entry["package"] == entry["path"].endswith("__init__.py")


def test_a_snapshot_records_itself_and_the_running_drivers_main_script_directory(tmp_path: Path) -> None:
    from hn_modulefix._bundle import plan, write as write_bundle

    p = tmp_path / "proj"
    write(p / "scripts" / "job.py", "import kit\n")
    write(p / "scripts" / "kit" / "__init__.py")
    ahead = json.loads(bundle(p / "scripts" / "job.py", out=tmp_path / "ahead", root=p).read_text())
    # The directories the names are importable from: scripts/ (job, kit) and the root (scripts.job, ...).
    assert "snapshot" not in ahead and ahead["roots"] == sorted([str(p), str(p / "scripts")])
    snapshot = json.loads(write_bundle(plan(p / "scripts" / "job.py", root=p), tmp_path / "snap",
                                       snapshot=True).read_text())
    main_dir = str(Path(sys.modules["__main__"].__file__).resolve().parent)  # this process's main script
    assert snapshot["snapshot"] is True and snapshot["roots"] == sorted({str(p), str(p / "scripts"), main_dir})
    assert snapshot["modules"] == ahead["modules"]


def test_relative_imports_inside_a_namespace_directory_ship_their_targets(tmp_path: Path) -> None:
    # A namespace directory is not shipped whole the way a regular package is: only what
    # its modules import, relative imports included, makes the closure.
    p = tmp_path / "proj"
    write(p / "job.py", "import ns.a\n")
    write(p / "ns" / "a.py", "from . import b\nfrom .c import f\nfrom .deep import d\nfrom .. import top\n")
    write(p / "ns" / "b.py")
    write(p / "ns" / "deep" / "d.py", "from .. import e\n")
    write(p / "ns" / "e.py")
    write(p / "ns" / "c.py", "def f(): pass\n")
    write(p / "ns" / "unused.py")
    write(p / "top.py")  # `from .. import top` goes beyond the top-level package: fails at run time too
    assert listing(bundle(p / "job.py", out=tmp_path / "out", root=p)) == {
        "modules/job.py": ["job"],
        "modules/ns/a.py": ["ns.a"],
        "modules/ns/b.py": ["ns.b"],
        "modules/ns/c.py": ["ns.c"],
        "modules/ns/deep/d.py": ["ns.deep.d"],
        "modules/ns/e.py": ["ns.e"],
    }


def test_standard_library_and_site_packages_never_ship(tmp_path: Path) -> None:
    p = tmp_path / "proj"
    write(p / "job.py", "import json, os.path, email.mime.text, cloudpickle, daft, pytest\n")
    assert listing(bundle(p / "job.py", out=tmp_path / "out", root=p)) == {"modules/job.py": ["job"]}


def test_local_module_named_like_the_standard_library_is_refused_with_a_warning(tmp_path: Path) -> None:
    # Shipped, it would reach every worker ahead of the standard module, Daft's and Ray's
    # own `import queue` included; the driver had imported the standard one.
    p = tmp_path / "proj"
    write(p / "job.py", "import queue, types\n")
    write(p / "queue.py")
    write(p / "types.py")
    with pytest.warns(UserWarning) as caught:
        manifest = bundle(p / "job.py", out=tmp_path / "out", root=p)
    assert listing(manifest) == {"modules/job.py": ["job"]}
    messages = sorted(str(w.message) for w in caught)
    assert messages == ["hn_modulefix: %s is not shipped as %s: the standard library has that module, and every "
                        "process imports the standard one, as the driver does" % (p / name, name.split(".")[0])
                        for name in ("queue.py", "types.py")]


def test_local_module_named_like_an_installed_one_ships_with_a_warning(tmp_path: Path) -> None:
    p = tmp_path / "proj"
    write(p / "job.py", "import cloudpickle\n")
    write(p / "cloudpickle.py", "X = 1\n")
    with pytest.warns(UserWarning, match=r"'cloudpickle' is also an installed module \(.*site-packages.*\); with this "
                      r"bundle every process gets the script's \(.*proj/cloudpickle.py\) instead"):
        manifest = bundle(p / "job.py", out=tmp_path / "out", root=p)
    assert listing(manifest) == {"modules/cloudpickle.py": ["cloudpickle"], "modules/job.py": ["job"]}


def test_a_script_outside_the_root_is_refused_not_named_by_directories_outside_it(tmp_path: Path) -> None:
    # `pkg` lies outside the root: naming the script `pkg.job` would claim `pkg` for every process.
    write(tmp_path / "elsewhere" / "pkg" / "__init__.py")
    write(tmp_path / "elsewhere" / "pkg" / "job.py")
    with pytest.raises(BundleError) as info:
        bundle(tmp_path / "elsewhere" / "pkg" / "job.py", out=tmp_path / "out", root=tmp_path / "proj")
    assert str(info.value) == ("%s lies outside the project root %s; give the root that holds it (--root, root=)"
                               % (tmp_path / "elsewhere" / "pkg" / "job.py", tmp_path / "proj"))
    assert not (tmp_path / "out").exists()


def test_rebundling_replaces_the_old_bundle_whole(tmp_path: Path) -> None:
    p = tmp_path / "proj"
    write(p / "job.py", "import old_helper\n")
    write(p / "old_helper.py")
    out = tmp_path / "out"
    manifest = bundle(p / "job.py", out=out, root=p)
    # What using the bundle leaves there: the bytecode caches the finder's loader writes
    # (any interpreter's), and names.txt and index.txt beside the manifest.
    env = clean_env(HN_MODULEFIX_MANIFEST=str(manifest))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    p.rename(tmp_path / "away")  # so the shipped copies are the ones used (and cached)
    used = run([sys.executable, "-c", "import job, old_helper"], cwd=tmp_path, env=env)
    (tmp_path / "away").rename(p)
    assert used.returncode == 0, used.stderr
    assert sorted(x.name for x in (out / "modules" / "__pycache__").iterdir()) == [
        "job.%s.pyc" % sys.implementation.cache_tag, "old_helper.%s.pyc" % sys.implementation.cache_tag]
    write(out / "modules" / "__pycache__" / "old_helper.cpython-39.opt-1.pyc")
    write(out / "names.txt", "job\nold_helper\n")
    write(out / "index.txt", "hn_modulefix index 1\n")
    write(p / "job.py", "\n")
    manifest = bundle(p / "job.py", out=out, root=p)
    assert listing(manifest) == {"modules/job.py": ["job"]}
    assert sorted(str(x.relative_to(out)) for x in out.rglob("*")) == ["index.txt", "manifest.json", "modules",
                                                                      "modules/job.py", "names.txt"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out", "proj"]  # no staging left over


def test_an_empty_directory_is_used(tmp_path: Path) -> None:
    write(tmp_path / "proj" / "job.py")
    (tmp_path / "out").mkdir()
    bundle(tmp_path / "proj" / "job.py", out=tmp_path / "out", root=tmp_path / "proj")
    assert listing(tmp_path / "out" / "manifest.json") == {"modules/job.py": ["job"]}


def tree(directory: Path) -> dict[str, str]:
    return {str(x.relative_to(directory)): x.read_text() if x.is_file() else "/"
            for x in sorted(directory.rglob("*"))}


def test_refuses_to_replace_a_directory_that_is_not_a_bundle(tmp_path: Path) -> None:
    write(tmp_path / "proj" / "job.py")
    write(tmp_path / "precious" / "thesis.tex", "years of work")
    (tmp_path / "precious" / "figures").mkdir()
    with pytest.raises(BundleError) as info:
        bundle(tmp_path / "proj" / "job.py", out=tmp_path / "precious", root=tmp_path / "proj")
    assert str(info.value) == ("%s exists and is not an hn_modulefix bundle (it has no manifest.json); refusing "
                               "to replace it, which would delete figures/, thesis.tex" % (tmp_path / "precious"))
    assert tree(tmp_path / "precious") == {"figures": "/", "thesis.tex": "years of work"}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["precious", "proj"]


FOREIGN = {"manifest.json": '{"name": "webapp", "version": "1"}', "index.html": "<h1>shop</h1>",
           "static/app.js": "run()"}


@pytest.mark.parametrize("via", ["api", "cli"])
def test_a_foreign_manifest_is_not_a_bundle(tmp_path: Path, via: str) -> None:
    write(tmp_path / "proj" / "job.py")
    site = tmp_path / "site"
    for name, text in FOREIGN.items():
        write(site / name, text)
    expected = ("%s exists and is not an hn_modulefix bundle (manifest %s: hn_modulefix: expected format 1, got "
                "None); refusing to replace it, which would delete index.html, manifest.json, static/app.js"
                % (site, site / "manifest.json"))
    if via == "api":
        with pytest.raises(BundleError) as info:
            bundle(tmp_path / "proj" / "job.py", out=site, root=tmp_path / "proj")
        assert str(info.value) == expected
    else:
        result = run([sys.executable, "-m", "hn_modulefix", "bundle", "proj/job.py", "-o", "site"], cwd=tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", "hn-modulefix bundle: error: %s\n"
                                                                     % expected)
    assert tree(site) == {"index.html": "<h1>shop</h1>", "manifest.json": FOREIGN["manifest.json"], "static": "/",
                          "static/app.js": "run()"}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["proj", "site"]


@pytest.mark.parametrize("via", ["api", "cli"])
def test_a_file_added_to_a_bundle_is_never_deleted(tmp_path: Path, via: str) -> None:
    p = tmp_path / "proj"
    write(p / "job.py", "import helper\n")
    write(p / "helper.py")
    out = tmp_path / "out"
    bundle(p / "job.py", out=out, root=p)
    write(out / "NOTES.md", "what I changed")
    write(out / "modules" / "extra.py", "# mine")
    write(out / "modules" / "__pycache__" / "extra.cpython-311.pyc")  # the cache of a file no bundle listed
    (out / "modules" / "empty").mkdir()
    before = tree(out)
    write(p / "job.py", "\n")  # helper.py would go: a clean re-bundle would delete it
    expected = ("%s holds files its bundle does not list; refusing to replace it, which would delete NOTES.md, "
                "modules/__pycache__/extra.cpython-311.pyc, modules/empty/, modules/extra.py (move them away or "
                "bundle to another directory)" % out)
    if via == "api":
        with pytest.raises(BundleError) as info:
            bundle(p / "job.py", out=out, root=p)
        assert str(info.value) == expected
    else:
        result = run([sys.executable, "-m", "hn_modulefix", "bundle", "proj/job.py", "--root", "proj", "-o", "out"],
                     cwd=tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", "hn-modulefix bundle: error: %s\n"
                                                                     % expected)
    assert tree(out) == before
    assert "modules/helper.py" in listing(out / "manifest.json")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out", "proj"]


def test_refuses_to_replace_a_file(tmp_path: Path) -> None:
    write(tmp_path / "proj" / "job.py")
    write(tmp_path / "out", "a file")
    with pytest.raises(BundleError, match="out exists and is not a directory; refusing to replace it"):
        bundle(tmp_path / "proj" / "job.py", out=tmp_path / "out", root=tmp_path / "proj")
    assert (tmp_path / "out").read_text() == "a file"


def test_syntax_error_in_the_closure_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "job.py", "import helper\n")
    write(tmp_path / "helper.py", "ok = 1\ndef broken(:\n")
    with pytest.raises(BundleError, match=r"helper\.py:2: syntax error"):
        bundle(tmp_path / "job.py", out=tmp_path / "out", root=tmp_path)


def test_missing_or_not_a_python_file(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="missing.py: does not exist"):
        bundle(tmp_path / "missing.py", out=tmp_path / "out")
    write(tmp_path / "notes.txt")
    with pytest.raises(BundleError, match="notes.txt: not a Python source file"):
        bundle(tmp_path / "notes.txt", out=tmp_path / "out")


def test_ambiguous_short_names_are_dropped_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path / "a" / "run.py")
    write(tmp_path / "b" / "run.py")
    with pytest.warns(UserWarning, match="module name 'run' fits .* it is left out"):
        manifest = bundle(tmp_path / "a" / "run.py", tmp_path / "b" / "run.py", out=tmp_path / "out", root=tmp_path)
    assert listing(manifest) == {"modules/a/run.py": ["a.run"], "modules/b/run.py": ["b.run"]}


def test_include_ships_a_module_the_source_does_not_show(tmp_path: Path) -> None:
    write(tmp_path / "job.py", "import importlib\nimportlib.import_module(NAME)\n")
    write(tmp_path / "plugin.py")
    manifest = bundle(tmp_path / "job.py", out=tmp_path / "out", root=tmp_path, include=["plugin"])
    assert "modules/plugin.py" in listing(manifest)
    with pytest.raises(BundleError, match="'nothere': no local module of that name"):
        bundle(tmp_path / "job.py", out=tmp_path / "out", root=tmp_path, include=["nothere"])


@pytest.mark.parametrize("argv0", [["-m", "hn_modulefix"], ["-c", "from hn_modulefix._cli import main; import sys; sys.exit(main())"]])
def test_cli_prints_the_manifest_path_last(tmp_path: Path, argv0: list[str]) -> None:
    long = "a_helper_module_with_a_rather_long_name"
    write(tmp_path / "scripts" / "job.py", "import helper, %s\n" % long)
    write(tmp_path / "scripts" / "helper.py")
    write(tmp_path / "scripts" / (long + ".py"))
    result = run([sys.executable, *argv0, "bundle", "scripts/job.py", "-o", "out"], cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    # The names column is as wide as its longest entry, so the paths stay aligned.
    assert result.stdout.splitlines() == [
        "%s, scripts.%s  modules/scripts/%s.py" % (long, long, long),
        "helper, scripts.helper%s  modules/scripts/helper.py" % (" " * (2 * len(long) - 2 * len("helper"))),
        "job, scripts.job%s  modules/scripts/job.py" % (" " * (2 * len(long) - 2 * len("job"))),
        str(tmp_path / "out" / "manifest.json"),
    ]


def test_console_script_reports_errors_in_one_line(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "hn-modulefix"
    result = run([str(exe), "bundle", "nope.py", "-o", "out"], cwd=tmp_path, env=clean_env())
    assert result.returncode == 1
    assert (result.stdout, result.stderr) == ("", "hn-modulefix bundle: error: nope.py: does not exist\n")


def test_bundles_follow_the_umask(tmp_path: Path) -> None:
    # A bundle copied into an image or a shared directory must stay readable by others.
    write(tmp_path / "proj" / "scripts" / "job.py", "import helper\n")
    write(tmp_path / "proj" / "scripts" / "helper.py")
    old = os.umask(0o022)
    try:
        manifest = bundle(tmp_path / "proj" / "scripts" / "job.py", out=tmp_path / "out", root=tmp_path / "proj")
    finally:
        os.umask(old)
    modes = {str(x.relative_to(tmp_path)): stat.S_IMODE(x.stat().st_mode)
             for x in [manifest.parent, *manifest.parent.rglob("*")]}
    assert modes == {"out": 0o755, "out/manifest.json": 0o644, "out/names.txt": 0o644, "out/index.txt": 0o644,
                     "out/modules": 0o755,
                     "out/modules/scripts": 0o755, "out/modules/scripts/job.py": 0o644,
                     "out/modules/scripts/helper.py": 0o644}


def rebundle_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> tuple[Path, dict[str, str]]:
    """proj/job.py bundled into out/, then edited to `body`; returns out and its tree."""
    write(tmp_path / "proj" / "job.py", "VERSION = 1\n")
    out = tmp_path / "out"
    bundle(tmp_path / "proj" / "job.py", out=out, root=tmp_path / "proj")
    write(tmp_path / "proj" / "job.py", body)
    return out, tree(out)


def test_a_failed_move_into_place_leaves_the_old_bundle_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, before = rebundle_with(tmp_path, monkeypatch, "VERSION = 2\n")
    real_rename = os.rename

    def crash_moving_the_new_one_in(src: "os.PathLike[str] | str", dst: "os.PathLike[str] | str") -> None:
        if os.path.basename(src).startswith(".hn_modulefix-new-") and Path(dst) == out:
            raise OSError(errno.EIO, "simulated crash")
        real_rename(src, dst)

    # Where no atomic exchange exists (another system, a filesystem without it), the
    # bundle is replaced by two renames; a failure of the second puts the old one back.
    monkeypatch.setattr(_bundle, "exchange", lambda a, b: (_ for _ in ()).throw(OSError(errno.EINVAL, "no")),
                        raising=False)
    monkeypatch.setattr(os, "rename", crash_moving_the_new_one_in)
    with pytest.raises(OSError, match="simulated crash"):
        bundle(tmp_path / "proj" / "job.py", out=out, root=tmp_path / "proj")
    monkeypatch.undo()
    assert tree(out) == before and "VERSION = 1" in (out / "modules" / "job.py").read_text()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out", "proj"]  # nothing left beside it
    bundle(tmp_path / "proj" / "job.py", out=out, root=tmp_path / "proj")
    assert (out / "modules" / "job.py").read_text() == "VERSION = 2\n"


WATCH = """import os, sys
manifest = sys.argv[1]
missing = checks = 0
while not os.path.exists(sys.argv[2]):
    checks += 1
    if not os.path.exists(manifest):
        missing += 1
print(checks, missing)
"""


def test_a_rebundled_directory_is_never_missing(tmp_path: Path) -> None:
    # Another process (a worker starting) watches the manifest while the bundle is replaced 200 times.
    write(tmp_path / "proj" / "job.py", "VERSION = 0\n")
    out = tmp_path / "out"
    bundle(tmp_path / "proj" / "job.py", out=out, root=tmp_path / "proj")
    stop = tmp_path / "stop"
    watcher = subprocess.Popen([sys.executable, "-c", WATCH, str(out / "manifest.json"), str(stop)],
                               stdout=subprocess.PIPE, text=True)
    try:
        for version in range(1, 201):
            write(tmp_path / "proj" / "job.py", "VERSION = %d\n" % version)
            bundle(tmp_path / "proj" / "job.py", out=out, root=tmp_path / "proj")
    finally:
        stop.touch()
        checks, missing = map(int, watcher.communicate(timeout=60)[0].split())
    assert checks > 1000 and missing == 0, (checks, missing)
    assert (out / "modules" / "job.py").read_text() == "VERSION = 200\n"
