"""The bundle manifest: which module names map to which shipped file, and its sha256.

Format (``manifest.json`` at the root of a bundle directory)::

    {"hn_modulefix": 1,
     "modules": [{"names": ["pipeline", "scripts.pipeline"],
                  "path": "modules/scripts/pipeline.py",
                  "sha256": "<64 hex digits>",
                  "package": false,
                  "original": "/home/me/proj/scripts/pipeline.py"}],
     "snapshot": true,
     "roots": ["/home/me/proj", "/home/me/proj/scripts"]}

``path`` is relative to the manifest's directory and may not leave it.  ``original``
(optional) is where the driver's file was when bundled: a process that finds it there,
unchanged, runs that file instead of the copy.  ``snapshot`` (optional, default false)
marks a bundle the running driver made of the bytes it runs (`ship()` and the
integrations): there an original with other content is passed over for the shipped copy;
in a bundle made ahead of time it is refused, since the driver may run the newer file.
``roots`` (optional) are the directories the bundle came from: those the listed names
were found in and, for a snapshot, the driver's main script's; a program whose own script
lies elsewhere keeps its own modules.  ``names.txt`` beside the manifest lists
every name and implied parent package, one per line, for the start-up hook, which must
not import `json` to know which names are not its own.  ``index.txt`` (see dump_index)
lets a worker's finder check and decode only the entries it uses.
"""

from __future__ import annotations

import keyword
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # `typing` is not loaded in a fresh worker, and this module must load fast
    from typing import Any, Callable, Iterable

FORMAT = 1
MANIFEST_NAME = "manifest.json"
# Beside manifest.json, for the finder of a worker: where each name's entry lies in it.
INDEX_NAME = "index.txt"
INDEX_HEADER = "hn_modulefix index 2"  # 1 checked all of manifest.json up front
_HEX = frozenset("0123456789abcdef")


class ManifestError(ValueError):
    """A manifest that cannot be used: names the file, the field and what is wrong."""


class Source:
    """One shipped file and every name it may be imported under."""

    __slots__ = ("names", "relpath", "path", "sha256", "package", "original")

    def __init__(self, names: tuple[str, ...], relpath: str, path: str, sha256: str, package: bool,
                 original: str | None = None) -> None:
        self.names = names
        self.relpath = relpath
        self.path = path  # the shipped copy
        self.sha256 = sha256
        self.package = package
        self.original = original  # the driver's file when bundled

    def __repr__(self) -> str:
        return "Source(%r, %r)" % (self.names, self.relpath)


class Manifest:
    __slots__ = ("path", "directory", "sources", "by_name", "parents", "parent_dirs", "snapshot", "roots")

    def __init__(self, path: str, sources: "list[Source] | tuple[Source, ...]", snapshot: bool = False,
                 roots: "frozenset[str] | None" = None) -> None:
        self.path = path
        self.directory = os.path.dirname(path)
        self.sources = tuple(sources)
        self.snapshot = snapshot
        self.roots = roots  # None: not recorded (a bundle of v0.2, or written by hand)
        self.by_name: dict[str, Source] = {}
        for source in self.sources:
            for name in source.names:
                self.by_name[name] = source
        # Package names implied by dotted aliases (``scripts`` for ``scripts.pipeline``)
        # that no shipped file provides; the finder synthesizes them if nothing else can.
        # Each one's directory, shipped and original, found from the first file listed
        # under it: the parent package's __path__ must enclose its children's files.
        self.parent_dirs: dict[str, tuple[str, str | None]] = {}
        for source in self.sources:
            for name in source.names:
                for parent in _parents(name):
                    if parent not in self.by_name and parent not in self.parent_dirs:
                        self.parent_dirs[parent] = _parent_dirs(source, parent)
        self.parents = frozenset(self.parent_dirs)

    # The finder's questions, which LazyManifest answers too.
    def source(self, name: str) -> Source | None:
        return self.by_name.get(name)

    def is_parent(self, name: str) -> bool:
        return name in self.parent_dirs

    def parent_dir(self, name: str) -> tuple[str, str | None]:
        return self.parent_dirs[name]

    def __len__(self) -> int:
        return len(self.sources)

    def __repr__(self) -> str:
        return "Manifest(%r, %d modules)" % (self.path, len(self.sources))


def _parent_dirs(source: Source, parent: str) -> tuple[str, str | None]:
    """The directories, shipped and original, of package `parent` of a name of `source`."""
    up = parent.count(".") + 1
    return (enclosing(source.path, source.package, up),
            enclosing(source.original, source.package, up) if source.original else None)


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def enclosing(path: str, package: bool, levels: int) -> str:
    """The directory `levels` packages above the module whose file is `path`."""
    directory = os.path.dirname(os.path.dirname(path) if package else path)
    for _ in range(levels - 1):
        directory = os.path.dirname(directory)
    return directory


