"""Diagnostics: `check` (payload references tried in a fresh interpreter) and `doctor`."""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import functools
import hashlib
import http
import importlib
import importlib.util
import io
import ipaddress
import json
import os
import pathlib
import pickle
import re
import shutil
import sys
import types
import uuid
from pathlib import Path

import cloudpickle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _support import HOST_SITE, REPO, clean_env, make_venv, run, venv_site
from hn_modulefix import CheckError, bundle, check
from hn_modulefix._check import _references

# -- the opcode walker, in process -----------------------------------------------------


def test_stack_global_strings_from_the_memo() -> None:
    # The second STACK_GLOBAL gets its module string back from the memo (BINGET 1).
    payload = pickle.dumps([collections.OrderedDict, collections.Counter], protocol=4)
    assert b"h\x01\x8c\x07Counter" in payload
    assert _references(payload) == {"collections": {"OrderedDict", "Counter"}}


def test_stack_global_with_long_memo_keys_and_puts() -> None:
    # Hand-written: strings stored with BINPUT/LONG_BINPUT, read back with LONG_BINGET/BINGET.
    payload = (b"\x80\x04"
               b"\x8c\x08json.foo\x94"                  # memo 0: a decoy string
               b"\x8c\x04json\x71\x05"                  # BINPUT 5
               b"\x8c\x05dumps\x72\x00\x01\x00\x00"     # LONG_BINPUT 256
               b"\x6a\x05\x00\x00\x00\x6a\x00\x01\x00\x00\x93"  # LONG_BINGET 5, LONG_BINGET 256, STACK_GLOBAL
               b"\x68\x05\x8c\x05loads\x93"             # BINGET 5, 'loads', STACK_GLOBAL
               b"\x86.")
    assert _references(payload) == {"json": {"dumps", "loads"}}


def test_protocol_0_global_and_python_2_names() -> None:
    # Protocol 0 and 2 name Python 2 modules; the unpickler maps them, and so does check.
    assert _references(b"cos\nsep\np0\n.") == {"os": {"sep"}}
    assert _references(pickle.dumps(collections.OrderedDict(a=1), protocol=0)) == {"collections": {"OrderedDict"}}
    assert _references(pickle.dumps(range(2), protocol=2)) == {"builtins": {"range"}}
    assert _references(pickle.dumps(decimal.Decimal(1), protocol=1)) == {"decimal": {"Decimal"}}


def test_dotted_qualified_names_and_cloudpickle_module_imports() -> None:
    namespace = {"json": json}
    exec("def dump_it(x):\n    return json.dumps(x)\n", namespace)  # not importable: pickled by value
    payload = cloudpickle.dumps([namespace["dump_it"], json.JSONEncoder.default])
    refs = _references(payload)
    assert refs["json"] == {""}  # the module object the function uses as a global
    assert refs["json.encoder"] == {"JSONEncoder.default"}
    assert "subimport" in refs["cloudpickle.cloudpickle"]


def test_pickles_inside_byte_strings() -> None:
    inner = pickle.dumps(fractions.Fraction(1, 3), protocol=5)
    blob = b"\x80\x05 not a pickle \x80\x02\x95" + len(inner).to_bytes(8, "little") + inner + b"\x80"
    payload = pickle.dumps({"blob": blob, "when": datetime.date(2020, 1, 2)}, protocol=5)
    assert _references(payload) == {"fractions": {"Fraction"}, "datetime": {"date"}}


def test_not_a_pickle() -> None:
    with pytest.raises(CheckError, match="not a pickle payload"):
        _references(b"\x80\x05\x95garbage")


POOL = [collections.OrderedDict(a=1), collections.Counter("ab"), datetime.date(2020, 1, 2),
        datetime.timedelta(1), decimal.Decimal("1.5"), fractions.Fraction(1, 3), json.dumps, os.path.join,
        http.HTTPStatus.OK, uuid.UUID(int=5), pathlib.PurePosixPath("a/b"), collections.OrderedDict,
        ipaddress.IPv4Address("1.2.3.4"), range(3), frozenset([1]), complex(1, 2), bytearray(b"x"),
        functools.partial(max, 1), datetime.datetime.fromisoformat, "text", 7]


def resolve(module: str, name: str) -> object:
    target: object = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.recursive(st.sampled_from(POOL),
                    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                    | st.dictionaries(st.text(max_size=2), inner, max_size=3), max_leaves=12),
       st.integers(0, 5))
def test_walker_finds_what_the_unpickler_looks_up(obj: object, protocol: int) -> None:
    looked_up: list[object] = []

    class Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            found = super().find_class(module, name)
            looked_up.append(found)
            return found

    payload = pickle.dumps(obj, protocol=protocol)
    Recorder(io.BytesIO(payload)).load()
    walked = [resolve(module, name) for module, names in _references(payload).items() for name in names]
    assert {id(x) for x in walked} == {id(x) for x in looked_up}


