"""The start-up hook, in fresh interpreters: a venv where the wheel was pip-installed (the
.pth really runs) and the top-level sitecustomize.py put on PYTHONPATH."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from _support import REPO, clean_env, make_venv, run, venv_site
from hn_modulefix import bundle
from hn_modulefix._hook import stage
from hn_modulefix._manifest import dump_index, load

# The finder just ahead of the path finder (where the hook puts it), and what is loaded.
SHOW = ("import sys; from importlib.machinery import PathFinder as P; f = sys.meta_path[sys.meta_path.index(P) - 1]; "
        "print(f.__name__ if hasattr(f, '__file__') else 'none', "
        "sorted(m for m in sys.modules if 'hn_modulefix' in m or m == 'json'))")


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    project = tmp_path / "proj"
    (project / "scripts").mkdir(parents=True)
    (project / "scripts" / "job.py").write_text("import dataclasses\n\n@dataclasses.dataclass\nclass Item:\n    x: int\n")
    return bundle(project / "scripts" / "job.py", out=tmp_path / "bundle", root=project)


def test_inert_without_a_manifest(hook_python: Path, tmp_path: Path) -> None:
    result = run([str(hook_python), "-c", SHOW], cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "none []\n", "")


def test_active_hook_registers_the_finder_and_reads_nothing(hook_python: Path, manifest: Path, tmp_path: Path) -> None:
    result = run([str(hook_python), "-c", SHOW], cwd=tmp_path, env=clean_env(HN_MODULEFIX_MANIFEST=str(manifest)))
    assert (result.returncode, result.stdout, result.stderr) == (0, "_hn_modulefix_boot ['_hn_modulefix_boot']\n", "")


def wiped(python: Path, code: str, cwd: Path, env: dict[str, str]) -> set[str]:
    """The modules CPython still found alive after tearing modules down at exit, and so
    cleared name by name (`python -v` says "wiping"): the costly part of a teardown."""
    result = run([str(python), "-v", "-c", code], cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return {line.split()[-1] for line in result.stderr.splitlines() if line.startswith("# cleanup[3] wiping ")}


def test_exit_wipes_no_module_a_bare_start_does_not(hook_python: Path, manifest: Path, tmp_path: Path) -> None:
    # The finder stays on sys.meta_path, which CPython keeps alive through teardown: what
    # its globals reach is wiped name by name (with `os` in them, about 1 % of a bare
    # `python -c pass`). Only the boot module itself may be.
    active = clean_env(HN_MODULEFIX_MANIFEST=str(manifest))
    bare = wiped(hook_python, "pass", tmp_path, clean_env())
    assert "_hn_modulefix_boot" not in bare
    assert wiped(hook_python, "pass", tmp_path, active) - bare == {"_hn_modulefix_boot"}
    # Once the real finder has loaded (it reaches json, the manifest, the modules it built),
    # the finder leaves sys.meta_path at exit: importing the script through it wipes what
    # importing it from its own directory does, nothing more.
    plain = wiped(hook_python, "import job", tmp_path / "proj" / "scripts", clean_env())
    assert wiped(hook_python, "import job", tmp_path, active) == plain


def test_subprocess_nobody_configured_imports_listed_names(hook_python: Path, manifest: Path, tmp_path: Path) -> None:
    # The driver's own file exists on this machine: it is the one executed.
    code = ("import job, scripts.job, sys; print(job.__name__, job is scripts.job, job.__file__ == %r, job.Item(2))"
            % str(tmp_path / "proj" / "scripts" / "job.py"))
    result = run([str(hook_python), "-c", code], cwd=tmp_path, env=clean_env(HN_MODULEFIX_MANIFEST=str(manifest)))
    assert (result.returncode, result.stdout, result.stderr) == (0, "job True True Item(x=2)\n", "")
    red = run([str(hook_python), "-c", code], cwd=tmp_path)
    assert red.returncode == 1 and red.stderr.endswith("ModuleNotFoundError: No module named 'job'\n")


@pytest.mark.parametrize("content, reason", [
    (None, "cannot read manifest"),
    ("{", "is not valid JSON"),
    ('{"hn_modulefix": 1, "modules": [{"names": ["../x"]}]}', "'../x' is not a valid module name"),
])
def test_bad_manifest_never_breaks_startup_and_says_so_once(hook_python: Path, tmp_path: Path,
                                                             content: str | None, reason: str) -> None:
    path = tmp_path / "manifest.json"
    if content is not None:
        path.write_text(content)
    env = clean_env(HN_MODULEFIX_MANIFEST=str(path))
    quiet = run([str(hook_python), "-c", "pass"], cwd=tmp_path, env=env)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")  # nothing is read at start
    probe = ("import importlib\nfor name in ('first_missing', 'second_missing'):\n"
             "    try: importlib.import_module(name)\n    except ImportError as e: print(type(e).__name__)\n")
    result = run([str(hook_python), "-c", probe], cwd=tmp_path, env=env)
    assert result.returncode == 0
    assert result.stdout == "ModuleNotFoundError\nModuleNotFoundError\n"
    (line,) = result.stderr.splitlines()
    assert line.startswith("hn_modulefix: finder disabled: ") and reason in line and str(path) in line


def test_debug_shows_the_traceback(hook_python: Path, tmp_path: Path) -> None:
    env = clean_env(HN_MODULEFIX_MANIFEST=str(tmp_path / "missing.json"), HN_MODULEFIX_DEBUG="1")
    result = run([str(hook_python), "-c", "import importlib.util; importlib.util.find_spec('x_missing')"],
                 cwd=tmp_path, env=env)
    assert result.returncode == 0
    assert result.stderr.startswith("hn_modulefix: finder disabled: cannot read manifest")
    assert "Traceback (most recent call last)" in result.stderr and "FileNotFoundError" in result.stderr


def test_package_missing_from_the_install(wheel: Path, manifest: Path, tmp_path: Path) -> None:
    python = make_venv(tmp_path / "broken", wheel=wheel)
    shutil.rmtree(venv_site(tmp_path / "broken") / "hn_modulefix")
    env = clean_env(HN_MODULEFIX_MANIFEST=str(manifest))
    assert run([str(python), "-c", "pass"], cwd=tmp_path, env=env).stderr == ""
    result = run([str(python), "-c", "import job"], cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == "hn_modulefix: finder disabled: No module named 'hn_modulefix'"
    assert result.stderr.splitlines()[-1] == "ModuleNotFoundError: No module named 'job'"


def test_boot_module_missing_still_starts(wheel: Path, manifest: Path, tmp_path: Path) -> None:
    # The one case the hook cannot report itself: `site` prints its own message.
    python = make_venv(tmp_path / "broken", wheel=wheel)
    (venv_site(tmp_path / "broken") / "_hn_modulefix_boot.py").unlink()
    result = run([str(python), "-c", "print('started')"], cwd=tmp_path,
                 env=clean_env(HN_MODULEFIX_MANIFEST=str(manifest)))
    assert result.returncode == 0 and result.stdout == "started\n"
    assert "hn_modulefix.pth" in result.stderr and "No module named '_hn_modulefix_boot'" in result.stderr


def test_no_site_flag_disables_the_hook(hook_python: Path, manifest: Path, tmp_path: Path) -> None:
    result = run([str(hook_python), "-S", "-c", SHOW], cwd=tmp_path, env=clean_env(HN_MODULEFIX_MANIFEST=str(manifest)))
    assert (result.returncode, result.stdout) == (0, "none []\n")


def hook_dir(tmp_path: Path) -> Path:
    """sitecustomize.py with the boot module and package beside it, as Ray ships them."""
    target = tmp_path / "hookdir"
    stage(str(target), pth=False, sitecustomize=True)
    return target


@pytest.mark.parametrize("active", [True, False])
def test_sitecustomize_on_pythonpath_installs_and_runs_the_next_one(tmp_path: Path, manifest: Path,
                                                                   active: bool) -> None:
    other = tmp_path / "pkg"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import sys\nprint('next sitecustomize ran')\nsys.path.append('/__deps')\n")
    # A venv without hn_modulefix: only the PYTHONPATH hook can be at work.
    python = make_venv(tmp_path / "plain")
    env = clean_env(PYTHONPATH="%s:%s" % (hook_dir(tmp_path), other))
    if active:
        env["HN_MODULEFIX_MANIFEST"] = str(manifest)
    code = "import sys; print(sys.path[-1]); import job; print(job.Item(1))"
    result = run([str(python), "-c", code], cwd=tmp_path, env=env)
    if active:
        assert (result.returncode, result.stdout, result.stderr) == (0, "next sitecustomize ran\n/__deps\nItem(x=1)\n", "")
    else:
        assert result.returncode == 1 and result.stdout == "next sitecustomize ran\n/__deps\n"
        assert result.stderr.endswith("ModuleNotFoundError: No module named 'job'\n")


def test_install_hook_into_another_interpreter(hook_python: Path, manifest: Path, tmp_path: Path) -> None:
    # What an image build runs: hn_modulefix from a wheel install puts the hook into the
    # site-packages of an interpreter that has no hn_modulefix, and the hook then works there.
    plain = make_venv(tmp_path / "plain")
    site = venv_site(tmp_path / "plain")
    result = run([str(hook_python), "-m", "hn_modulefix", "install-hook", "--site-dir", str(site)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(site / "hn_modulefix"), str(site / "_hn_modulefix_boot.py"),
                                          str(site / "hn_modulefix.pth")]
    assert (site / "hn_modulefix.pth").read_text() == (REPO / "src" / "hn_modulefix.pth").read_text()
    assert list((site / "__pycache__").glob("_hn_modulefix_boot.*.pyc"))  # compiled: no compile at every start
    code = "import job; print(job.Item(5))"
    hooked = run([str(plain), "-c", code], cwd=tmp_path, env=clean_env(HN_MODULEFIX_MANIFEST=str(manifest)))
    assert (hooked.returncode, hooked.stdout, hooked.stderr) == (0, "Item(x=5)\n", "")
    # --start adds the PEP 829 entry point (which Python 3.15+ runs instead of the .pth's
    # import line); installing again without it takes it away.
    result = run([str(hook_python), "-m", "hn_modulefix", "install-hook", "--site-dir", str(site), "--start"],
                 cwd=tmp_path)
    assert result.stdout.splitlines()[2:] == [str(site / "hn_modulefix.start"), str(site / "hn_modulefix.pth")]
    assert (site / "hn_modulefix.start").read_text().splitlines()[1:] == ["_hn_modulefix_boot:start"]
    result = run([str(hook_python), "-m", "hn_modulefix", "install-hook", "--site-dir", str(site)], cwd=tmp_path)
    assert result.returncode == 0 and not (site / "hn_modulefix.start").exists(), result.stderr


def test_the_hook_run_again_adds_no_second_finder(hook_python: Path, manifest: Path, tmp_path: Path) -> None:
    # The .pth ran start() already; sitecustomize or a second site pass may run it again.
    code = ("import sys, _hn_modulefix_boot as boot\nboot.start()\nboot.start()\n"
            "print(sum(getattr(f, '_hn_modulefix_finder', False) for f in sys.meta_path))\n")
    result = run([str(hook_python), "-c", code], cwd=tmp_path, env=clean_env(HN_MODULEFIX_MANIFEST=str(manifest)))
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")


def test_names_txt_that_disagrees_with_the_manifest_disables_the_finder(hook_python: Path, manifest: Path,
                                                                        tmp_path: Path) -> None:
    names = manifest.parent / "names.txt"
    assert names.read_text() == "job\nscripts\nscripts.job\n"
    names.write_text("job\n")
    result = run([str(hook_python), "-c", "import job"], cwd=tmp_path,
                 env=clean_env(HN_MODULEFIX_MANIFEST=str(manifest)))
    assert result.returncode == 1 and result.stderr.startswith(
        "hn_modulefix: finder disabled: names.txt beside %s does not list the names the manifest does: re-run "
        "`hn-modulefix bundle`\n" % manifest)


LAZY = """import first, _hn_modulefix_boot as boot
print(first.WHO, type(boot._real.manifest).__name__)
try:
    import second