def is_module_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and name != "__main__"
        and all(part.isidentifier() and not keyword.iskeyword(part) for part in name.split("."))
    )


def _sha256_type() -> Callable[[bytes], Any]:
    # The bare C implementation (`_sha2` from Python 3.12, `_sha256` before): `hashlib`
    # loads OpenSSL first, which costs a fresh worker about 2 ms for the digest it needs.
    for module in ("_sha2", "_sha256", "hashlib"):
        try:
            return getattr(__import__(module), "sha256")  # type: ignore[no-any-return]
        except ImportError:
            continue
    raise ImportError("no sha256 implementation in this interpreter")


_sha256: Callable[[bytes], Any] | None = None  # found once: a failed import searches all of sys.path


def sha256_bytes(data: bytes) -> str:
    global _sha256
    if _sha256 is None:
        _sha256 = _sha256_type()
    return str(_sha256(data).hexdigest())


class SourceChanged(ValueError):
    """A file whose bytes are not the ones the manifest lists."""

    def __init__(self, path: str, listed: str, found: str) -> None:
        super().__init__("%s: sha256 %s, listed %s" % (path, found, listed))
        self.path = path
        self.listed = listed
        self.found = found


def read_matching(path: str, sha256: str) -> bytes:
    """The file's bytes, only if their sha256 is `sha256`: OSError when the file cannot be
    read, SourceChanged when it differs (the finder and doctor word both)."""
    with open(path, "rb") as f:
        data = f.read()
    digest = sha256_bytes(data)
    if digest != sha256:
        raise SourceChanged(path, sha256, digest)
    return data


def read_verified(source: Source) -> bytes:
    """The shipped copy's bytes, only if they are the listed ones (see read_matching)."""
    return read_matching(source.path, source.sha256)


def locate(reference: str) -> str:
    """The manifest file a HN_MODULEFIX_MANIFEST value names: a path, or
    ``pythonpath:DIR/manifest.json`` for the first sys.path entry that holds it."""
    from _hn_modulefix_boot import ON_PYTHONPATH
    from _hn_modulefix_boot import locate as boot_locate

    found = boot_locate(reference)
    if found is None:
        raise ManifestError("manifest %s: no sys.path entry holds %s" % (reference, reference[len(ON_PYTHONPATH):]))
    return found


class _Decoding:
    """What the C JSON scanner reads its settings from: json.JSONDecoder's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    array_hook = None  # read by the scanner of Python 3.15
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def _decode(text: str) -> object:
    """json.loads without importing `json` for a well-formed manifest: the module pulls in
    `re` and `enum`, about 5 ms in a fresh worker, for one small file.  The C scanner
    behind json.loads does the work; anything it does not accept is handed to json.loads,
    for its result or its error message."""
    try:
        from _json import make_scanner

        start = len(text) - len(text.lstrip(" \t\n\r"))
        value, end = make_scanner(_Decoding())(text, start)  # type: ignore[arg-type]  # duck-typed decoder
        if not text[end:].strip(" \t\n\r"):
            return value
    except Exception:  # StopIteration, ValueError, RecursionError, SystemError on some truncations
        pass
    import json

    return json.loads(text)


def load(path: str) -> Manifest:
    """Read and validate a manifest; any problem raises ManifestError naming the field."""
    path = locate(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ManifestError("cannot read manifest %s: %s" % (path, exc.strerror or exc)) from exc
    try:
        data = _decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8; nesting beyond the recursion limit
        raise ManifestError("manifest %s is not valid JSON: %s" % (path, exc)) from exc
    return parse(data, path)


def _shown(value: object) -> str:
    """A JSON value for an error message: repr of a nested array or object could recurse
    past the limit or fill the one stderr line the start-up hook prints."""
    if isinstance(value, (list, dict)):
        return "a JSON %s" % ("array" if isinstance(value, list) else "object")
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _failing(path: str) -> Callable[[str, str], ManifestError]:
    def fail(where: str, problem: str) -> ManifestError:
        return ManifestError("manifest %s: %s: %s" % (path, where, problem))
    return fail


def _standard() -> frozenset[str]:
    # Listed names are answered ahead of the path finder: a standard one would replace the
    # standard module in every process.  (Python 3.9 has no list; the bundler checks there.)
    return frozenset(getattr(sys, "stdlib_module_names", ()))


def _top(data: object, path: str) -> tuple[list[object], bool, frozenset[str] | None]:
    """The manifest's fields other than each entry of `modules`, checked."""
    fail = _failing(path)
    if not isinstance(data, dict):
        raise fail("top level", "expected a JSON object, got %s" % type(data).__name__)
    version = data.get("hn_modulefix")
    if type(version) is not int or version != FORMAT:  # JSON true and 1.0 equal 1 in Python
        raise fail("hn_modulefix", "expected format %d, got %s" % (FORMAT, _shown(version)))
    modules = data.get("modules")
    if not isinstance(modules, list):
        raise fail("modules", "expected a list, got %s" % type(modules).__name__)
    snapshot = data.get("snapshot", False)
    if not isinstance(snapshot, bool):
        raise fail("snapshot", "expected true or false, got %s" % _shown(snapshot))
    roots = data.get("roots")
    if roots is not None:
        if not isinstance(roots, list):
            raise fail("roots", "expected a list of absolute directory paths, got %s" % type(roots).__name__)
        for index, root in enumerate(roots):
            if not isinstance(root, str) or not os.path.isabs(root) or "\0" in root:
                raise fail("roots[%d]" % index, "expected an absolute directory path, got %s" % _shown(root))
    return modules, snapshot, None if roots is None else frozenset(roots)


