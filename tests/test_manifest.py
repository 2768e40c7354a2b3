"""Manifest parsing: every malformed field is rejected with its name and the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hn_modulefix import ManifestError
from hn_modulefix._manifest import (INDEX_NAME, LazyManifest, Manifest, Source, dump, dump_index, dump_names, load,
                                    parse)

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


MALFORMED_ENTRIES = [
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
]


@pytest.mark.parametrize("field, value, expected", MALFORMED_ENTRIES)
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


MALFORMED_TOP_LEVEL = [
    ("snapshot", "yes", "snapshot: expected true or false, got 'yes'"),
    ("snapshot", 1, "snapshot: expected true or false, got 1"),
    ("roots", "/proj", "roots: expected a list of absolute directory paths, got str"),
    ("roots", ["/proj", "scripts"], "roots[1]: expected an absolute directory path, got 'scripts'"),
    ("roots", [None], "roots[0]: expected an absolute directory path, got None"),
]


@pytest.mark.parametrize("field, value, expected", MALFORMED_TOP_LEVEL)
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


# The index a worker's finder reads the manifest through (LazyManifest): it must answer
# as load() does, check each entry when it is first asked for, and be used only while it
# matches manifest.json and names.txt byte for byte.
OTHER = {"names": ["tools.deep.helper"], "path": "modules/tools/deep/helper/__init__.py", "sha256": "b" * 64,
         "package": True, "original": "/proj/tools/deep/helper/__init__.py"}


def indexed(tmp_path: Path, data: dict[str, object]) -> tuple[Path, str]:
    """manifest.json as the bundler writes it, with names.txt and index.txt; the manifest's
    path and what names.txt lists."""
    path = manifest(tmp_path, None, json.dumps(data, indent=2).encode())
    listed = [Source(tuple(entry["names"]), "", "", "", False) for entry in data["modules"]]  # type: ignore[attr-defined]
    names = dump_names(Manifest(str(path), listed))
    (tmp_path / "names.txt").write_text(names)
    index = dump_index(path.read_bytes(), names.encode())
    assert index is not None
    (tmp_path / INDEX_NAME).write_text(index)
    return path, names


def lazy(path: Path, names: str) -> LazyManifest:
    found = LazyManifest.read(str(path), frozenset(names.split()))
    assert found is not None
    return found


def test_the_index_answers_as_load_does(tmp_path: Path) -> None:
    data = {"hn_modulefix": 1, "modules": [GOOD, OTHER], "snapshot": True, "roots": ["/proj"]}
    path, names = indexed(tmp_path, data)
    strict, found = load(str(path)), lazy(path, names)
    assert (found.snapshot, found.roots, len(found)) == (True, frozenset({"/proj"}), 2)
    for name in names.split():
        source, expected = found.source(name), strict.source(name)
        assert (name, found.is_parent(name)) == (name, strict.is_parent(name))
        if expected is None:
            assert source is None and found.parent_dir(name) == strict.parent_dir(name)
        else:
            assert source is not None and [getattr(source, field) for field in Source.__slots__] == \
                [getattr(expected, field) for field in Source.__slots__]
    assert found.source("unlisted") is None and not found.is_parent("unlisted")
    # Both names of a file are one Source: the finder executes it once.
    assert found.source("pipeline") is found.source("scripts.pipeline")


@pytest.mark.parametrize("field, value, expected", [case for case in MALFORMED_ENTRIES if case[0] != "names"])
def test_a_malformed_entry_breaks_only_its_own_names(tmp_path: Path, field: str, value: object,
                                                     expected: str) -> None:
    path, names = indexed(tmp_path, {"hn_modulefix": 1, "modules": [OTHER, dict(GOOD, **{field: value})]})
    with pytest.raises(ManifestError) as strict:
        load(str(path))
    found = lazy(path, names)
    assert found.source("tools.deep.helper") is not None  # never asks for the other entry
    with pytest.raises(ManifestError) as info:
        found.source("scripts.pipeline")
    assert str(info.value) == str(strict.value) and expected.replace("[0]", "[1]") in str(info.value)
    with pytest.raises(ManifestError):
        found.parent_dir("scripts")  # implied by that entry alone


@pytest.mark.parametrize("names", [["json"], ["pipeline", "logging.handlers"]])
def test_a_standard_library_name_refuses_the_whole_manifest(tmp_path: Path, names: list[str]) -> None:
    # Checked up front: the hook's finder, disabled, then answers no name at all.
    path, listed = indexed(tmp_path, {"hn_modulefix": 1, "modules": [OTHER, dict(GOOD, names=names)]})
    with pytest.raises(ManifestError) as strict:
        load(str(path))
    with pytest.raises(ManifestError) as info:
        LazyManifest.read(str(path), frozenset(listed.split()))
    assert str(info.value) == str(strict.value)


@pytest.mark.parametrize("field, value, expected", MALFORMED_TOP_LEVEL)
def test_malformed_top_level_fields_through_the_index(tmp_path: Path, field: str, value: object,
                                                      expected: str) -> None:
    path, names = indexed(tmp_path, {"hn_modulefix": 1, "modules": [GOOD], field: value})
    with pytest.raises(ManifestError) as info:
        LazyManifest.read(str(path), frozenset(names.split()))
    assert str(info.value) == "manifest %s: %s" % (path, expected)


def damage(path: Path, word: str) -> None:
    """One byte of `path` changed inside the first `word`, the length unchanged: a damaged
    or hand-edited file."""
    text = path.read_text()
    at = text.index(word) + 1
    path.write_text(text[:at] + "X" + text[at + 1:])


@pytest.mark.parametrize("change", ["manifest outside the entries", "manifest longer", "names", "index",
                                    "index header", "no index"])
def test_an_index_that_does_not_match_is_not_used(tmp_path: Path, change: str) -> None:
    path, names = indexed(tmp_path, {"hn_modulefix": 1, "modules": [GOOD], "roots": ["/proj"]})
    index = tmp_path / INDEX_NAME
    if change == "no index":
        index.unlink()
    elif change == "index header":
        index.write_text(index.read_text().replace(" 2 ", " 1 ", 1))  # another format's
    elif change == "manifest longer":
        path.write_text(path.read_text() + " ")
    else:
        damage({"manifest outside the entries": path, "names": tmp_path / "names.txt", "index": index}[change],
               "proj" if change.startswith("manifest") else "pipeline")
    assert LazyManifest.read(str(path), frozenset(names.split())) is None  # load() reads the manifest instead


def test_an_entry_whose_bytes_are_not_those_indexed_fails_only_its_own_names(tmp_path: Path) -> None:
    # Checked when used, not up front (the whole of a 2,500-entry manifest costs a fresh
    # worker 1 ms): damage in an entry nobody asks for breaks nothing.
    path, names = indexed(tmp_path, {"hn_modulefix": 1, "modules": [OTHER, GOOD]})
    damage(path, '"modules/scripts/pipeline.py"')  # still valid JSON, still a valid entry: only its bytes tell
    found = lazy(path, names)
    assert found.source("tools.deep.helper") is not None
    for name in ("pipeline", "scripts.pipeline"):
        with pytest.raises(ManifestError, match=r"index\.txt: does not match the manifest at modules\[1\]"):
            found.source(name)


@pytest.mark.parametrize("modules, names", [
    ([GOOD, dict(GOOD, path="modules/other.py")], None),  # a name listed twice: which entry answers?
    ([dict(GOOD, names="pipeline")], "pipeline\n"),  # no list of names to index
    ([GOOD], "pipeline\n"),  # names.txt without the implied package
    ([GOOD], "pipeline\nscripts\nscripts.pipeline\nother\n"),  # or with another name
])
def test_no_index_for_a_manifest_whose_names_it_cannot_vouch_for(modules: list[object], names: str | None) -> None:
    raw = json.dumps({"hn_modulefix": 1, "modules": modules}).encode()
    assert dump_index(raw, (names or "pipeline\nscripts\nscripts.pipeline\n").encode()) is None


def test_no_index_for_a_manifest_that_is_not_ascii() -> None:
    # As the bundler writes none: offsets in bytes and in characters would differ.
    names = b"pipeline\nscripts\nscripts.pipeline\n"
    document = {"hn_modulefix": 1, "modules": [GOOD], "roots": ["/pr\u00f3j"]}
    assert dump_index(json.dumps(document).encode(), names) is not None
    assert dump_index(json.dumps(document, ensure_ascii=False).encode(), names) is None


def test_an_index_pointing_at_another_entry_is_refused(tmp_path: Path) -> None:
    import binascii

    path, names = indexed(tmp_path, {"hn_modulefix": 1, "modules": [GOOD, OTHER]})
    index = tmp_path / INDEX_NAME
    header, body = index.read_text().split("\n", 1)
    lines = body.splitlines()
    spans = [line.split(" ", 2)[2] for line in lines]  # "start end checksum" of modules[0], [0], [1]
    body = "".join("%s %s\n" % (line.rsplit(" ", 3)[0], span) for line, span in zip(lines, spans[::-1]))
    fields = header.split()
    fields[5] = str(binascii.crc32(body.encode()))  # as if written so: only the spans disagree
    index.write_text(" ".join(fields) + "\n" + body)
    with pytest.raises(ManifestError, match=r"index\.txt: does not match the manifest at modules\[1\]"):
        lazy(path, names).source("tools.deep.helper")
