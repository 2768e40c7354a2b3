"""Every process gets the driver's module for every listed name (issue 9), proven in real
Daft UDF worker processes (a string-typed process UDF: another pid, asserted).

The scenario (tests/scenarios/textjobs): jobs/pipeline.py, imported the way `modal run
jobs/pipeline.py` imports it, uses its sibling package jobs/textkit and reads labels.json
beside itself through `__file__`.  Each red run is the same scenario without hn_modulefix.
"""

from __future__ import annotations

import importlib.util
import json
import marshal
import shutil
from pathlib import Path

import pytest

from _support import REPO, clean_env, run

SCENARIO = REPO / "tests" / "scenarios" / "textjobs"
EXPECTED = [{"label": "A", "span": "[0:5]", "textkit": "jobs/textkit 1"},
            {"label": "B", "span": "[0:5]", "textkit": "jobs/textkit 1"}]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    target = tmp_path / "repo"
    shutil.copytree(SCENARIO, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def bundle_jobs(python: Path, repo: Path, out: Path) -> str:
    made = run([str(python), "-m", "hn_modulefix", "bundle", "jobs/pipeline.py", "-o", str(out)], cwd=repo)
    assert made.returncode == 0, made.stderr
    return made.stdout.splitlines()[-1]


def drive(python: Path, repo: Path, cwd: Path, **env: str) -> tuple[int, object, str]:
    done = run([str(python), str(repo / "driver.py")], cwd=cwd, env=clean_env(**env))
    if done.returncode != 0:
        return done.returncode, None, done.stderr.replace("\\'", "'")
    data = json.loads(done.stdout.splitlines()[-1])
    # A worker result must come from a worker process.
    assert {row["pid"] for row in data["rows"]} and all(row["pid"] != data["driver"] for row in data["rows"])
    return 0, [{k: v for k, v in row.items() if k != "pid"} for row in data["rows"]], done.stderr


def ship_in_script(repo: Path) -> None:
    """jobs/pipeline.py calls hn_modulefix.ship() first, as the README says."""
    script = repo / "jobs" / "pipeline.py"
    script.write_text("import hn_modulefix\nhn_modulefix.ship()\n" + script.read_text())


def test_the_script_run_as_main_is_the_reference(hook_python: Path, repo: Path) -> None:
    done = run([str(hook_python), "pipeline.py"], cwd=repo / "jobs")
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout)
    assert all(row.pop("pid") != data["driver"] for row in data["rows"]) and data["rows"] == EXPECTED


def test_a_namespace_directory_in_the_workers_cwd_does_not_shadow(hook_python: Path, repo: Path,
                                                                   tmp_path: Path) -> None:
    # repo/textkit/ is a data folder; Daft's worker runs in the repo root with it on sys.path.
    assert (repo / "textkit").is_dir() and not (repo / "textkit" / "__init__.py").exists()
    red = drive(hook_python, repo, cwd=repo)
    assert red[0] != 0 and "ModuleNotFoundError: No module named 'textkit.spans'" in red[2], red[2][-2000:]
    manifest = bundle_jobs(hook_python, repo, tmp_path / "bundle")
    assert drive(hook_python, repo, cwd=repo, HN_MODULEFIX_MANIFEST=manifest)[:2] == (0, EXPECTED)