def _names_of(entry: object, where: str, fail: Callable[[str, str], ManifestError]) -> list[str]:
    if not isinstance(entry, dict):
        raise fail(where, "expected an object, got %s" % type(entry).__name__)
    names = entry.get("names")
    if not isinstance(names, list) or not names:
        raise fail(where + ".names", "expected a non-empty list of module names")
    for name in names:
        if not is_module_name(name):
            raise fail(where + ".names", "%s is not a valid module name" % _shown(name))
    return names


def _entry(entry: object, index: int, path: str, standard: frozenset[str], seen: dict[str, int]) -> Source:
    """modules[index] of the manifest at `path`, checked; `seen`: the names of the entries
    before it (this one's are added)."""
    fail = _failing(path)
    where = "modules[%d]" % index
    names = _names_of(entry, where, fail)
    assert isinstance(entry, dict)
    for name in names:
        if name in seen:
            raise fail(where + ".names", "%r is already listed in modules[%d]" % (name, seen[name]))
        if name.split(".")[0] in standard:
            raise fail(where + ".names", "%r is a standard-library module name, which is never shipped" % name)
        seen[name] = index
    relpath = entry.get("path")
    if not isinstance(relpath, str) or not relpath:
        raise fail(where + ".path", "expected a non-empty string")
    parts = relpath.split("/")
    if relpath.startswith("/") or "\\" in relpath or "\0" in relpath or any(p in ("", ".", "..") for p in parts):
        raise fail(where + ".path", "%s must be a plain relative path inside the bundle" % _shown(relpath))
    digest = entry.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64 or not _HEX.issuperset(digest):
        raise fail(where + ".sha256", "expected 64 lowercase hex digits, got %s" % _shown(digest))
    package = entry.get("package", False)
    if not isinstance(package, bool):
        raise fail(where + ".package", "expected true or false, got %s" % _shown(package))
    if package and parts[-1] != "__init__.py":
        raise fail(where + ".path", "a package's file must be named __init__.py, got %s" % _shown(relpath))
    if not package and not relpath.endswith(".py"):
        raise fail(where + ".path", "a module's file must end in .py, got %s" % _shown(relpath))
    original = entry.get("original")
    if original is not None and (not isinstance(original, str) or not os.path.isabs(original)
                                 or "\0" in original or os.path.basename(original) != parts[-1]):
        raise fail(where + ".original", "expected the absolute path of a file named %s, got %s"
                   % (parts[-1], _shown(original)))
    return Source(tuple(names), relpath, os.path.join(os.path.dirname(path), *parts), digest, package, original)


def parse(data: object, path: str) -> Manifest:
    modules, snapshot, roots = _top(data, path)
    standard = _standard()
    seen: dict[str, int] = {}
    return Manifest(path, [_entry(entry, index, path, standard, seen) for index, entry in enumerate(modules)],
                    snapshot, roots)


def dump(sources: "list[Source] | tuple[Source, ...]", snapshot: bool = False,
         roots: "Iterable[str] | None" = None) -> str:
    import json

    entries = []
    for s in sources:
        entry: dict[str, object] = {"names": list(s.names), "path": s.relpath, "sha256": s.sha256,
                                    "package": s.package}
        if s.original is not None:
            entry["original"] = s.original
        entries.append(entry)
    document: dict[str, object] = {"hn_modulefix": FORMAT, "modules": entries}
    if snapshot:
        document["snapshot"] = True
    if roots is not None:
        document["roots"] = sorted(set(roots))
    return json.dumps(document, indent=2) + "\n"


