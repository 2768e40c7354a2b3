"""`hn_modulefix.ship()` and its cache (issue 15): the project root, a damaged entry
rewritten, eight drivers at once, pruning, `hn-modulefix cache`, and an unchanged project
shipped again without reading its sources.

The project: proj/pyproject.toml, proj/jobs/run.py (the driver: ship(), then its import of
`helper`) and proj/jobs/helper.py.  Workers are fresh interpreters of a venv with the
start-up hook that inherit the driver's environment and import `helper` through the finder.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _support import clean_env, run
from hn_modulefix import BundleError, _ship
from hn_modulefix._modal import image_layers

DRIVER = """import os, subprocess, sys
import hn_modulefix
manifest = hn_modulefix.ship()
import helper
print(manifest)
"""
# A worker the driver starts: it has the driver's environment, not its sys.path.
WORKER = "import helper; print(helper.VALUE + '|' + helper.__file__)"


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def project(tmp_path: Path, driver: str = DRIVER, marker: str = "pyproject.toml") -> Path:
    proj = tmp_path / "proj"
    if marker:
        write(proj / marker)
    write(proj / "jobs" / "run.py", driver)
    write(proj / "jobs" / "helper.py", "VALUE = 'helper 1'\n")
    return proj


def names(manifest: Path) -> dict[str, list[str]]:
    return {entry["path"]: entry["names"] for entry in json.loads(manifest.read_text())["modules"]}


def cache_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"), **extra)


def drive(python: Path, proj: Path, tmp_path: Path, cwd: Path | None = None, **env: str) -> Path:
    done = run([str(python), str(proj / "jobs" / "run.py")], cwd=cwd or proj, env=cache_env(tmp_path, **env))
    assert done.returncode == 0 and done.stderr == "", done.stderr[-3000:]
    return Path(done.stdout.splitlines()[-1])


def worker(python: Path, manifest: Path, cwd: Path) -> tuple[str, str]:
    done = run([str(python), "-c", WORKER], cwd=cwd, env=clean_env(HN_MODULEFIX_MANIFEST=str(manifest)))
    assert done.returncode == 0, done.stderr[-3000:]
    value, _, path = done.stdout.strip().partition("|")
    return value, path


def entries(tmp_path: Path) -> list[str]:
    bundles = tmp_path / "cache" / "hn_modulefix" / "bundles"
    return sorted(p.name for p in bundles.iterdir() if not p.name.startswith("."))


# -- the project root --------------------------------------------------------------------


@pytest.mark.parametrize("marker", ["pyproject.toml", "setup.py", "setup.cfg", ".git"])
def test_ship_names_modules_from_the_project_root_not_the_working_directory(
        hook_python: Path, tmp_path: Path, marker: str) -> None:
    # Run from two directories above the project: the working directory is not the root.
    proj = project(tmp_path / "work" / "src", marker=marker)
    if marker == ".git":
        (proj / ".git").unlink()
        (proj / ".git").mkdir()
    manifest = drive(hook_python, proj, tmp_path, cwd=tmp_path / "work")
    assert names(manifest) == {"modules/jobs/helper.py": ["helper", "jobs.helper"],
                               "modules/jobs/run.py": ["run", "jobs.run"]}


def test_without_a_marker_the_root_is_the_scripts_directory(hook_python: Path, tmp_path: Path) -> None:
    proj = project(tmp_path / "work", marker="")
    manifest = drive(hook_python, proj, tmp_path, cwd=tmp_path)
    assert names(manifest) == {"modules/helper.py": ["helper"], "modules/run.py": ["run"]}


def test_an_explicit_root_wins_and_a_script_outside_it_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HN_MODULEFIX_MANIFEST", "unset")
    monkeypatch.delenv("HN_MODULEFIX_MANIFEST")
    proj = project(tmp_path)
    manifest = _ship.ship(proj / "jobs" / "run.py", root=proj / "jobs")
    assert manifest is not None and names(manifest) == {"modules/helper.py": ["helper"], "modules/run.py": ["run"]}
    with pytest.raises(BundleError, match="^%s lies outside the project root %s; give the root"
                       % (proj / "jobs" / "run.py", tmp_path / "other")):
        _ship.ship(proj / "jobs" / "run.py", root=tmp_path / "other")


def test_image_layer_and_ray_runtime_env_find_the_project_root_and_follow_the_umask(tmp_path: Path) -> None:
    proj = project(tmp_path / "work" / "src")
    script = proj / "jobs" / "run.py"
    code = ("import json, os, sys\nimport modal, hn_modulefix\nfrom hn_modulefix._modal import image_layers\n"
            "image = modal.Image.debian_slim(python_version='3.11').pipe(hn_modulefix.image_layer(script=%r))\n"
            "files = [pair for layer in image_layers(image, '2025.06') for pair in layer.files]\n"
            "shipped = [remote for _, remote in files if remote.startswith('/hn_modulefix/bundle/modules/')]\n"
            "local = [os.path.dirname(path) for path, remote in files if remote == '/hn_modulefix/bundle/manifest.json']\n"
            "env = hn_modulefix.ray_runtime_env(%r)\n"
            "modes = [oct(os.stat(path).st_mode & 0o777) for path in local + env['py_modules'][:1]]\n"
            "print(json.dumps([sorted(shipped), open(env['py_modules'][0] + '/manifest.json').read(), modes]))\n"
            % (str(script), str(script)))
    done = run([sys.executable, "-c", "import os; os.umask(0o022)\n" + code], cwd=tmp_path / "work")
    assert done.returncode == 0, done.stderr[-3000:]
    shipped, manifest, modes = json.loads(done.stdout)
    assert modes == ["0o755", "0o755"]  # the bundles follow the umask: readable where they are copied to
    assert shipped == ["/hn_modulefix/bundle/modules/jobs/helper.py", "/hn_modulefix/bundle/modules/jobs/run.py"]
    assert [entry["names"] for entry in json.loads(manifest)["modules"]] == [["helper", "jobs.helper"],
                                                                            ["run", "jobs.run"]]
    assert image_layers  # the offline reading the subprocess used


# -- a damaged entry ---------------------------------------------------------------------


def shipped_helper(manifest: Path) -> Path:
    return manifest.parent / next(path for path, listed in names(manifest).items() if "helper" in listed)


def damage(entry: Path, how: str) -> None:
    shipped = shipped_helper(entry / "manifest.json")
    if how == "manifest":
        (entry / "manifest.json").write_text('{"hn_modulefix": 1, "modules": [')
    elif how == "changed":
        shipped.write_text("VALUE = 'tampered'\n")
    elif how == "missing":
        shipped.unlink()
    elif how == "stray":
        write(shipped.parent / "stray.py", "VALUE = 'stray'\n")


@pytest.mark.parametrize("how", ["manifest", "changed", "missing", "stray"])
def test_a_damaged_cache_entry_is_rewritten(hook_python: Path, tmp_path: Path, how: str) -> None:
    proj = project(tmp_path)
    manifest = drive(hook_python, proj, tmp_path)
    before = {str(p.relative_to(manifest.parent)): p.read_bytes() for p in manifest.parent.rglob("*") if p.is_file()}
    helper = shipped_helper(manifest)
    damage(manifest.parent, how)
    assert drive(hook_python, proj, tmp_path) == manifest  # the same entry, made whole again
    after = {str(p.relative_to(manifest.parent)): p.read_bytes() for p in manifest.parent.rglob("*") if p.is_file()}
    assert {k: v for k, v in after.items() if k not in (".used", ".stamp")} == \
        {k: v for k, v in before.items() if k not in (".used", ".stamp")}
    # A worker on a machine without the project gets the shipped copy, intact.
    (tmp_path / "proj").rename(tmp_path / "away")
    assert worker(hook_python, manifest, tmp_path) == ("helper 1", str(helper))


# -- eight drivers at once ---------------------------------------------------------------

RACER = """import os, subprocess, sys, time
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.001)
import hn_modulefix
import hn_modulefix._ship
WRITER = "write_into" if hasattr(hn_modulefix._ship, "write_into") else "write"  # v0.2: write
write_into = getattr(hn_modulefix._ship, WRITER)