except ImportError as exc:
    print(exc)
"""


def first_and_second(tmp_path: Path) -> tuple[Path, Path]:
    """A project whose job.py imports `first` and `second`, bundled: the project and manifest."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "first.py").write_text("WHO = 'first'\n")
    (project / "second.py").write_text("WHO = 'second'\n")
    (project / "job.py").write_text("import first, second\n")
    return project, bundle(project / "job.py", out=tmp_path / "bundle", root=project)


def test_the_hook_checks_only_the_entries_a_process_imports(hook_python: Path, tmp_path: Path) -> None:
    project, manifest = first_and_second(tmp_path)
    project.rename(tmp_path / "away")  # the shipped copies: nothing on sys.path holds these names
    # A malformed entry for `second` in an index that matches it, as if the bundler wrote both.
    sources = load(str(manifest)).sources
    position = [source.names for source in sources].index(("second",))
    manifest.write_text(manifest.read_text().replace(sources[position].sha256, "not-a-digest"))
    index = dump_index(manifest.read_bytes(), (manifest.parent / "names.txt").read_bytes())
    assert index is not None
    (manifest.parent / "index.txt").write_text(index)
    env = clean_env(HN_MODULEFIX_MANIFEST=str(manifest))
    result = run([str(hook_python), "-c", LAZY], cwd=tmp_path, env=env)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == ("first LazyManifest\nhn_modulefix cannot rebuild module 'second' (bundle %s): manifest "
                             "%s: modules[%d].sha256: expected 64 lowercase hex digits, got 'not-a-digest'\n"
                             % (manifest, manifest, position))
    # Read whole (load()), the manifest is refused, and with it every name.
    (manifest.parent / "index.txt").unlink()
    red = run([str(hook_python), "-c", LAZY], cwd=tmp_path, env=env)
    assert red.returncode == 1 and red.stderr.startswith(
        "hn_modulefix: finder disabled: manifest %s: modules[%d].sha256: expected 64" % (manifest, position))
    assert red.stderr.endswith("ModuleNotFoundError: No module named 'first'\n")