def dump_names(manifest: Manifest) -> str:
    return "".join(name + "\n" for name in sorted(set(manifest.by_name) | manifest.parents))


def _checksum(data: bytes) -> int:
    # CRC-32, not sha256 (3 ms for a 2,500-entry manifest in a fresh worker, 0.3 ms): it
    # tells an index from another manifest or names.txt, as written or damaged.  Whoever
    # could forge it can write manifest.json itself, which the index only speeds up.
    # Even CRC-32 is 4 instructions a byte (1 ms for that manifest's 843 kB), so the
    # entries are each checked when used rather than all up front.
    from binascii import crc32

    return crc32(data)


def dump_index(manifest: bytes, names: bytes) -> str | None:
    """index.txt for the bytes of manifest.json and names.txt: a header with the checksum
    of the manifest's bytes outside the `modules` list, the checksums of names.txt and of
    the rest of the index, and where the `modules` list lies and its length; then, for
    each listed name in the order of the manifest, the index of its entry, where that
    entry lies (offsets in the manifest's bytes) and the checksum of its bytes.  Derived
    from the bytes alone, without checking the entries: the finder checks each entry, its
    bytes and each name against the standard library, when it uses them.  None when the
    manifest cannot have one: not ASCII (as every bundle is), not a JSON object with a
    list `modules`, or an entry without a list of module names found nowhere else
    (ManifestError from load() says which)."""
    try:
        text = manifest.decode("ascii")
        from _json import make_scanner

        scan = make_scanner(_Decoding())  # type: ignore[arg-type]  # duck-typed decoder
        lines: list[str] = []
        seen: set[str] = set()
        span = _walk(text, scan, lines, seen)
    except Exception:  # not JSON, not a manifest's shape; or a scanner that wants other settings
        return None
    if span is None or set(names.decode("utf-8", "replace").split()) != seen.union(*map(_parents, seen)):
        return None  # names.txt does not list the manifest's names and their packages
    body = "".join(lines)
    rest = manifest[:span[0]] + manifest[span[1]:]
    return "%s %d %d %d %d %d %d\n%s" % (INDEX_HEADER, _checksum(rest), _checksum(names), _checksum(body.encode("ascii")),
                                         span[0], span[1], span[2], body)


def _walk(text: str, scan: Callable[[str, int], tuple[object, int]], lines: list[str],
          seen: set[str]) -> tuple[int, int, int] | None:
    """The span of the `modules` list of the manifest `text` and its length, each of its names added to
    `lines` as "name index start end checksum" (None: see dump_index)."""
    def skip(at: int) -> int:
        while text[at] in " \t\n\r":
            at += 1
        return at

    at = skip(0)
    if text[at] != "{":
        return None
    at = skip(at + 1)
    span = None
    while text[at] != "}":
        key, at = scan(text, at)
        at = skip(at)
        if text[at] != ":":
            raise ValueError("not JSON")
        at = skip(at + 1)
        if key == "modules" and text[at] == "[":
            start = at = at + 1
            at = skip(at)
            index = 0
            while text[at] != "]":
                entry, end = scan(text, at)
                names = entry.get("names") if isinstance(entry, dict) else None
                if not isinstance(names, list) or not all(is_module_name(n) and n not in seen for n in names):
                    return None  # also a name listed twice: which entry answers it?
                seen.update(names)
                checksum = _checksum(text[at:end].encode("ascii"))
                lines.extend("%s %d %d %d %d\n" % (name, index, at, end, checksum) for name in names)
                at = skip(end)
                if text[at] == ",":
                    at = skip(at + 1)
                index += 1
            span = (start, at, index)
            at += 1
        else:
            _, at = scan(text, at)
        at = skip(at)
        if text[at] == ",":
            at = skip(at + 1)
    return span if not text[at + 1:].strip(" \t\n\r") else None