def staged_then_wait(planned, directory, **options):
    # The worst case: every driver has its copy staged, and all put theirs in place at once.
    written = write_into(planned, directory, **options)
    open(os.path.join(sys.argv[3], "staged-%%d" %% os.getpid()), "w").close()
    while not os.path.exists(go + "-staged"):
        time.sleep(0.001)
    return written

setattr(hn_modulefix._ship, WRITER, staged_then_wait)
manifest = hn_modulefix.ship(sys.argv[2])

def worker():
    done = subprocess.run([sys.executable, "-c", %r], capture_output=True, text=True, cwd=sys.argv[3])
    assert done.returncode == 0 and done.stdout.startswith("helper 1|"), done.stderr

for _ in range(3):  # workers start while the other drivers ship
    worker()
print(manifest, flush=True)
sys.stdin.read()  # alive until the test lets it go
worker()
""" % WORKER


@pytest.mark.slow
@pytest.mark.parametrize("start", ["empty", "damaged"])
def test_eight_drivers_ship_the_same_script_at_once(hook_python: Path, tmp_path: Path, start: str) -> None:
    proj = project(tmp_path)
    racer = write(tmp_path / "racer.py", RACER)
    if start == "damaged":  # the entry these drivers would use (their main script is racer.py)
        first = tmp_path / "first"
        for path in (first / "go", first / "go-staged"):
            write(path)
        done = subprocess.run([str(hook_python), str(racer), str(first / "go"), str(proj / "jobs" / "run.py"),
                               str(first)], cwd=proj, env=cache_env(tmp_path), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        damage(Path(done.stdout.strip()).parent, "manifest")
    go = tmp_path / "go"
    drivers = [subprocess.Popen([str(hook_python), str(racer), str(go), str(proj / "jobs" / "run.py"), str(tmp_path)],
                                cwd=proj, env=cache_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
               for _ in range(8)]
    time.sleep(0.5)  # all of them waiting at the barrier
    go.touch()
    staged, since = 0, time.time()
    while staged < 8 and time.time() - since < 10:  # each one that writes a copy has staged it
        time.sleep(0.01)
        if len(list(tmp_path.glob("staged-*"))) != staged:
            staged, since = len(list(tmp_path.glob("staged-*"))), time.time()
    (tmp_path / "go-staged").touch()
    printed = [d.stdout.readline().strip() for d in drivers]  # type: ignore[union-attr]
    failed = [d.communicate(timeout=120)[1][-2000:] for d, line in zip(drivers, printed) if not line]
    assert not failed, failed
    manifests = set(printed)
    entry = Path(manifests.pop()).parent.name
    assert not manifests and entries(tmp_path) == [entry]
    bundles = tmp_path / "cache" / "hn_modulefix" / "bundles"
    assert [p.name for p in bundles.iterdir() if p.is_dir() and p.name.startswith(".")] == []  # nothing left over
    # The entry in place is held by every driver alive: pruning spares it until the last one exits.
    results = []
    for left, driver in reversed(list(enumerate(drivers))):
        pruned = cache_cli(tmp_path, "--prune", "--older-than", "0")
        assert (pruned.returncode, pruned.stdout) == (0, ""), (left, pruned.stderr)
        _, stderr = driver.communicate(timeout=120)
        results.append((driver.returncode, stderr))
    assert results == [(0, "")] * 8, [err[-2000:] for _, err in results]
    assert cache_cli(tmp_path, "--prune", "--older-than", "0").stdout == "removed %s\n" % entry


# -- pruning -----------------------------------------------------------------------------

HOLDER = """import sys, time
import hn_modulefix
print(hn_modulefix.ship(sys.argv[1]), flush=True)
sys.stdin.read()  # alive until the test closes its stdin
"""


def age(manifest: Path, days: float) -> None:
    then = time.time() - days * 86400
    os.utime(manifest.parent / ".used", (then, then))


def cache_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "hn_modulefix", "cache", *args], cwd=tmp_path, env=cache_env(tmp_path, **env))


@pytest.mark.parametrize("holder_finds", ["nothing", "the entry"])
@pytest.mark.parametrize("pruner", ["ship", "cli"])
def test_pruning_removes_old_unused_bundles_never_one_in_use(hook_python: Path, tmp_path: Path, pruner: str,
                                                             holder_finds: str) -> None:
    proj = project(tmp_path)
    other = write(tmp_path / "other" / "job.py", "import hn_modulefix\nprint(hn_modulefix.ship())\n")
    third = write(tmp_path / "third" / "job.py", "import hn_modulefix\nprint(hn_modulefix.ship())\n")
    if holder_finds == "the entry":
        drive(hook_python, proj, tmp_path)  # the holder reuses it rather than writing it
    holder = subprocess.Popen([str(hook_python), "-c", HOLDER, str(proj / "jobs" / "run.py")], cwd=tmp_path,
                              env=cache_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        held = Path(holder.stdout.readline().strip())  # type: ignore[union-attr]
        unused = Path(run([str(hook_python), str(other)], cwd=tmp_path, env=cache_env(tmp_path)).stdout.strip())
        age(held, 30)
        age(unused, 30)
        assert entries(tmp_path) == sorted([held.parent.name, unused.parent.name])
        # A third script, shipped now: its ship() prunes (default: 7 days), or not (100 days) and the CLI does.
        done = run([str(hook_python), str(third)], cwd=tmp_path,
                   env=cache_env(tmp_path, HN_MODULEFIX_CACHE_MAX_AGE="7d" if pruner == "ship" else "100d"))
        assert done.returncode == 0, done.stderr
        fresh = Path(done.stdout.strip()).parent.name
        if pruner == "cli":
            assert entries(tmp_path) == sorted([held.parent.name, unused.parent.name, fresh])
            done = cache_cli(tmp_path, "--prune")
            assert (done.returncode, done.stdout, done.stderr) == (0, "removed %s\n" % unused.parent.name, "")
        assert entries(tmp_path) == sorted([held.parent.name, fresh])
        # The holder's workers still start on its bundle, with the project gone.
        (tmp_path / "proj").rename(tmp_path / "away")
        assert worker(hook_python, held, tmp_path)[0] == "helper 1"
        (tmp_path / "away").rename(tmp_path / "proj")
    finally:
        holder.communicate(timeout=60)
    assert holder.returncode == 0
    done = cache_cli(tmp_path, "--prune", "--older-than", "7d")
    assert (done.returncode, done.stdout) == (0, "removed %s\n" % held.parent.name), done.stderr
    assert entries(tmp_path) == [fresh]


def test_cache_lists_entries_with_last_use_size_and_whether_in_use(hook_python: Path, tmp_path: Path) -> None:
    proj = project(tmp_path)
    holder = subprocess.Popen([str(hook_python), "-c", HOLDER, str(proj / "jobs" / "run.py")], cwd=tmp_path,
                              env=cache_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        held = Path(holder.stdout.readline().strip())  # type: ignore[union-attr]
        other = write(tmp_path / "other" / "job.py", "import hn_modulefix\nprint(hn_modulefix.ship())\n")
        unused = Path(run([str(hook_python), str(other)], cwd=tmp_path, env=cache_env(tmp_path)).stdout.strip())
        age(unused, 3)
        listed = cache_cli(tmp_path)
    finally:
        holder.communicate(timeout=60)
    assert (listed.returncode, listed.stderr) == (0, "")
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["BUNDLE", "LAST", "USED", "SIZE", "IN", "USE", "MODULES"]
    assert lines[-1] == str(tmp_path / "cache" / "hn_modulefix" / "bundles")
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert rows[held.parent.name][0].endswith("s") and rows[held.parent.name][4:] == ["yes", "2"]
    assert rows[unused.parent.name][:2] == ["3.0d", "ago"] and rows[unused.parent.name][4:] == ["no", "1"]
    assert rows[unused.parent.name][3] == "kB" and float(rows[unused.parent.name][2]) > 0


def test_a_bad_age_is_named(tmp_path: Path) -> None:
    done = cache_cli(tmp_path, "--prune", "--older-than", "soon")
    assert (done.returncode, done.stderr.splitlines()[-1]) == (
        2, "hn-modulefix cache: error: argument --older-than: 'soon' is not an age: give a number of days, or a "
           "number followed by s, m, h or d (e.g. 7d, 12h)")
    proj = project(tmp_path)
    done = run([sys.executable, str(proj / "jobs" / "run.py")], cwd=tmp_path,
               env=cache_env(tmp_path, HN_MODULEFIX_CACHE_MAX_AGE="-1d"))
    assert done.returncode == 1 and done.stderr.splitlines()[-1] == (
        "ValueError: HN_MODULEFIX_CACHE_MAX_AGE='-1d' is not an age: give a number of days, or a number followed "
        "by s, m, h or d (e.g. 7d, 12h)")


@pytest.mark.parametrize("before", ["none", "v0.2's"])
def test_the_cache_is_private_to_its_user(hook_python: Path, tmp_path: Path, before: str) -> None:
    proj = project(tmp_path)
    if before == "v0.2's":
        (tmp_path / "cache" / "hn_modulefix").mkdir(parents=True)
        os.chmod(tmp_path / "cache" / "hn_modulefix", 0o755)
    drive(hook_python, proj, tmp_path)
    assert stat.S_IMODE((tmp_path / "cache" / "hn_modulefix").stat().st_mode) == 0o700


# -- an unchanged project, shipped again without reading it --------------------------------


def settled() -> None:
    """File times are coarse: a file changed within the last second is read again anyway."""
    time.sleep(1.1)


@pytest.fixture
def in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HN_MODULEFIX_MANIFEST", "unset")
    monkeypatch.delenv("HN_MODULEFIX_MANIFEST")
    proj = project(tmp_path, driver="import helper\ntry:\n    import plugin\nexcept ImportError:\n    pass\n"
                                     "try:\n    import tools.extra\nexcept ImportError:\n    pass\nimport gone\n")
    write(proj / "jobs" / "gone.py", "VALUE = 'gone'\n")
    write(proj / "jobs" / "tools" / "notes.py")  # tools/ is a namespace directory
    monkeypatch.chdir(proj)
    settled()
    return proj


def shipped_files(manifest: Path | None) -> dict[str, str]:
    assert manifest is not None
    return {path: (manifest.parent / path).read_text() for path in names(manifest)}


def no_plan(*args: object, **kwargs: object) -> None:
    raise AssertionError("the project was read again")


def test_an_unchanged_project_is_shipped_again_without_reading_it(
        in_process: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = in_process / "jobs" / "run.py"
    first = _ship.ship(script)
    with monkeypatch.context() as patched:
        patched.setattr(_ship, "plan", no_plan)
        assert _ship.ship(script) == first
        assert _ship.ship(script) == first
    # Asked differently (another root), it is read.
    with pytest.raises(AssertionError, match="the project was read again"):
        with monkeypatch.context() as patched:
            patched.setattr(_ship, "plan", no_plan)
            _ship.ship(script, root=in_process / "jobs")


@pytest.mark.parametrize("change", ["edit", "edit, same size and mtime", "new file for a missing import",
                                    "new file in a namespace directory", "deleted file"])
def test_any_change_to_the_project_makes_the_new_bundle(in_process: Path, change: str) -> None:
    script = in_process / "jobs" / "run.py"
    first = shipped_files(_ship.ship(script))
    helper = in_process / "jobs" / "helper.py"
    if change == "edit":
        helper.write_text("VALUE = 'helper 2, longer'\n")
    elif change == "edit, same size and mtime":
        before = helper.stat()
        helper.write_text("VALUE = 'helper 2'\n")
        os.utime(helper, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert helper.stat().st_size == before.st_size and helper.stat().st_mtime_ns == before.st_mtime_ns
    elif change == "new file for a missing import":
        write(in_process / "jobs" / "plugin.py", "VALUE = 'plugin'\n")
    elif change == "new file in a namespace directory":
        write(in_process / "jobs" / "tools" / "extra.py", "VALUE = 'extra'\n")
    elif change == "deleted file":
        (in_process / "jobs" / "gone.py").unlink()
    expected = dict(first)
    if change.startswith("edit"):
        expected["modules/jobs/helper.py"] = helper.read_text()
    elif change == "new file for a missing import":
        expected["modules/jobs/plugin.py"] = "VALUE = 'plugin'\n"
    elif change == "new file in a namespace directory":
        expected["modules/jobs/tools/extra.py"] = "VALUE = 'extra'\n"
    else:
        del expected["modules/jobs/gone.py"]
    with pytest.warns(UserWarning, match="processes started from now on get"):
        assert shipped_files(_ship.ship(script)) == expected != first


def test_a_file_changed_while_the_project_is_read_is_read_again(
        in_process: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An editor saves helper.py just after the bundler read it: the bundle has the old bytes,
    # the file's stat the new ones; the next ship() must not take that stat for the old bytes.
    script = in_process / "jobs" / "run.py"
    helper = in_process / "jobs" / "helper.py"
    real_plan = _ship.plan

    def plan_then_save(*args: object, **kwargs: object) -> object:
        planned = real_plan(*args, **kwargs)  # type: ignore[arg-type]
        helper.write_text("VALUE = 'helper 2'\n")
        return planned

    monkeypatch.setattr(_ship, "plan", plan_then_save)
    assert shipped_files(_ship.ship(script))["modules/jobs/helper.py"] == "VALUE = 'helper 1'\n"
    monkeypatch.setattr(_ship, "plan", real_plan)
    with pytest.warns(UserWarning, match="processes started from now on get"):
        assert shipped_files(_ship.ship(script))["modules/jobs/helper.py"] == "VALUE = 'helper 2'\n"