def test_a_same_named_module_elsewhere_on_the_path_does_not_shadow(hook_python: Path, repo: Path,
                                                                    tmp_path: Path) -> None:
    site2 = tmp_path / "site2" / "textkit"
    site2.mkdir(parents=True)
    (site2 / "__init__.py").write_text("VERSION = 'site2'\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    red = drive(hook_python, repo, cwd=elsewhere, PYTHONPATH=str(site2.parent))
    assert red[0] != 0 and "ModuleNotFoundError: No module named 'textkit.spans'" in red[2], red[2][-2000:]
    manifest = bundle_jobs(hook_python, repo, tmp_path / "bundle")
    green = drive(hook_python, repo, cwd=elsewhere, PYTHONPATH=str(site2.parent), HN_MODULEFIX_MANIFEST=manifest)
    assert green[:2] == (0, EXPECTED)


def test_files_read_through_file_are_found_beside_the_drivers_script(hook_python: Path, repo: Path,
                                                                      tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    red = drive(hook_python, repo, cwd=elsewhere)
    assert red[0] != 0 and "ModuleNotFoundError: No module named 'textkit'" in red[2], red[2][-2000:]
    manifest = bundle_jobs(hook_python, repo, tmp_path / "bundle")
    assert not list((tmp_path / "bundle").rglob("labels.json"))  # data is not shipped: it is read in place
    assert drive(hook_python, repo, cwd=elsewhere, HN_MODULEFIX_MANIFEST=manifest)[:2] == (0, EXPECTED)


def test_a_source_edited_after_bundling_never_runs_silently(hook_python: Path, repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    manifest = bundle_jobs(hook_python, repo, tmp_path / "bundle")
    init = repo / "jobs" / "textkit" / "__init__.py"
    init.write_text(init.read_text().replace("jobs/textkit 1", "jobs/textkit 2"))
    stale = ("ImportError: hn_modulefix cannot rebuild module 'textkit' (also listed as 'jobs.textkit') from %s "
             "(bundle %s): it changed since it was bundled" % (init, manifest))
    # Only the workers have the manifest (the driver exports it after its own imports): the
    # worker refuses the old copy, and says so, in the UDF worker process.
    code, rows, stderr = drive(hook_python, repo, cwd=elsewhere, WORKERS_MANIFEST=manifest)
    assert code != 0 and rows is None and stale in stderr, stderr[-3000:]
    worker_output = stderr.split("UDF process closed the connection unexpectedly", 1)[-1]  # what Daft quotes
    assert stale in worker_output and "daft/execution/udf_worker.py" in worker_output, stderr[-3000:]
    # With the manifest in the driver's environment too, the driver's own import fails first.
    code, rows, stderr = drive(hook_python, repo, cwd=elsewhere, HN_MODULEFIX_MANIFEST=manifest)
    assert code != 0 and rows is None and stale in stderr and "udf_worker" not in stderr, stderr[-3000:]

    doctor = run([str(hook_python), "-m", "hn_modulefix", "doctor"], cwd=elsewhere,
                 env=clean_env(HN_MODULEFIX_MANIFEST=manifest))
    assert doctor.returncode == 1
    assert [line.split()[:2] for line in doctor.stdout.splitlines() if "textkit/__init__.py" in line][0] == \
        ["STALE", "modules/jobs/textkit/__init__.py"]
    assert "%s (textkit, jobs.textkit): changed since it was bundled" % init in doctor.stdout


def cache_entries(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "hn_modulefix" / "bundles").iterdir() if not p.name.startswith("."))


def test_ship_bundles_into_the_cache_exports_the_manifest_and_rebundles_on_change(
        hook_python: Path, repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    red = drive(hook_python, repo, cwd=tmp_path, XDG_CACHE_HOME=str(cache))
    assert red[0] != 0 and "ModuleNotFoundError: No module named 'textkit'" in red[2], red[2][-2000:]
    ship_in_script(repo)
    assert drive(hook_python, repo, cwd=repo, XDG_CACHE_HOME=str(cache))[:2] == (0, EXPECTED)
    bundles = cache_entries(cache)
    assert len(bundles) == 1 and (bundles[0] / "manifest.json").is_file()
    inode = (bundles[0] / "manifest.json").stat().st_ino
    # Unchanged sources: the same bundle, not written again (the workers' own ship() calls
    # are no-ops: they import the script through the finder).
    assert drive(hook_python, repo, cwd=repo, XDG_CACHE_HOME=str(cache))[:2] == (0, EXPECTED)
    assert cache_entries(cache) == bundles
    assert (bundles[0] / "manifest.json").stat().st_ino == inode

    # Where the script is imported through the finder (a worker; here on a machine without
    # the project) or in a Modal container, ship() bundles nothing and exports nothing new.
    manifest = str(bundles[0] / "manifest.json")
    show = "import os, sys\nsys.path.append(%r)\nimport pipeline\nprint(os.environ.get('HN_MODULEFIX_MANIFEST'))\n"
    # The project root is jobs/ (no pyproject.toml, setup.py, setup.cfg or .git above it).
    shutil.copy(repo / "jobs" / "labels.json", bundles[0] / "modules")  # data is not shipped
    repo.rename(tmp_path / "away")
    worker = run([str(hook_python), "-c", show % "/nowhere"], cwd=tmp_path,
                 env=clean_env(HN_MODULEFIX_MANIFEST=manifest, XDG_CACHE_HOME=str(cache)))
    (tmp_path / "away").rename(repo)
    assert (worker.returncode, worker.stdout) == (0, manifest + "\n"), worker.stderr[-2000:]
    container = run([str(hook_python), "-c", show % str(repo / "jobs")], cwd=repo,
                    env=clean_env(MODAL_IS_REMOTE="1", XDG_CACHE_HOME=str(cache)))
    assert (container.returncode, container.stdout) == (0, "None\n"), container.stderr[-2000:]
    assert cache_entries(cache) == bundles
    init = repo / "jobs" / "textkit" / "__init__.py"
    init.write_text(init.read_text().replace("jobs/textkit 1", "jobs/textkit 2"))
    changed = [dict(row, textkit="jobs/textkit 2") for row in EXPECTED]
    assert drive(hook_python, repo, cwd=repo, XDG_CACHE_HOME=str(cache))[:2] == (0, changed)
    assert len(cache_entries(cache)) == 2


def test_an_edit_saved_while_a_shipped_job_runs_never_reaches_its_workers(hook_python: Path, repo: Path,
                                                                          tmp_path: Path) -> None:
    # The edit is saved after the driver imported textkit, before Daft starts its workers.
    # The workers run the bytes the driver ran, not the edit; and a same-named module first
    # on their sys.path (`python -m` puts their working directory there) does not shadow it.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shadow = elsewhere / "textkit.py"
    shadow.write_text("VERSION = 'the working directory textkit'\n")
    red = drive(hook_python, repo, cwd=elsewhere, XDG_CACHE_HOME=str(tmp_path / "cache"))
    # Without hn_modulefix that module is the workers' textkit.
    assert red[0] != 0 and "ModuleNotFoundError: No module named 'textkit.spans'; 'textkit' is not a package" \
        in red[2], red[2][-2000:]
    ship_in_script(repo)
    init = repo / "jobs" / "textkit" / "__init__.py"
    code, rows, stderr = drive(hook_python, repo, cwd=elsewhere, XDG_CACHE_HOME=str(tmp_path / "cache"),
                               EDIT_AFTER_IMPORT=str(init))
    assert (code, rows) == (0, EXPECTED), stderr[-3000:]
    assert init.read_text().endswith("VERSION = 'edited while the job ran'\n")


TOOL_DRIVER = """import subprocess, sys
import hn_modulefix
hn_modulefix.ship()
import utils
print("driver:", utils.WHO, flush=True)
sys.exit(subprocess.run([sys.executable, sys.argv[1]]).returncode)
"""


def test_another_program_the_driver_starts_keeps_its_own_modules(hook_python: Path, tmp_path: Path) -> None:
    project, other = tmp_path / "proj", tmp_path / "other"
    (project / "jobs").mkdir(parents=True)
    (other / "jobs").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    (project / "jobs" / "driver.py").write_text(TOOL_DRIVER)  # listed as driver, jobs.driver
    (project / "jobs" / "utils.py").write_text("WHO = 'the driver utils'\n")
    (other / "tool.py").write_text("import utils, jobs\nprint('tool:', utils.WHO, jobs.WHO)\n")
    (other / "utils.py").write_text("WHO = 'the tool utils'\n")
    (other / "jobs" / "__init__.py").write_text("WHO = 'the tool jobs'\n")
    # `python other/tool.py` puts other/ first on its sys.path; the driver's bundle did not come from there.
    done = run([str(hook_python), str(project / "jobs" / "driver.py"), str(other / "tool.py")], cwd=project,
               env=clean_env(XDG_CACHE_HOME=str(tmp_path / "cache")))
    assert (done.returncode, done.stdout, done.stderr) == (
        0, "driver: the driver utils\ntool: the tool utils the tool jobs\n", ""), done.stderr[-2000:]


def test_the_debian_sitecustomize_miss_loads_nothing(hook_python: Path, repo: Path, tmp_path: Path) -> None:
    # Debian's and Ubuntu's system Pythons: sitecustomize tries a module that is not there.
    site = tmp_path / "debian"
    site.mkdir()
    (site / "sitecustomize.py").write_text("try:\n    import apport_python_hook\nexcept ImportError:\n    pass\n")
    manifest = bundle_jobs(hook_python, repo, tmp_path / "bundle")
    code = ("import sys\nprint(sorted(m for m in sys.modules if m in ('json', 'hashlib', 'sitecustomize') "
            "or m.startswith('hn_modulefix')))\nimport textkit\nprint(textkit.VERSION)\n")
    done = run([str(hook_python), "-c", code], cwd=tmp_path,
               env=clean_env(PYTHONPATH=str(site), HN_MODULEFIX_MANIFEST=manifest))
    assert (done.returncode, done.stdout, done.stderr) == (0, "['sitecustomize']\njobs/textkit 1\n", "")


MODAL_JOB = '''import dataclasses
import json
import os

import daft
import modal
from daft import DataType

app = modal.App("scripts-pipeline")


@app.function()
def remote() -> None:
    pass  # defining it runs Modal's check that the package's __path__ encloses this file


@dataclasses.dataclass(frozen=True)
class Prefix:
    text: str


@daft.cls(use_process=True)
class Tag:
    def __init__(self, prefix: Prefix) -> None:
        self.prefix = prefix  # the worker unpickles scripts.pipeline.Prefix: it imports this module

    @daft.method(return_dtype=DataType.string())
    def __call__(self, text: str) -> str:
        return json.dumps({"pid": os.getpid(), "text": self.prefix.text + text})


def run() -> list:
    df = daft.from_pydict({"text": ["a", "b"]}).with_column("out", Tag(Prefix("-"))(daft.col("text")))
    return [json.loads(row) for row in df.to_pydict()["out"]]
'''


@pytest.mark.parametrize("package", ["regular", "namespace"])
def test_a_shipped_package_has_a_real_path_for_modal(hook_python: Path, tmp_path: Path, package: str) -> None:
    project = tmp_path / "proj"
    (project / "scripts").mkdir(parents=True)
    if package == "regular":
        (project / "scripts" / "__init__.py").write_text("")
    (project / "scripts" / "pipeline.py").write_text(MODAL_JOB)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import json, os, sys\nsys.path.insert(0, %r)\nimport scripts.pipeline as p\n"
            "print(json.dumps({'driver': os.getpid(), 'rows': p.run()}))\n" % str(project))

    def drive_module(**env: str) -> tuple[int, list, str]:
        done = run([str(hook_python), "-c", code], cwd=elsewhere, env=clean_env(**env))
        if done.returncode:
            return done.returncode, [], done.stderr.replace("\\'", "'")
        data = json.loads(done.stdout.splitlines()[-1])
        assert all(row["pid"] != data["driver"] for row in data["rows"])
        return 0, [row["text"] for row in data["rows"]], done.stderr

    red = drive_module()
    assert red[0] != 0 and "ModuleNotFoundError: No module named 'scripts'" in red[2], red[2][-2000:]
    made = run([str(hook_python), "-m", "hn_modulefix", "bundle", "scripts/pipeline.py", "-o", str(tmp_path / "b")],
               cwd=project)
    manifest = made.stdout.splitlines()[-1]
    assert drive_module(HN_MODULEFIX_MANIFEST=manifest)[:2] == (0, ["-a", "-b"])
    # On a machine without the driver's files: the shipped directory is the package's path.
    moved = tmp_path / "moved"
    shutil.copytree(project, moved)
    shutil.rmtree(project / "scripts")
    code = code.replace(repr(str(project)), repr(str(moved)))
    assert drive_module(HN_MODULEFIX_MANIFEST=manifest)[:2] == (0, ["-a", "-b"])


def timestamp_pyc(source: str, path: Path, like: Path) -> bytes:
    """A bytecode cache of `source` whose header claims to be that of the file `like`."""
    stat = like.stat()
    code = compile(source, str(path), "exec")
    return (importlib.util.MAGIC_NUMBER + b"\0\0\0\0" + (int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
            + (stat.st_size & 0xFFFFFFFF).to_bytes(4, "little") + marshal.dumps(code))


def test_a_tampered_bytecode_cache_in_the_bundle_never_runs(hook_python: Path, repo: Path, tmp_path: Path) -> None:
    manifest = bundle_jobs(hook_python, repo, tmp_path / "bundle")
    # The driver runs from another copy of the project; the bundled one is gone, as on a
    # worker machine that has only the bundle.
    driver_copy = tmp_path / "laptop"
    shutil.copytree(repo, driver_copy)
    shutil.rmtree(repo)
    shipped = Path(manifest).parent / "modules" / "jobs" / "pipeline.py"
    evil = "raise RuntimeError('tampered bytecode ran')\n" + shipped.read_text()
    cache = Path(importlib.util.cache_from_source(str(shipped)))
    cache.parent.mkdir()
    cache.write_bytes(timestamp_pyc(evil, shipped, like=shipped))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The shipped copy of the script reads labels.json beside itself: ship the data too.
    (shipped.parent / "labels.json").write_text((driver_copy / "jobs" / "labels.json").read_text())
    assert drive(hook_python, driver_copy, cwd=elsewhere, HN_MODULEFIX_MANIFEST=manifest)[:2] == (0, EXPECTED)
