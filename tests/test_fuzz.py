"""Generated manifests: whatever the document holds, parsing yields a manifest that stays
inside its bundle and names only importable modules, or a ManifestError; and a fresh
interpreter with such a manifest active always starts."""

from __future__ import annotations

import json
import keyword
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from _support import clean_env, run
from hn_modulefix import ManifestError
from hn_modulefix._manifest import Manifest, load, parse

BUNDLE = "/bundle"
MANIFEST = BUNDLE + "/manifest.json"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda s: not keyword.iskeyword(s))


def mostly(usual: st.SearchStrategy, other: st.SearchStrategy) -> st.SearchStrategy:
    """`usual` nine times in ten: a document then gets past the first checks often
    enough for every later check to be reached."""
    return st.integers(0, 9).flatmap(lambda i: other if i == 0 else usual)


# Edges of valid: separators, empty segments, keywords, dunder names, unicode
# identifiers and lookalikes, surrogates, NUL, line breaks.
name_parts = mostly(identifiers, st.text(max_size=6) | st.sampled_from([
    "", "fuzz_target", "class", "None", "__main__", "1a", " a", "a-b", "a/b", "a\\b", "..", "é", "名前", "ﬁle", "x\x00",
    "\ud800", "\n"]))
names = st.lists(name_parts, min_size=1, max_size=4).map(".".join)
segments = mostly(identifiers, st.sampled_from(["modules", "..", ".", "", "~", "C:", "x.py", "__init__.py", "a b.py",
                                                "x.py\x00", "\ud800.py", "x.txt", "/etc"]) | st.text(max_size=6))
paths = st.tuples(mostly(st.just(""), st.sampled_from(["/", "./", "../", "\\"])),
                  st.lists(segments, min_size=1, max_size=4),
                  mostly(st.just("/"), st.sampled_from(["\\", "//"])),
                  st.sampled_from([".py", "/__init__.py", ""])).map(lambda t: t[0] + t[2].join(t[1]) + t[3])
entries = mostly(st.fixed_dictionaries({
    "names": mostly(st.lists(names, min_size=1, max_size=3), json_values),
    "path": mostly(paths, json_values),
    "sha256": mostly(st.text("0123456789abcdef", min_size=64, max_size=64),
                     st.text("0123456789abcdefABCDEF \n", min_size=62, max_size=66) | json_values),
}, optional={"package": mostly(st.booleans(), json_values)}), json_values)
documents = mostly(st.fixed_dictionaries({
    "hn_modulefix": mostly(st.just(1), st.sampled_from([True, 1.0, 2, "1"]) | json_values),
    "modules": mostly(st.lists(entries, max_size=4), json_values),
}), json_values)

# Manifests that must be accepted: dotted identifiers (none of the standard library's) and
# plain relative paths.
STANDARD = frozenset(getattr(sys, "stdlib_module_names", ()))
valid_entries = st.builds(
    lambda parts, package: {"names": [".".join(parts)], "path": "/".join(["modules"] + parts[:-1] + (
        [parts[-1], "__init__.py"] if package else [parts[-1] + ".py"])), "sha256": "0" * 64, "package": package},
    st.lists(identifiers, min_size=1, max_size=3).filter(lambda p: p != ["__main__"] and p[0] not in STANDARD),
    st.booleans())
valid_documents = st.lists(valid_entries, max_size=5, unique_by=lambda e: e["names"][0]).map(
    lambda modules: {"hn_modulefix": 1, "modules": modules})


def dotted_identifier(name: str) -> bool:
    return (name != "__main__" and all(p.isidentifier() and not keyword.iskeyword(p) for p in name.split("."))
            and name.split(".")[0] not in STANDARD)


def check_accepted(manifest: Manifest) -> None:
    for source in manifest.sources:
        assert "\\" not in source.relpath and "\0" not in source.relpath  # plain "/"-separated, no NUL
        assert os.path.normpath(source.path) == source.path
        assert source.path.startswith(BUNDLE + os.sep) and os.path.commonpath([BUNDLE, source.path]) == BUNDLE
        assert source.path.endswith(os.sep + "__init__.py" if source.package else ".py")
        assert all(dotted_identifier(name) for name in source.names)
    assert all(manifest.by_name[name] is s for s in manifest.sources for name in s.names)


def one(path: object = "modules/a.py", names: object = ("a",), version: object = 1, **more: object) -> object:
    """A document with one entry, valid unless an argument makes it otherwise."""
    entry = {"names": list(names) if isinstance(names, tuple) else names, "path": path, "sha256": "0" * 64}
    entry.update(more)
    return {"hn_modulefix": version, "modules": [entry]}