class LazyManifest:
    """The manifest as a worker's finder reads it through index.txt: the fields other than
    `modules` and the names are checked up front, each entry (checked as parse() checks
    it, its bytes against the index) only when one of its names is first asked for.  A
    2,500-entry manifest otherwise costs a fresh worker 25 ms at its first listed import,
    for the two or three entries it uses.  A malformed entry never asked for breaks
    nothing; one asked for raises the ManifestError that load() would, and one whose bytes
    are not those indexed raises one saying so."""

    def __init__(self, path: str, raw: bytes, index: str, names: frozenset[str], snapshot: bool,
                 roots: frozenset[str] | None, entries: int) -> None:
        self.path = path
        self.directory = os.path.dirname(path)
        self.snapshot = snapshot
        self.roots = roots
        self.names = names
        self.entries = entries
        self._raw = raw  # decoded an entry at a time: all of it is 1.1 M instructions at 2,500 entries
        self._index = index
        self._sources: dict[str, Source | None] = {}
        self._parent_dirs: dict[str, tuple[str, str | None]] = {}

    @classmethod
    def read(cls, path: str, names: frozenset[str]) -> LazyManifest | None:
        """The manifest at `path` (absolute) whose names.txt listed `names` (as the start-up
        hook read it; the index's checksum of names.txt is checked here), read through
        its index; None where there is no index or it does not match names.txt or the
        bytes of manifest.json outside the `modules` list: load() reads the manifest
        instead.  ManifestError for a problem outside the entries, or a
        standard-library name.  An entry's bytes are checked when it is used: other bytes
        there fail its names alone (source())."""
        from _hn_modulefix_boot import NAMES_FILE

        directory = os.path.dirname(path)
        try:
            with open(os.path.join(directory, INDEX_NAME), "rb") as f:
                index = f.read().decode("ascii")
            with open(path, "rb") as f:
                raw = f.read()
            with open(os.path.join(directory, NAMES_FILE), "rb") as f:
                names_raw = f.read()
        except (OSError, ValueError):
            return None
        header, _, body = index.partition("\n")
        fields = header[len(INDEX_HEADER):].split()
        if (not header.startswith(INDEX_HEADER + " ") or len(fields) != 6 or not all(f.isdigit() for f in fields)
                or int(fields[1]) != _checksum(names_raw) or int(fields[2]) != _checksum(body.encode("ascii"))):
            return None
        # Bytes added, removed or changed anywhere but inside an entry change these; inside
        # one, its own checksum (source()).
        start, end = int(fields[3]), int(fields[4])
        outside = raw[:start] + raw[end:]
        if int(fields[0]) != _checksum(outside):
            return None
        try:
            rest = _decode(outside.decode("ascii"))
        except (ValueError, RecursionError):
            return None  # an index written for other bytes after all: load() says what is wrong
        _, snapshot, roots = _top(rest, path)
        manifest = cls(path, raw, "\n" + body, names, snapshot, roots, int(fields[5]))
        standard = names & _standard()  # every listed top-level name is in names.txt
        if standard:
            # Worded as load() words it, for the first entry listing one.
            found = [(manifest._find(name + " "), manifest._find(name + ".")) for name in standard]
            first = min(at for pair in found for at in pair if at >= 0)
            name, index = manifest._line(first)[:2]
            raise _failing(path)("modules[%s].names" % index,
                                 "%r is a standard-library module name, which is never shipped" % name)
        return manifest

    def _find(self, prefix: str) -> int:
        """Where the first line of the index starting with `prefix` is (-1: none)."""
        return self._index.find("\n" + prefix)

    def _line(self, at: int) -> list[str]:
        """name, entry index, start, end, checksum: the index line at `at`."""
        return self._index[at + 1:self._index.find("\n", at + 1)].split()

    def source(self, name: str) -> Source | None:
        try:
            return self._sources[name]
        except KeyError:
            pass
        at = self._find(name + " ")
        source = None
        if at >= 0:
            _, index, start, end, checksum = self._line(at)
            data = self._raw[int(start):int(end)]
            try:
                # Bytes other than those indexed (damaged, or edited by hand) are never used.
                entry = _decode(data.decode("ascii")) if _checksum(data) == int(checksum) else None
            except (ValueError, RecursionError):
                entry = None
            # Names and duplicates were checked with the index, standard names on opening.
            source = None if entry is None else _entry(entry, int(index), self.path, frozenset(), {})
            if source is None or name not in source.names:
                raise _failing(self.path)(INDEX_NAME, "does not match the manifest at modules[%s]: re-run "
                                          "`hn-modulefix bundle`" % index)
            for alias in source.names:
                self._sources[alias] = source
        self._sources[name] = source
        return source

    def is_parent(self, name: str) -> bool:
        return name in self.names and self.source(name) is None

    def parent_dir(self, name: str) -> tuple[str, str | None]:
        try:
            return self._parent_dirs[name]
        except KeyError:
            pass
        at = self._find(name + ".")
        if at < 0 or not self.is_parent(name):
            raise KeyError(name)
        child = self.source(self._line(at)[0])
        assert child is not None
        found = self._parent_dirs[name] = _parent_dirs(child, name)
        return found

    def __len__(self) -> int:
        return self.entries

    def __repr__(self) -> str:
        return "LazyManifest(%r)" % self.path