# -- check(), in fresh interpreters ----------------------------------------------------

STATUS_LINE = re.compile(r"^  (ok|bundle|FAILED) +(\S+)")


def statuses(report: str) -> dict[str, str]:
    return {m.group(2): m.group(1) for m in map(STATUS_LINE.match, report.splitlines()) if m}


@pytest.fixture
def record_module(tmp_path: Path, import_state: None, monkeypatch: pytest.MonkeyPatch):
    """`record`, loaded the way a platform's CLI loads a user script: by file location."""
    monkeypatch.delenv("HN_MODULEFIX_MANIFEST", raising=False)
    path = tmp_path / "proj" / "record.py"
    path.parent.mkdir()
    path.write_text("import dataclasses\n\n@dataclasses.dataclass\nclass Point:\n    x: int\n    tags: object\n")
    spec = importlib.util.spec_from_file_location("record", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["record"] = module
    spec.loader.exec_module(module)
    return module


SHIP_IT = ("ship it: bundle the script that imports it (`hn-modulefix bundle SCRIPT -o DIR`) and give the workers "
           "HN_MODULEFIX_MANIFEST=DIR/manifest.json (Modal: hn_modulefix.image_layer(); "
           "Ray: hn_modulefix.ray_runtime_env())")


def test_cloudpickle_payload_fails_without_and_passes_with_a_bundle(record_module, tmp_path: Path) -> None:
    point = record_module.Point(1, collections.OrderedDict(a=1))
    red = check(point)
    assert not red.ok and red.manifest is None and red.pickler == "cloudpickle"
    assert [(m.module, m.status, m.referenced_by) for m in red.modules] == [
        ("collections", "ok", ("collections.OrderedDict",)),
        ("record", "failed", ("record.Point",)),
    ]
    (failed,) = red.failed
    assert failed.error == "ModuleNotFoundError: No module named 'record'"
    assert failed.fix == SHIP_IT and failed.origin == record_module.__file__
    assert red.report().splitlines() == [
        "pickled with cloudpickle: cloudpickle.dumps (cloudpickle)",
        "2 modules to import, tried in a fresh `python -m` in another directory (HN_MODULEFIX_MANIFEST unset):",
        "  ok      collections  OrderedDict",
        "  FAILED  record",
        "          ModuleNotFoundError: No module named 'record'",
        "          referenced by: record.Point",
        "          here from: %s" % record_module.__file__,
        "fix for record: " + SHIP_IT,
        "FAILED: 1 of 2 modules cannot be imported by a worker: record",
    ]

    manifest = bundle(record_module.__file__, out=tmp_path / "bundle", root=tmp_path / "proj")
    green = check(cloudpickle.dumps(point), manifest=manifest)
    assert green.ok and green.manifest == str(manifest) and green.pickler is None  # bytes: pickled already
    assert green.report().splitlines()[1:] == [
        "  ok      collections  OrderedDict",
        "  bundle  record       Point",
        "ok: a worker can import all 2 modules (1 only through the bundle)",
    ]


def test_a_function_pickled_by_value_needs_its_global_modules(record_module, tmp_path: Path) -> None:
    namespace = {"record": record_module}
    exec("def make(x):\n    return record.Point(x, None)\n", namespace)
    (failed,) = check(namespace["make"]).failed
    assert (failed.module, failed.referenced_by) == ("record", ("record",))


def test_a_bundle_that_does_not_list_the_module(record_module, tmp_path: Path) -> None:
    other = tmp_path / "other" / "unrelated.py"
    other.parent.mkdir()
    other.write_text("")
    manifest = bundle(other, out=tmp_path / "bundle", root=other.parent)
    (failed,) = check(record_module.Point(1, None), manifest=manifest).failed
    assert failed.fix == ("the bundle %s does not list it: bundle the script that imports it too, or add "
                          "`--include record` if it is imported in a way the source does not show" % manifest)


def test_an_inherited_broken_manifest_is_met_as_workers_meet_it(
        record_module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "manifest.json"
    broken.write_text("{")
    monkeypatch.setenv("HN_MODULEFIX_MANIFEST", str(broken))
    result = check(record_module.Point(1, None))
    (failed,) = result.failed
    problem = ("manifest %s is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
               "(char 1)" % broken)
    assert failed.fix == "the bundle cannot be used: " + problem
    assert result.notes == ("hn_modulefix: finder disabled: " + problem,)
    assert result.report().splitlines()[-3:] == [result.notes[0], "fix for record: " + failed.fix,
                                                 "FAILED: 1 of 1 modules cannot be imported by a worker: record"]


def test_stale_attribute_and_main_references(record_module, tmp_path: Path) -> None:
    manifest = bundle(record_module.__file__, out=tmp_path / "bundle", root=tmp_path / "proj")
    payload = b"\x80\x04\x8c\x06record\x94\x8c\x05Point\x93h\x00\x8c\x04Gone\x93\x8c\x08__main__\x8c\x01X\x93\x87."
    result = check(payload, manifest=manifest)
    by_module = {m.module: m for m in result.modules}
    assert by_module["record"].error == ("AttributeError: module 'record' has no attribute 'Gone' "
                                         "(looking up record.Gone)")
    assert by_module["__main__"].fix.startswith("move these objects into a module")
    assert by_module["record"].fix == ("the bundle's copy lacks what the payload names (bundled from an older "
                                       "version?): re-run `hn-modulefix bundle` and ship it again")
    # Not from the bundle: bundling again would not change what the worker imports.
    (elsewhere,) = check(b"\x80\x04\x8c\x04json\x8c\x04Gone\x93.").failed
    assert elsewhere.fix == ("the worker's version of the module lacks what the payload names: install the sender's "
                             "version where the workers run")
    assert result.report().splitlines()[-3:] == [
        "fix for __main__: " + by_module["__main__"].fix,
        "fix for record: " + by_module["record"].fix,
        "FAILED: 2 of 2 modules cannot be imported by a worker: __main__, record"]

    # The driver's file edited after bundling: a worker must not run the old copy.
    original = Path(record_module.__file__)
    original.write_text(original.read_text() + "# edited\n")
    failed = {m.module: m for m in check(payload, manifest=manifest).failed}["record"]
    assert failed.fix.startswith("a listed file changed or is missing since bundling: re-run `hn-modulefix bundle`")
    # What the worker sees: the finder's error, naming module, bundle, file and reason.
    assert failed.error.startswith("ImportError: hn_modulefix cannot rebuild module 'record' from %s (bundle %s): it "
                                   "changed since it was bundled" % (original, manifest))

    # Not on this machine, and the shipped copy changed.
    original.unlink()
    shipped = tmp_path / "bundle" / "modules" / "record.py"
    shipped.write_text(shipped.read_text() + "# edited\n")
    failed = {m.module: m for m in check(payload, manifest=manifest).failed}["record"]
    assert failed.fix.startswith("a listed file changed or is missing since bundling")
    assert failed.error.startswith("ImportError: hn_modulefix cannot rebuild module 'record' from %s (bundle %s): "
                                   "sha256 mismatch: the manifest lists" % (shipped, manifest))

    shipped.unlink()
    shipped.mkdir()  # there but unreadable (permissions do not stop root, a directory does)
    failed = {m.module: m for m in check(payload, manifest=manifest).failed}["record"]
    assert failed.error.endswith(": the shipped path is a directory, not a file")
    assert failed.fix == "the shipped copy exists but cannot be read: make the bundle readable where the workers run"


def test_the_fresh_interpreter_runs_in_another_directory(tmp_path: Path) -> None:
    # A worker does not run in the sender's directory: a module importable only from
    # there (`python -m` puts the working directory on sys.path) must fail the check.
    (tmp_path / "local_only.py").write_text("class Thing:\n    pass\n")
    (tmp_path / "thing.pkl").write_bytes(b"\x80\x04\x8c\nlocal_only\x8c\x05Thing\x93.")
    result = run([sys.executable, "-m", "hn_modulefix", "check", "thing.pkl"], cwd=tmp_path)
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout.splitlines() == [
        "1 modules to import, tried in a fresh `python -m` in another directory (HN_MODULEFIX_MANIFEST unset):",
        "  FAILED  local_only",
        "          ModuleNotFoundError: No module named 'local_only'",
        "          referenced by: local_only.Thing",
        "fix for local_only: " + SHIP_IT,
        "FAILED: 1 of 1 modules cannot be imported by a worker: local_only"]


def make_daft_payload(python: Path, scripts: Path, out: Path) -> None:
    code = ("import importlib, sys\nsys.path.insert(0, %r)\npipeline = importlib.import_module('pipeline')\n"
            "import daft, daft.pickle\n"
            "expr = pipeline.SentimentModel(pipeline.Scoring(1.0, 1.0))(daft.col('text'), daft.col('stars'))\n"
            "open(%r, 'wb').write(daft.pickle.dumps(expr))\n" % (str(scripts), str(out)))
    done = run([str(python), "-c", code], cwd=out.parent)
    assert done.returncode == 0, done.stderr[-2000:]


def test_daft_udf_expression_fails_without_and_passes_with_a_bundle(
        example_project: Path, hook_python: Path, tmp_path: Path) -> None:
    payload = tmp_path / "udf.pkl"
    make_daft_payload(hook_python, example_project / "scripts", payload)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    red = run([str(hook_python), "-m", "hn_modulefix", "check", str(payload)], cwd=elsewhere)
    assert (red.returncode, red.stderr) == (1, ""), red.stderr
    lines = red.stdout.splitlines()
    found = statuses(red.stdout)
    assert {m for m, s in found.items() if s == "FAILED"} == {"helpers", "pipeline"}
    assert found["builtins"] == found["daft.daft"] == found["daft.expressions.expressions"] == "ok"
    assert lines[0] == ("%d modules to import, tried in a fresh `python -m` in another directory "
                        "(HN_MODULEFIX_MANIFEST unset):" % len(found))
    start = lines.index("  FAILED  pipeline")
    assert lines[start:start + 3] == ["  FAILED  pipeline",
                                      "          ModuleNotFoundError: No module named 'pipeline'",
                                      "          referenced by: pipeline.Scoring"]
    start = lines.index("  FAILED  helpers")
    assert lines[start:start + 3] == ["  FAILED  helpers",
                                      "          ModuleNotFoundError: No module named 'helpers'",
                                      "          referenced by: helpers.Review, helpers.Sentiment, helpers.tokens"]
    # One fix for both: said once.
    assert lines[-2:] == ["fix for helpers, pipeline: " + SHIP_IT,
                          "FAILED: 2 of %d modules cannot be imported by a worker: helpers, pipeline" % len(found)]
    assert sum(SHIP_IT in line for line in lines) == 1

    made = run([str(hook_python), "-m", "hn_modulefix", "bundle", "scripts/pipeline.py", "-o", str(tmp_path / "b")],
               cwd=example_project)
    manifest = made.stdout.splitlines()[-1]
    green = run([str(hook_python), "-m", "hn_modulefix", "check", str(payload), "--manifest", manifest], cwd=elsewhere)
    assert (green.returncode, green.stderr) == (0, ""), green.stdout + green.stderr
    found = statuses(green.stdout)
    assert {m for m, s in found.items() if s != "ok"} == {"helpers", "pipeline"}
    assert found["helpers"] == found["pipeline"] == "bundle"
    assert re.search(r"^  bundle  pipeline +Scoring$", green.stdout, re.M)
    assert green.stdout.splitlines()[-1] == ("ok: a worker can import all %d modules (2 only through the bundle)"
                                             % len(found))


@pytest.fixture(scope="session")
def no_cloudpickle_python(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A venv with hn_modulefix from the wheel and this environment's packages (daft, ray,
    modal) except cloudpickle, which daft does not depend on: a Daft user's environment."""
    packages = tmp_path_factory.mktemp("no-cloudpickle") / "site"
    packages.mkdir()
    for entry in Path(HOST_SITE).iterdir():
        if not entry.name.lower().startswith("cloudpickle"):
            (packages / entry.name).symlink_to(entry)
    python = make_venv(packages.parent / "venv", wheel=wheel, site_packages=str(packages))
    absent = run([str(python), "-c", "import cloudpickle"])
    assert "No module named 'cloudpickle'" in absent.stderr, absent.stderr
    return python


def test_check_without_cloudpickle_pickles_as_the_engine_does_and_says_with_what(
        no_cloudpickle_python: Path, tmp_path: Path) -> None:
    python = str(no_cloudpickle_python)
    api = run([python, "-c", "import collections, hn_modulefix\n"
                             "print(hn_modulefix.check(collections.OrderedDict(a=1)).pickler)"], cwd=tmp_path)
    assert (api.returncode, api.stdout) == (0, "daft\n"), api.stderr[-2000:]

    scenario = tmp_path / "scenario"
    shutil.copytree(REPO / "tests" / "scenarios" / "user", scenario)
    # SCRIPT::NAME: the script imported as `modal run` imports it, as module `jobs`.
    red = run([python, "-m", "hn_modulefix", "check", "jobs.py::JOBS"], cwd=scenario)
    assert (red.returncode, red.stderr) == (1, ""), red.stdout + red.stderr[-2000:]
    lines = red.stdout.splitlines()
    assert lines[0] == "pickled with daft: daft.pickle.dumps (Daft's vendored cloudpickle)"
    assert statuses(red.stdout)["jobs"] == "FAILED"
    assert "          ModuleNotFoundError: No module named 'jobs'" in lines

    manifest = bundle(scenario / "jobs.py", out=tmp_path / "bundle", root=scenario)
    for pickler, dumps in (("daft", "daft.pickle.dumps (Daft's vendored cloudpickle)"),
                           ("ray", "ray.cloudpickle.dumps (Ray's vendored cloudpickle)"),
                           ("modal", "modal._serialization.serialize (Modal's serializer, its vendored cloudpickle)")):
        green = run([python, "-m", "hn_modulefix", "check", "jobs.py::JOBS", "--pickler", pickler,
                     "--manifest", str(manifest)], cwd=scenario)
        assert (green.returncode, green.stderr) == (0, ""), green.stdout + green.stderr[-2000:]
        assert green.stdout.splitlines()[0] == "pickled with %s: %s" % (pickler, dumps)
        assert statuses(green.stdout)["jobs"] == "bundle"

    absent = run([python, "-m", "hn_modulefix", "check", "jobs.py::JOBS", "--pickler", "cloudpickle"], cwd=scenario)
    assert (absent.returncode, absent.stdout) == (1, "")
    assert absent.stderr == (
        "hn-modulefix check: error: jobs.py::JOBS: pickler 'cloudpickle' needs cloudpickle, which is not installed; "
        "the choices are cloudpickle (cloudpickle), daft (daft.pickle), ray (ray.cloudpickle), "
        "modal (modal._serialization)\n")
    payload = tmp_path / "jobs.pkl"
    payload.write_bytes(b"")
    for argv, said in (([str(payload), "--pickler", "daft"],
                        "%s: --pickler applies to SCRIPT::NAME; a payload file is already pickled" % payload),
                       (["jobs.py::NOTHING"], "jobs.py::NOTHING: jobs.py has no NOTHING"),
                       (["jobs.py::"], "jobs.py::: name the object: SCRIPT::NAME"),
                       (["nowhere.py::JOBS"], "nowhere.py::JOBS: no such script: nowhere.py")):
        wrong = run([python, "-m", "hn_modulefix", "check", *argv], cwd=scenario)
        assert (wrong.returncode, wrong.stderr) == (1, "hn-modulefix check: error: %s\n" % said)
    unknown = run([python, "-c", "import hn_modulefix\nhn_modulefix.check(1, pickler='dill')"], cwd=tmp_path)
    assert unknown.stderr.splitlines()[-1] == (
        "hn_modulefix._check.CheckError: unknown pickler 'dill'; the choices are cloudpickle (cloudpickle), "
        "daft (daft.pickle), ray (ray.cloudpickle), modal (modal._serialization)")


def test_daft_worker_names_module_alias_file_bundle_and_reason(
        example_project: Path, hook_python: Path, tmp_path: Path) -> None:
    made = run([str(hook_python), "-m", "hn_modulefix", "bundle", "scripts/pipeline.py", "-o", str(tmp_path / "b")],
               cwd=example_project)
    manifest = made.stdout.splitlines()[-1]
    # The driver runs the edited helpers; its worker must not run the bundled, older ones.
    original = example_project / "scripts" / "helpers.py"
    original.write_text(original.read_text() + "# edited after bundling\n")
    # Only the worker gets the manifest: the driver exports it after its own import.
    code = ("import importlib, os, sys\nsys.path.insert(0, %r)\npipeline = importlib.import_module('pipeline')\n"
            "os.environ['HN_MODULEFIX_MANIFEST'] = %r\npipeline.run()\n" % (str(example_project / "scripts"), manifest))
    red = run([str(hook_python), "-c", code], cwd=tmp_path)
    assert red.returncode != 0
    stderr = red.stderr.replace("\\'", "'")  # Daft quotes the worker's error inside a Rust panic message
    worker_output = stderr.split("UDF process closed the connection unexpectedly", 1)[-1]
    expected = ("ImportError: hn_modulefix cannot rebuild module 'helpers' (also listed as 'scripts.helpers') "
                "from %s (bundle %s): it changed since it was bundled (sha256 " % (original, manifest))
    assert expected in worker_output and "daft/execution/udf_worker.py" in worker_output, stderr[-3000:]
    assert "re-bundle (`hn-modulefix bundle`, or hn_modulefix.ship())" in stderr.split(expected, 1)[1]


def test_cli_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.pkl").write_bytes(b"junk")
    result = run([sys.executable, "-m", "hn_modulefix", "check", "junk.pkl"], cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("hn-modulefix check: error: junk.pkl: not a pickle payload: ")
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps(1))
    result = run([sys.executable, "-m", "hn_modulefix", "check", "ok.pkl", "--manifest", "nowhere.json"],
                 cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        1, "hn-modulefix check: error: cannot read manifest %s: No such file or directory\n"
        % (tmp_path / "nowhere.json"))


# -- doctor ----------------------------------------------------------------------------


@pytest.fixture
def job_manifest(tmp_path: Path) -> Path:
    project = tmp_path / "proj"
    (project / "scripts").mkdir(parents=True)
    (project / "scripts" / "job.py").write_text("X = 1\n")
    return bundle(project / "scripts" / "job.py", out=tmp_path / "bundle", root=project)


def doctor(python: Path, *flags: str, cwd: Path, **env: str):
    return run([str(python), *flags, "-m", "hn_modulefix", "doctor"], cwd=cwd, env=clean_env(**env))


def sitecustomize_rows(python: Path, cwd: Path) -> list[str]:
    """What doctor must say about sitecustomize modules this interpreter has of its own
    (Debian's and Ubuntu's system Pythons ship one; python.org builds do not)."""
    code = ("import os, sys\n"
            "for entry in sys.path[1:]:\n"  # sys.path[0] is the -c working directory, not doctor's
            "    path = os.path.join(entry or '.', 'sitecustomize.py')\n"
            "    if os.path.isfile(path):\n"
            "        print(path)\n")
    found = run([str(python), "-c", code], cwd=cwd).stdout.splitlines()
    if not found:
        return ["sitecustomize  none on sys.path"]
    return (["sitecustomize  %s (ran)" % found[0]]
            + ["               %s (did not run: only one sitecustomize runs)" % path for path in found[1:]])


def test_doctor_inert_without_a_manifest(hook_python: Path, tmp_path: Path) -> None:
    site = venv_site(hook_python.parent.parent)
    result = doctor(hook_python, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "interpreter    %s (Python %s)" % (hook_python, sys.version.split()[0]),
        "start flags    none that disable start-up hooks (no -S, -I or -E)",
        ".pth hook      %s" % (site / "hn_modulefix.pth"),
        "boot module    %s" % (site / "_hn_modulefix_boot.py"),
        "finder         not installed (the hook stays inert while HN_MODULEFIX_MANIFEST is not set)",
        "manifest       HN_MODULEFIX_MANIFEST is not set",
        *sitecustomize_rows(hook_python, tmp_path),
        "no problems found",
    ]


def test_doctor_with_a_manifest_lists_every_file(hook_python: Path, job_manifest: Path, tmp_path: Path) -> None:
    site = venv_site(hook_python.parent.parent)
    result = doctor(hook_python, cwd=tmp_path, HN_MODULEFIX_MANIFEST=str(job_manifest))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[4:] == [
        "finder         installed at start-up by %s" % (site / "_hn_modulefix_boot.py"),
        "manifest       %s (from HN_MODULEFIX_MANIFEST): parses, 1 file" % job_manifest,
        "kind           ahead-of-time (`hn-modulefix bundle`, bundle()): an original edited since bundling is refused",
        "  ok           modules/scripts/job.py  job, scripts.job",
        "               here, job: the original %s" % (tmp_path / "proj" / "scripts" / "job.py"),
        *sitecustomize_rows(hook_python, tmp_path),
        "no problems found",
    ]

    shipped = job_manifest.parent / "modules" / "scripts" / "job.py"
    shipped.write_text("X = 2\n")
    result = doctor(hook_python, cwd=tmp_path, HN_MODULEFIX_MANIFEST=str(job_manifest))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[7] == "  CHANGED      modules/scripts/job.py  job, scripts.job"
    assert lines[-2:] == ["1 problem:",
                          "  %s (job, scripts.job): sha256 mismatch: the manifest lists %s, the file has %s "
                          "(changed after bundling); re-run `hn-modulefix bundle`"
                          % (shipped, json.loads(job_manifest.read_text())["modules"][0]["sha256"][:12],
                             hashlib.sha256(b"X = 2\n").hexdigest()[:12])]
    shipped.unlink()
    lines = doctor(hook_python, cwd=tmp_path, HN_MODULEFIX_MANIFEST=str(job_manifest)).stdout.splitlines()
    assert lines[7] == "  MISSING      modules/scripts/job.py  job, scripts.job"
    assert lines[-1] == "  %s (job, scripts.job): the file is missing; re-run `hn-modulefix bundle`" % shipped
    shipped.mkdir()  # there, but not readable as a file: bundling again is not what fixes that
    lines = doctor(hook_python, cwd=tmp_path, HN_MODULEFIX_MANIFEST=str(job_manifest)).stdout.splitlines()
    assert lines[7] == "  UNREADABLE   modules/scripts/job.py  job, scripts.job"
    assert lines[-1] == "  %s (job, scripts.job): cannot read it: Is a directory" % shipped


@pytest.mark.usefixtures("import_state")
def test_doctor_shows_a_snapshot_and_where_each_file_would_load_here(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from hn_modulefix._bundle import plan, write as write_bundle
    from hn_modulefix._doctor import doctor as doctor_lines

    scripts, mount, other = tmp_path / "proj" / "scripts", tmp_path / "root", tmp_path / "other"
    for directory in (scripts, mount, other):
        directory.mkdir(parents=True)
    (scripts / "job.py").write_text("import helper, mounted, utils, kit.parts\n")
    for name in ("helper", "mounted", "utils", "kit/__init__", "kit/parts"):
        (scripts / (name + ".py")).parent.mkdir(exist_ok=True)
        (scripts / (name + ".py")).write_text("WHO = 'driver'\n# %s\n" % name)
    manifest = write_bundle(plan(scripts / "job.py", root=tmp_path / "proj"), tmp_path / "snap", snapshot=True)
    (scripts / "helper.py").write_text("WHO = 'edited since'\n")
    (scripts / "kit" / "__init__.py").write_text("WHO = 'edited since'\n")
    shutil.copy(scripts / "mounted.py", mount)  # the listed bytes, found on sys.path: a mount
    (other / "utils.py").write_text("WHO = 'the tool'\n")
    # This process as `python other/tool.py` would be: a program of its own.
    monkeypatch.setitem(sys.modules, "__main__", types.SimpleNamespace(__file__=str(other / "tool.py")))
    sys.path[:0] = [str(other), str(mount)]
    monkeypatch.setenv("HN_MODULEFIX_MANIFEST", str(manifest))
    lines, problems = doctor_lines()
    start = lines.index("kind           snapshot (made by the running driver): a file with other bytes at an original "
                        "path is passed over for the shipped copy")
    assert lines[start + 1:start + 13] == [
        "  ok           modules/scripts/helper.py        helper, scripts.helper",
        "               here, helper: the shipped copy (%s has other bytes than the driver ran)"
        % (scripts / "helper.py"),
        "  ok           modules/scripts/job.py           job, scripts.job",
        "               here, job: the original %s" % (scripts / "job.py"),
        "  ok           modules/scripts/kit/__init__.py  kit, scripts.kit",
        "               here, kit: the shipped copy (%s has other bytes than the driver ran)"
        % (scripts / "kit" / "__init__.py"),
        # Its package is the shipped copy: the path finder finds it beside that.
        "  ok           modules/scripts/kit/parts.py     kit.parts, scripts.kit.parts",
        "               here, kit.parts: %s, where the path finder finds it, with the listed bytes"
        % (manifest.parent / "modules" / "scripts" / "kit" / "parts.py"),
        "  ok           modules/scripts/mounted.py       mounted, scripts.mounted",
        "               here, mounted: %s, where the path finder finds it, with the listed bytes"
        % (mount / "mounted.py"),
        "  ok           modules/scripts/utils.py         utils, scripts.utils",
        "               here, utils: not answered, this program keeps its own %s: its main script lies in a directory "
        "the bundle did not come from" % (other / "utils.py")]
    assert problems == [] and "utils" not in sys.modules  # nothing was imported to tell


def test_doctor_reports_an_unparsable_manifest(hook_python: Path, tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{")
    result = doctor(hook_python, cwd=tmp_path, HN_MODULEFIX_MANIFEST=str(tmp_path / "manifest.json"))
    assert result.returncode == 1
    assert "manifest       %s (from HN_MODULEFIX_MANIFEST): does not parse" % (tmp_path / "manifest.json") \
        in result.stdout.splitlines()
    assert result.stdout.splitlines()[-2:] == [
        "1 problem:",
        "  manifest %s is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
        "(char 1); the finder stays disabled: HN_MODULEFIX_MANIFEST must name a manifest.json that `hn-modulefix "
        "bundle` wrote" % (tmp_path / "manifest.json")]


def test_doctor_says_a_missing_manifest_is_missing(hook_python: Path, tmp_path: Path) -> None:
    nowhere = tmp_path / "build" / "manifest.json"
    result = doctor(hook_python, cwd=tmp_path, HN_MODULEFIX_MANIFEST=str(nowhere))
    # The stderr line is the start-up hook's in doctor's own interpreter, as in any other.
    assert (result.returncode, result.stderr) == (
        1, "hn_modulefix: finder disabled: cannot read manifest %s: No such file or directory\n" % nowhere)
    lines = result.stdout.splitlines()
    assert lines[5] == "manifest       %s (from HN_MODULEFIX_MANIFEST): missing" % nowhere
    assert lines[-2:] == [
        "1 problem:",
        "  manifest %s does not exist; the finder stays disabled: point HN_MODULEFIX_MANIFEST at the manifest.json "
        "of a bundle (`hn-modulefix bundle SCRIPT -o DIR` makes one)" % nowhere]


def test_doctor_and_check_resolve_pythonpath_references_as_the_finder_does(hook_python: Path, tmp_path: Path) -> None:
    # The Ray form: the bundle directory is found on sys.path (PYTHONPATH here), not at a path.
    project, shipped, elsewhere = tmp_path / "proj", tmp_path / "shipped", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "job.py").write_text("class Point:\n    pass\n")
    bundle(project / "job.py", out=shipped / "hn_modulefix_bundle_x", root=project)
    manifest = shipped / "hn_modulefix_bundle_x" / "manifest.json"
    reference = "pythonpath:hn_modulefix_bundle_x/manifest.json"
    env = clean_env(HN_MODULEFIX_MANIFEST=reference, PYTHONPATH=str(shipped))
    finder = run([str(hook_python), "-c", "import job; print(job.__file__)"], cwd=elsewhere, env=env)
    # The driver's file exists here, so it is the one executed; the manifest was found all the same.
    assert (finder.returncode, finder.stdout, finder.stderr) == (0, "%s\n" % (project / "job.py"), "")

    result = run([str(hook_python), "-m", "hn_modulefix", "doctor"], cwd=elsewhere, env=env)
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    assert result.stdout.splitlines()[5:9] == [
        "manifest       %s (from HN_MODULEFIX_MANIFEST=%s): parses, 1 file" % (manifest, reference),
        "kind           ahead-of-time (`hn-modulefix bundle`, bundle()): an original edited since bundling is refused",
        "  ok           modules/job.py  job",
        "               here, job: the original %s" % (project / "job.py")]

    payload = elsewhere / "point.pkl"
    payload.write_bytes(b"\x80\x04\x8c\x03job\x8c\x05Point\x93.")
    for args, check_env in ((["--manifest", reference], clean_env(PYTHONPATH=str(shipped))), ([], env)):
        result = run([str(hook_python), "-m", "hn_modulefix", "check", str(payload), *args], cwd=elsewhere,
                     env=check_env)
        assert (result.returncode, result.stderr) == (0, ""), result.stdout
        assert result.stdout.splitlines() == [
            "1 modules to import, tried in a fresh `python -m` in another directory (HN_MODULEFIX_MANIFEST=%s):"
            % reference,
            "  bundle  job  Point",
            "ok: a worker can import all 1 modules (1 only through the bundle)"]

    # Inherited, the reference is read as the workers read it: a bundle that does not list the module.
    unlisted = elsewhere / "unlisted.pkl"
    unlisted.write_bytes(b"\x80\x04\x8c\x08unlisted\x8c\x01X\x93.")
    result = run([str(hook_python), "-m", "hn_modulefix", "check", str(unlisted)], cwd=elsewhere, env=env)
    assert result.stdout.splitlines()[-2] == (
        "fix for unlisted: the bundle %s does not list it: bundle the script that imports it too, or add "
        "`--include unlisted` if it is imported in a way the source does not show" % reference)

    env["PYTHONPATH"] = str(elsewhere)  # no entry holds the bundle now
    result = run([str(hook_python), "-m", "hn_modulefix", "doctor"], cwd=elsewhere, env=env)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[5] == "manifest       %s (from HN_MODULEFIX_MANIFEST): missing" % reference
    assert lines[-2:] == ["1 problem:",
                          "  manifest %s: no sys.path entry holds hn_modulefix_bundle_x/manifest.json; the finder "
                          "stays disabled: put the directory that holds it on PYTHONPATH" % reference]


def test_doctor_without_site(hook_python: Path, job_manifest: Path, tmp_path: Path) -> None:
    # -S: nothing of site-packages runs; hn_modulefix itself is reached through PYTHONPATH.
    site = venv_site(hook_python.parent.parent)
    result = doctor(hook_python, "-S", cwd=tmp_path, HN_MODULEFIX_MANIFEST=str(job_manifest), PYTHONPATH=str(site))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[1] == ("start flags    -S: `site` is disabled, so no .pth file or sitecustomize runs, "
                        "the start-up hook neither")
    assert "finder         NOT installed at start-up" in lines
    assert ("  HN_MODULEFIX_MANIFEST is set but a fresh interpreter has no finder: python -S disables the "
            "start-up hook") in lines


def test_doctor_lists_every_sitecustomize_in_order(hook_python: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    (first / "sitecustomize.py").write_text("")
    second.mkdir()
    shutil.copy(REPO / "sitecustomize.py", second)
    result = doctor(hook_python, cwd=tmp_path, PYTHONPATH="%s:%s" % (first, second))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    start = lines.index("sitecustomize  %s (ran)" % (first / "sitecustomize.py"))
    assert lines[start + 1] == ("               %s (did not run: only one sitecustomize runs; hn_modulefix's hook)"
                                % (second / "sitecustomize.py"))


def test_a_worker_getting_another_module_of_the_same_name_fails_with_both_locations(
        record_module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    point = record_module.Point(1, None)
    other = tmp_path / "site2" / "record.py"
    other.parent.mkdir()
    other.write_text("class Point:\n    pass\n")  # importable, and has the attribute: only identity tells
    monkeypatch.setenv("PYTHONPATH", str(other.parent))
    (failed,) = check(point).failed
    assert failed.error == "a worker imports it from %s, this process from %s" % (other, record_module.__file__)
    assert failed.fix.startswith("ship this process's module: a bundle")
    manifest = bundle(record_module.__file__, out=tmp_path / "bundle", root=tmp_path / "proj")
    assert check(point, manifest=manifest).ok  # the bundle is answered first

    other.unlink()
    (other.parent / "record").mkdir()  # a directory of that name: a namespace package
    (failed,) = check(point).failed
    assert failed.error == ("a worker gets a namespace package (%s) where this process has %s"
                            % (other.parent / "record", record_module.__file__))
    assert check(point, manifest=manifest).ok