# Inputs known to be bad (each once slipped through, or nearly): tried on every run, in
# addition to what the seeded search generates.
KNOWN_BAD = [
    one("modules/../a.py"), one("../a.py"), one("modules/.."), one("./a.py"), one("modules/./a.py"),
    one("modules//a.py"), one("/etc/a.py"), one("/a.py"), one("modules\\a.py"), one("..\\a.py"),
    one("modules/a\0b.py"), one("modules/a.py\0"), one(""), one("modules/a.txt"), one("modules/"),
    one(version=True), one(version=1.0), one(version="1"), one(version=2), one(version=None),
    one(names=["__main__"]), one(names=["class"]), one(names=["a..b"]), one(names=["a-b"]), one(names=["x\0"]),
    one(names=[""]), one(names=[]), one(names="a"), one(names=[".a"]),
    one(package=True), one("modules/a/__init__.py", package="true"), one(package=1),
    one(sha256="A" * 64), one(sha256="0" * 63), one(sha256=None),
    {"hn_modulefix": 1, "modules": [one()["modules"][0], one("modules/b.py")["modules"][0]]},  # a name twice
    {"hn_modulefix": 1}, {"hn_modulefix": 1, "modules": {}}, [], None,
    dict(one(), snapshot="true"), dict(one(), snapshot=1), dict(one(), snapshot=None),
    dict(one(), roots="/proj"), dict(one(), roots=["proj"]), dict(one(), roots=["/a\0b"]), dict(one(), roots=[["/a"]]),
]


@settings(max_examples=500, deadline=None, derandomize=True)
@given(documents)
def test_parse_accepts_only_safe_manifests_and_raises_nothing_but_manifesterror(data: object) -> None:
    check_parse(data)


@pytest.mark.parametrize("data", KNOWN_BAD, ids=repr)
def test_known_bad_manifests_are_refused(data: object) -> None:
    assert check_parse(data) is False


def check_parse(data: object) -> bool:
    """Whether `data` parses; either way, what must hold for the result."""
    try:
        manifest = parse(data, MANIFEST)
    except ManifestError as exc:
        message = str(exc)
        # The start-up hook prints it as one stderr line: bounded, no line breaks.
        assert message.startswith("manifest %s: " % MANIFEST) and "\n" not in message and len(message) < 400
        return False
    assert isinstance(data, dict) and type(data["hn_modulefix"]) is int  # JSON true and 1.0 are not format 1
    check_accepted(manifest)
    return True


@settings(max_examples=200, deadline=None, derandomize=True)
@given(valid_documents)
def test_every_well_formed_manifest_is_accepted(data: dict) -> None:
    manifest = parse(data, MANIFEST)
    check_accepted(manifest)
    assert sorted(manifest.by_name) == sorted(e["names"][0] for e in data["modules"])


def test_json_nested_beyond_the_recursion_limit_is_a_manifest_error(tmp_path: Path) -> None:
    # Regression: json.loads raised RecursionError, which escaped load() and install().
    path = tmp_path / "manifest.json"
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ManifestError, match="is not valid JSON: maximum recursion depth exceeded"):
        load(str(path))


def test_a_deeply_nested_field_value_is_a_manifest_error() -> None:
    # Regression: the error message repr()'d the value, which recursed past the limit
    # when the value was nested almost as deep as json.loads allows.
    deep: object = []
    for _ in range(5000):
        deep = [deep]
    for entry in ({"names": [deep]}, {"names": ["a"], "path": "a.py", "sha256": deep}):
        with pytest.raises(ManifestError, match="got a JSON array|a JSON array is not a valid module name"):
            parse({"hn_modulefix": 1, "modules": [entry]}, MANIFEST)


@pytest.mark.parametrize("version", [True, 1.0])
def test_format_must_be_the_integer_1(version: object) -> None:
    # Regression: True == 1.0 == 1 in Python, so JSON true and 1.0 passed as format 1.
    with pytest.raises(ManifestError, match="hn_modulefix: expected format 1, got %s" % version):
        parse({"hn_modulefix": version, "modules": []}, MANIFEST)


PROBE = ("try:\n    import fuzz_target\n    print('imported')\n"
         "except ImportError as e:\n    print(type(e).__name__, str(e).startswith('hn_modulefix cannot rebuild'))\n")


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(documents.map(lambda d: json.dumps(d).encode()), st.binary(max_size=40)))
@example(raw=b"")
@example(raw=b"\xff{")
@example(raw=json.dumps(one("../outside.py", names=["fuzz_target"])).encode())
@example(raw=json.dumps(one("modules/fuzz_target.py", names=["fuzz_target"], version=True)).encode())
def test_fresh_interpreter_starts_whatever_the_manifest_holds(
        hook_python: Path, tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    directory = tmp_path_factory.mktemp("fuzz")
    path = directory / "manifest.json"
    path.write_bytes(raw)
    env = clean_env(HN_MODULEFIX_MANIFEST=str(path))
    started = run([str(hook_python), "-c", "pass"], cwd=directory, env=env)
    assert (started.returncode, started.stdout, started.stderr) == (0, "", "")
    probe = run([str(hook_python), "-c", PROBE], cwd=directory, env=env)
    try:
        manifest = load(str(path))  # the oracle: what the finder in that interpreter saw
    except ManifestError as exc:
        expected = ("ModuleNotFoundError False\n", "hn_modulefix: finder disabled: %s\n" % exc)
    else:
        if "fuzz_target" in manifest.parents:
            expected = ("imported\n", "")
        elif "fuzz_target" in manifest.by_name:  # no shipped file exists: nothing can execute
            expected = ("ImportError True\n", "")
        else:
            expected = ("ModuleNotFoundError False\n", "")
    assert (probe.returncode, probe.stdout, probe.stderr) == (0,) + expected
