"""Manifest parsing: every malformed field is rejected with its name and the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hn_modulefix import ManifestError
from hn_modulefix._manifest import dump, load, parse

GOOD = {"names": ["pipeline", "scripts.pipeline"], "path": "modules/scripts/pipeline.py",
        "sha256": "a" * 64, "package": False}


def manifest(tmp_path: Path, data: object, raw: bytes | None = None) -> Path:
    path = tmp_path / "manifest.json"
    path.write_bytes(raw if raw is not None else json.dumps(data).encode())
    return path


def test_good_manifest_maps_every_name_and_implied_parent(tmp_path: Path) -> None:
    m = load(str(manifest(tmp_path, {"hn_modulefix": 1, "modules": [GOOD]})))
    (source,) = m.sources
    assert m.by_name == {"pipeline": source, "scripts.pipeline": source}
    assert m.parents == frozenset({"scripts"})
    assert source.path == str(tmp_path / "modules" / "scripts" / "pipeline.py")


def test_dump_then_load_round_trips(tmp_path: Path) -> None:
    m = load(str(manifest(tmp_path, {"hn_modulefix": 1, "modules": [GOOD]})))
    again = parse(json.loads(dump(m.sources)), m.path)
    assert [(s.names, s.relpath, s.sha256, s.package) for s in again.sources] == \
        [(s.names, s.relpath, s.sha256, s.package) for s in m.sources]


@pytest.mark.parametrize("raw, expected", [
    (b"", "not valid JSON"),
    (b"{nope", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[]", "top level: expected a JSON object"),
    (b'{"modules": []}', "hn_modulefix: expected format 1"),
    (b'{"hn_modulefix": 2, "modules": []}', "hn_modulefix: expected format 1, got 2"),
    (b'{"hn_modulefix": 1}', "modules: expected a list"),
    (b'{"hn_modulefix": 1, "modules": [3]}', r"modules\[0\]: expected an object"),
])
def test_malformed_documents(tmp_path: Path, raw: bytes, expected: str) -> None:
    path = manifest(tmp_path, None, raw)
    with pytest.raises(ManifestError, match=expected) as info:
        load(str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("field, value, expected", [
    ("names", [], "modules[0].names: expected a non-empty list"),
    ("names", "pipeline", "modules[0].names: expected a non-empty list"),
    ("names", ["pipe/line"], "'pipe/line' is not a valid module name"),
    ("names", ["a..b"], "'a..b' is not a valid module name"),
    ("names", [".a"], "'.a' is not a valid module name"),
    ("names", ["__main__"], "'__main__' is not a valid module name"),
    ("names", ["class"], "'class' is not a valid module name"),
    ("names", [7], "7 is not a valid module name"),
    ("path", "../escape.py", "must be a plain relative path inside the bundle"),
    ("path", "/etc/passwd.py", "must be a plain relative path inside the bundle"),
    ("path", "modules/../../x.py", "must be a plain relative path inside the bundle"),
    ("path", "modules//x.py", "must be a plain relative path inside the bundle"),
    ("path", "modules\\x.py", "must be a plain relative path inside the bundle"),
    ("path", "modules/x.txt", "must end in .py"),
    ("path", 5, "modules[0].path: expected a non-empty string"),
    ("sha256", "A" * 64, "modules[0].sha256: expected 64 lowercase hex digits"),
    ("sha256", "a" * 63, "modules[0].sha256: expected 64 lowercase hex digits"),
    ("sha256", None, "modules[0].sha256: expected 64 lowercase hex digits"),
    ("package", "yes", "modules[0].package: expected true or false"),
    ("package", True, "a package's file must be named __init__.py"),
    # Answered ahead of the path finder, it would replace the standard module in every process.
    ("names", ["json"], "modules[0].names: 'json' is a standard-library module name, which is never shipped"),
    ("names", ["pipeline", "logging.handlers"], "'logging.handlers' is a standard-library module name"),
])
def test_malformed_entries(tmp_path: Path, field: str, value: object, expected: str) -> None:
    entry = dict(GOOD, **{field: value})
    with pytest.raises(ManifestError, match=expected.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        load(str(manifest(tmp_path, {"hn_modulefix": 1, "modules": [entry]})))


def test_snapshot_and_roots_are_read_and_round_trip(tmp_path: Path) -> None:
    m = load(str(manifest(tmp_path, {"hn_modulefix": 1, "modules": [GOOD], "snapshot": True,
                                     "roots": ["/proj", "/proj/scripts"]})))
    assert (m.snapshot, m.roots) == (True, frozenset({"/proj", "/proj/scripts"}))
    again = parse(json.loads(dump(m.sources, m.snapshot, m.roots)), m.path)
    assert (again.snapshot, again.roots) == (True, m.roots)
    # Absent: made ahead of time; no roots recorded (v0.2's bundles), and dump writes neither.
    m = load(str(manifest(tmp_path, {"hn_modulefix": 1, "modules": [GOOD]})))
    assert (m.snapshot, m.roots) == (False, None)
    assert set(json.loads(dump(m.sources))) == {"hn_modulefix", "modules"}


@pytest.mark.parametrize("field, value, expected", [
    ("snapshot", "yes", "snapshot: expected true or false, got 'yes'"),
    ("snapshot", 1, "snapshot: expected true or false, got 1"),
    ("roots", "/proj", "roots: expected a list of absolute directory paths, got str"),
    ("roots", ["/proj", "scripts"], "roots[1]: expected an absolute directory path, got 'scripts'"),
    ("roots", [None], "roots[0]: expected an absolute directory path, got None"),
])
def test_malformed_top_level_fields(tmp_path: Path, field: str, value: object, expected: str) -> None:
    path = manifest(tmp_path, {"hn_modulefix": 1, "modules": [GOOD], field: value})
    with pytest.raises(ManifestError) as info:
        load(str(path))
    assert str(info.value) == "manifest %s: %s" % (path, expected)


def test_a_name_listed_twice_is_rejected(tmp_path: Path) -> None:
    other = dict(GOOD, names=["pipeline"], path="modules/other.py")
    with pytest.raises(ManifestError, match=r"modules\[1\]\.names: 'pipeline' is already listed in modules\[0\]"):
        load(str(manifest(tmp_path, {"hn_modulefix": 1, "modules": [GOOD, other]})))


def test_missing_manifest_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read manifest .*nowhere.json"):
        load(str(tmp_path / "nowhere.json"))
