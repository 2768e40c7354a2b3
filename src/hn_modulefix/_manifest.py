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
not import `json` to know which names are not its own.
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
        # Each one's directory, shipped and original, found from a file listed under it:
        # the parent package's __path__ must enclose its children's files.
        self.parent_dirs: dict[str, tuple[str, str | None]] = {}
        for source in self.sources:
            for name in source.names:
                up = name.count(".")
                for parent in _parents(name)[::-1]:
                    if parent not in self.by_name and parent not in self.parent_dirs:
                        self.parent_dirs[parent] = (enclosing(source.path, source.package, up),
                                                    enclosing(source.original, source.package, up)
                                                    if source.original else None)
                    up -= 1
        self.parents = frozenset(self.parent_dirs)

    def __repr__(self) -> str:
        return "Manifest(%r, %d modules)" % (self.path, len(self.sources))


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


def parse(data: object, path: str) -> Manifest:
    def fail(where: str, problem: str) -> ManifestError:
        return ManifestError("manifest %s: %s: %s" % (path, where, problem))

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
    directory = os.path.dirname(path)
    # Listed names are answered ahead of the path finder: a standard one would replace the
    # standard module in every process.  (Python 3.9 has no list; the bundler checks there.)
    standard: frozenset[str] = frozenset(getattr(sys, "stdlib_module_names", ()))
    sources = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(modules):
        where = "modules[%d]" % index
        if not isinstance(entry, dict):
            raise fail(where, "expected an object, got %s" % type(entry).__name__)
        names = entry.get("names")
        if not isinstance(names, list) or not names:
            raise fail(where + ".names", "expected a non-empty list of module names")
        for name in names:
            if not is_module_name(name):
                raise fail(where + ".names", "%s is not a valid module name" % _shown(name))
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
        sources.append(Source(tuple(names), relpath, os.path.join(directory, *parts), digest, package, original))
    return Manifest(path, sources, snapshot, None if roots is None else frozenset(roots))


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
