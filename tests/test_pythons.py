"""The start-up hook, the bundle, the finder and a worker pool on every Python the suite can
run: the host's and, from Debian chroots the suite builds (see _pythons.py), 3.9, 3.13, 3.14
and 3.15. Each runs in a fresh venv where the wheel was pip-installed by that Python's pip.
3.10 and 3.12 are in no current Debian suite and are not run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import _pythons
from _pythons import Python
from _support import REPO
from hn_modulefix._hook import PTH_NAME, START_NAME, hook_that_runs

# The hn_modulefix finders on sys.meta_path and the hn_modulefix modules loaded (and json,
# which the start-up path must not load).
SHOW = ("import sys; print([f.__name__ for f in sys.meta_path if getattr(f, '_hn_modulefix_finder', False)], "
        "sorted(m for m in sys.modules if 'hn_modulefix' in m or m == 'json'))")
# Both names of the bundled script: one module object, its classes shared, executed once.
ALIASES = """
import sys
import jobs, user.jobs
assert jobs is user.jobs is sys.modules['jobs'] is sys.modules['user.jobs'] and jobs.__name__ == 'jobs'
result = jobs.work(user.jobs.Job(user.jobs.Kind.CUBE, 2))
assert type(result) is user.jobs.Result and result.job.kind is jobs.Kind.CUBE
print(jobs.__file__, result.answer)
"""
# A listed module that cannot be rebuilt: asked twice, it fails twice and leaves nothing behind.
BROKEN = """
import sys
for _ in range(2):
    try:
        import user.jobs
    except ImportError as exc:
        print(type(exc).__name__, exc.name, str(exc).splitlines()[0])
        print([m for m in ('jobs', 'user.jobs') if m in sys.modules])