def test_editable_install_ships_the_pth_alone(tmp_path: Path, manifest: Path) -> None:
    # As the README's command installs it: pip fetches the build backend for an isolated build.
    python = make_venv(tmp_path / "editable")
    result = run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "-e", str(REPO)],
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    site = venv_site(tmp_path / "editable")
    assert (site / "hn_modulefix.pth").read_text() == (REPO / "src" / "hn_modulefix.pth").read_text()
    assert not (site / "hn_modulefix.start").exists()  # see test_pythons: the .pth runs on every Python
    hooked = run([str(python), "-c", "import job; print(job.Item(7))"], cwd=tmp_path,
                 env=clean_env(HN_MODULEFIX_MANIFEST=str(manifest)))
    assert (hooked.returncode, hooked.stdout, hooked.stderr) == (0, "Item(x=7)\n", "")


# Two threads look up two different listed names at once while the first one's lookup loads
# the real finder (slowed down here): the other waits for that finder, never loads a second.
# They ask the hook directly, as code that walks sys.meta_path does: importlib's own imports
# are serialized around each find_spec call by its global import lock.
RACE_TO_LOAD = """import sys, threading, time
import _hn_modulefix_boot as boot
from hn_modulefix._finder import ManifestFinder
real = ManifestFinder.from_path.__func__
loads = []

def slow_load(cls, path, *names):
    loads.append(path)
    time.sleep(0.5)
    return real(cls, path, *names)

ManifestFinder.from_path = classmethod(slow_load)
barrier = threading.Barrier(2)
got = {}

def load(name):
    barrier.wait()
    spec = boot.find_spec(name)
    got[name] = spec.origin.rpartition("/")[2] if spec is not None else None

threads = [threading.Thread(target=load, args=(name,)) for name in ("first", "second")]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(len(loads), got["first"], got["second"])
"""