"""


def bundle_scenario(python: Python, tmp_path: Path) -> tuple[Path, Path]:
    """tests/scenarios copied to tmp_path, its user/jobs.py bundled by `python`'s CLI (names
    `jobs` and `user.jobs`); the copy and the manifest."""
    scenario = tmp_path / "scenario"
    shutil.copytree(REPO / "tests" / "scenarios", scenario, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = tmp_path / "bundle" / "manifest.json"
    done = python.run(["python", "-m", "hn_modulefix", "bundle", python.path(scenario / "user" / "jobs.py"),
                       "--root", python.path(scenario), "-o", python.path(manifest.parent)], cwd=scenario)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["jobs, user.jobs  modules/user/jobs.py",
                                        python.path(manifest)]
    return scenario, manifest


def test_the_wheels_hook_file_runs_once_silently_and_is_inert_without_a_manifest(interpreter: Python,
                                                                                 tmp_path: Path) -> None:
    _, manifest = bundle_scenario(interpreter, tmp_path)
    site = interpreter.site()
    shipped = {p.name for p in site.iterdir() if p.suffix in (".pth", ".start") and "hn_modulefix" in p.name}
    # The wheel ships the .pth alone: any .start file costs Python 3.15-3.17 an import of pkgutil at every
    # start. On a Python that would not run it (3.18 ignores import lines, PEP 829) this fails: ship the .start.
    assert shipped == {"hn_modulefix.pth"}
    assert hook_that_runs(shipped, interpreter.version_info) == "hn_modulefix.pth", \
        "Python %s runs no hook file the wheel ships: ship hn_modulefix.start in the wheel" % interpreter.version
    env = {"HN_MODULEFIX_MANIFEST": interpreter.path(manifest)}
    verbose = interpreter.run(["python", "-v", "-c", SHOW], cwd=tmp_path, env=env)
    # One finder, and nothing else loaded: Debian's own sitecustomize imports the absent
    # apport_python_hook at every start, a miss the finder answers from names.txt alone.
    assert (verbose.returncode, verbose.stdout) == (0, "['_hn_modulefix_boot'] ['_hn_modulefix_boot']\n"), \
        verbose.stdout + verbose.stderr[-3000:]
    if interpreter.root is not None:  # a Debian chroot: its sitecustomize is there, and ran
        assert "'sitecustomize'" in interpreter.run(["python", "-c", "import sys; print(sorted(sys.modules))"],
                                                    cwd=tmp_path).stdout
    pth = interpreter.path(site / "hn_modulefix.pth")
    trace = [line for line in verbose.stderr.splitlines() if pth in line]
    if interpreter.version_info >= (3, 15):
        # PEP 829: the import line still runs, once, and says it is deprecated only under -v.
        assert trace[-2:] == ["import lines in %s are deprecated, use entry points in a %s file instead."
                              % (pth, pth[:-len(".pth")] + ".start"),
                              "Exec'ing from %s: %s" % (pth, (REPO / "src" / PTH_NAME).read_text().splitlines()[1])]
        assert sum(line.startswith("Exec'ing") for line in trace) == 1, trace
    # At default verbosity the hook is silent, manifest set or not, on every Python.
    quiet = interpreter.run(["python", "-c", SHOW], cwd=tmp_path, env=env)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "['_hn_modulefix_boot'] ['_hn_modulefix_boot']\n", "")
    inert = interpreter.run(["python", "-c", SHOW], cwd=tmp_path)
    assert (inert.returncode, inert.stdout, inert.stderr) == (0, "[] []\n", "")
    # Start-up cost, counted in modules rather than timed: with a manifest the hook loads its
    # module alone (not even the built-in atexit), without one nothing; never pkgutil, which any .start
    # file costs Python 3.15-3.17.
    listed = "import sys; print(' '.join(sorted(sys.modules)))"
    loaded = {key: set(interpreter.run(["python", "-c", listed], cwd=tmp_path, env=e).stdout.split())
              for key, e in (("set", env), ("unset", {}))}
    assert loaded["set"] - loaded["unset"] == {"_hn_modulefix_boot"} and "pkgutil" not in loaded["set"], loaded


def test_finder_rebuilds_one_module_for_all_names_and_fails_cleanly(interpreter: Python, tmp_path: Path) -> None:
    scenario, manifest = bundle_scenario(interpreter, tmp_path)
    env = {"HN_MODULEFIX_MANIFEST": interpreter.path(manifest)}
    shutil.rmtree(scenario / "user")  # only the bundle has the script now
    red = interpreter.run(["python", "-c", ALIASES], cwd=tmp_path)
    assert red.returncode == 1 and red.stderr.endswith("ModuleNotFoundError: No module named 'jobs'\n"), red.stderr
    green = interpreter.run(["python", "-c", ALIASES], cwd=tmp_path, env=env)
    shipped = manifest.parent / "modules" / "user" / "jobs.py"
    assert (green.returncode, green.stdout, green.stderr) == (0, "%s 8\n" % interpreter.path(shipped), "")

    shipped.write_text(shipped.read_text() + "\n# edited after bundling\n")
    broken = interpreter.run(["python", "-c", BROKEN], cwd=tmp_path, env=env)
    assert broken.returncode == 0, broken.stderr
    lines = broken.stdout.splitlines()
    assert len(lines) == 4 and lines[0::2] == [lines[0]] * 2 and lines[1::2] == ["[]"] * 2, lines
    assert lines[0].startswith("ImportError user.jobs hn_modulefix cannot rebuild module 'user.jobs'")
    assert "sha256 mismatch" in lines[0] and interpreter.path(shipped) in lines[0]


def test_process_pool_workers_fail_without_and_work_with_the_bundle(interpreter: Python, tmp_path: Path) -> None:
    scenario, manifest = bundle_scenario(interpreter, tmp_path)
    # A ProcessPoolExecutor (a lost task fails it at once; a multiprocessing.Pool would wait for
    # its timeout); forkserver is the default start method on Linux from 3.14.
    method = "forkserver" if interpreter.version_info >= (3, 14) else "spawn"
    driver = ["python", interpreter.path(scenario / "pool_driver.py"), "executor", method]
    red = interpreter.run(driver, cwd=tmp_path, timeout=120)
    assert red.returncode != 0 and "No module named 'jobs'" in red.stderr, red.stderr[-2000:]
    green = interpreter.run(driver, cwd=tmp_path, env={"HN_MODULEFIX_MANIFEST": interpreter.path(manifest)},
                            timeout=120)
    assert green.returncode == 0, green.stderr[-2000:]
    results, pids = green.stdout.splitlines()
    assert results == "[('square', 3, 9), ('cube', 2, 8), ('square', 5, 25)]"
    found = json.loads(pids)
    assert found["workers"] and found["driver"] not in found["workers"], found  # done in workers


def test_interpreter_starts_with_the_boot_module_missing(interpreter: Python, wheel: Path, tmp_path: Path) -> None:
    # A broken install: `site` reports the .pth line it could not run, and the interpreter starts.
    _, manifest = bundle_scenario(interpreter, tmp_path)
    broken = _pythons.venv_python(interpreter.version, tmp_path / "broken", interpreter.workdir, wheel)
    (broken.site() / "_hn_modulefix_boot.py").unlink()
    result = broken.run(["python", "-c", "print('started')"], cwd=tmp_path,
                        env={"HN_MODULEFIX_MANIFEST": broken.path(manifest)})
    assert (result.returncode, result.stdout) == (0, "started\n"), result.stderr
    assert "hn_modulefix.pth" in result.stderr and "No module named '_hn_modulefix_boot'" in result.stderr, result.stderr


def test_doctor_names_the_hook_file_this_python_runs(interpreter: Python, wheel: Path, tmp_path: Path) -> None:
    _, manifest = bundle_scenario(interpreter, tmp_path)
    env = {"HN_MODULEFIX_MANIFEST": interpreter.path(manifest)}
    done = interpreter.run(["python", "-m", "hn_modulefix", "doctor"], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[2] == "%-14s %s" % (".pth hook", interpreter.path(interpreter.site() / PTH_NAME))
    assert done.stdout.splitlines()[4].startswith("finder         installed at start-up by ")
    assert done.stdout.splitlines()[-1] == "no problems found"

    # `install-hook --start` adds the PEP 829 entry point, which 3.15+ runs instead of the .pth's import line.
    started = _pythons.venv_python(interpreter.version, tmp_path / "started", interpreter.workdir, wheel)
    installed = started.run(["python", "-m", "hn_modulefix", "install-hook", "--start"], cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    site = started.site()
    assert installed.stdout.splitlines()[-2:] == [started.path(site / START_NAME), started.path(site / PTH_NAME)]
    done = started.run(["python", "-m", "hn_modulefix", "doctor"], cwd=tmp_path, env=env)
    runs = START_NAME if interpreter.version_info >= (3, 15) else PTH_NAME
    assert done.stdout.splitlines()[2] == "%-14s %s" % (runs[runs.index("."):] + " hook", started.path(site / runs))
    assert (done.returncode, done.stdout.splitlines()[-1]) == (0, "no problems found"), done.stdout
    verbose = started.run(["python", "-v", "-c", SHOW], cwd=tmp_path, env=env)
    assert verbose.stdout == "['_hn_modulefix_boot'] ['_hn_modulefix_boot']\n", verbose.stderr[-3000:]
    if interpreter.version_info >= (3, 15):
        assert "Executing entry point: _hn_modulefix_boot:start from %s" % started.path(site / START_NAME) \
            in verbose.stderr.splitlines()

    # Only a .start file: before 3.15 no hook runs, and doctor says so.
    (site / PTH_NAME).unlink()
    done = started.run(["python", "-m", "hn_modulefix", "doctor"], cwd=tmp_path, env=env)
    if interpreter.version_info >= (3, 15):
        assert done.returncode == 0, done.stdout
    else:
        assert done.returncode == 1 and done.stdout.splitlines()[2] == (
            "hook file      %s: not run, Python %s runs no .start file (PEP 829 entry points start with 3.15)"
            % (started.path(site / START_NAME), interpreter.version))
        assert ("  no start-up hook runs in this Python: Python %s runs no .start file (PEP 829 entry points start "
                "with 3.15); run `python -m hn_modulefix install-hook` (the .pth import line), or pip install "
                "hn_modulefix" % interpreter.version) in done.stdout.splitlines()


def test_which_hook_file_runs_follows_pep_829() -> None:
    both = {PTH_NAME, START_NAME}
    assert [hook_that_runs(files, version) for files, version in [
        ({PTH_NAME}, (3, 9)), ({PTH_NAME}, (3, 15)), ({PTH_NAME}, (3, 17)), ({PTH_NAME}, (3, 18)),
        (both, (3, 14)), (both, (3, 15)), (both, (3, 18)), ({START_NAME}, (3, 14)), (set(), (3, 15)),
    ]] == [PTH_NAME, PTH_NAME, PTH_NAME, None, PTH_NAME, START_NAME, START_NAME, None, None]