def test_threads_asking_for_two_names_at_once_load_the_finder_once(hook_python: Path, tmp_path: Path) -> None:
    _, manifest = first_and_second(tmp_path)
    result = run([str(hook_python), "-c", RACE_TO_LOAD], cwd=tmp_path,
                 env=clean_env(HN_MODULEFIX_MANIFEST=str(manifest)))
    assert (result.returncode, result.stdout, result.stderr) == (0, "1 first.py second.py\n", "")


def test_a_bundle_without_names_txt_answers_the_manifests_names(hook_python: Path, manifest: Path,
                                                                 tmp_path: Path) -> None:
    (manifest.parent / "names.txt").unlink()  # a bundle made by hand, or by an older version
    result = run([str(hook_python), "-c", "import scripts.job, job; print(job is scripts.job, job.Item(3))"],
                 cwd=tmp_path, env=clean_env(HN_MODULEFIX_MANIFEST=str(manifest)))
    assert (result.returncode, result.stdout, result.stderr) == (0, "True Item(x=3)\n", "")


def test_a_pythonpath_reference_names_the_first_entry_that_holds_it(hook_python: Path, tmp_path: Path) -> None:
    entries = []
    for who in ("first", "second"):
        project = tmp_path / who
        project.mkdir()
        (project / "job.py").write_text("WHO = %r\n" % who)
        bundle(project / "job.py", out=tmp_path / ("site-" + who) / "hn_modulefix_bundle_x", root=project)
        entries.append(str(tmp_path / ("site-" + who)))
    code = "import job; print(job.WHO)"
    env = clean_env(HN_MODULEFIX_MANIFEST="pythonpath:hn_modulefix_bundle_x/manifest.json")
    for order in (entries, entries[::-1]):
        result = run([str(hook_python), "-c", code], cwd=tmp_path, env=dict(env, PYTHONPATH=":".join(order)))
        assert (result.returncode, result.stdout, result.stderr) == (0, "%s\n" % order[0].rpartition("-")[2], "")
