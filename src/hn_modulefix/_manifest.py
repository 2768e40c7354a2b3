"""The bundle manifest: which module names map to which shipped file, and its sha256.

Format (``manifest.json`` at the root of a bundle directory)::

    {"hn_modulefix": 1,
     "modules": [{"names": ["pipeline", "scripts.pipeline"],
                  "path": "modules/scripts/pipeline.py",
                  "sha256": "<64 hex digits>",
                  "package": false}]}

``path`` is relative to the manifest's directory and may not leave it.
"""

from __future__ import annotations

import json
import keyword
import os
import sys

FORMAT = 1
MANIFEST_NAME = "manifest.json"
_HEX = frozenset("0123456789abcdef")


class ManifestError(ValueError):
    """A manifest that cannot be used: names the file, the field and what is wrong."""


class Source:
    """One shipped file and every name it may be imported under."""

    __slots__ = ("names", "relpath", "path", "sha256", "package")

    def __init__(self, names: tuple[str, ...], relpath: str, path: str, sha256: str, package: bool) -> None:
        self.names = names
        self.relpath = relpath
        self.path = path
        self.sha256 = sha256
        self.package = package

    def __repr__(self) -> str:
        return "Source(%r, %r)" % (self.names, self.relpath)


class Manifest:
    __slots__ = ("path", "directory", "sources", "by_name", "parents")

    def __init__(self, path: str, sources: "list[Source] | tuple[Source, ...]") -> None:
        self.path = path
        self.directory = os.path.dirname(path)
        self.sources = tuple(sources)
        self.by_name: dict[str, Source] = {}
        for source in self.sources:
            for name in source.names:
                self.by_name[name] = source
        # Package names implied by dotted aliases (``scripts`` for ``scripts.pipeline``)
        # that no shipped file provides; the finder synthesizes them if nothing else can.
        self.parents = frozenset(
            parent
            for name in self.by_name
            for parent in _parents(name)
            if parent not in self.by_name
        )

    def __repr__(self) -> str:
        return "Manifest(%r, %d modules)" % (self.path, len(self.sources))


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def is_module_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and name != "__main__"
        and all(part.isidentifier() and not keyword.iskeyword(part) for part in name.split("."))
    )


def sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


class SourceChanged(ValueError):
    """A shipped file whose bytes are not the ones the manifest lists."""

    def __init__(self, source: Source, found: str) -> None:
        super().__init__("%s: sha256 %s, listed %s" % (source.path, found, source.sha256))
        self.listed = source.sha256
        self.found = found


def read_verified(source: Source) -> bytes:
    """The shipped file's bytes, only if their sha256 is the listed one: OSError when the
    file cannot be read, SourceChanged when it differs (the finder and doctor word both)."""
    with open(source.path, "rb") as f:
        data = f.read()
    digest = sha256_bytes(data)
    if digest != source.sha256:
        raise SourceChanged(source, digest)
    return data


def locate(reference: str) -> str:
    """The manifest file a HN_MODULEFIX_MANIFEST value names: a path, or
    ``pythonpath:DIR/manifest.json`` for the first sys.path entry that holds it."""
    from _hn_modulefix_boot import ON_PYTHONPATH

    if not reference.startswith(ON_PYTHONPATH):
        return os.path.abspath(reference)
    relative = reference[len(ON_PYTHONPATH):]
    for entry in sys.path:
        candidate = os.path.join(entry or os.curdir, relative)
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise ManifestError("manifest %s: no sys.path entry holds %s" % (reference, relative))


def load(path: str) -> Manifest:
    """Read and validate a manifest; any problem raises ManifestError naming the field."""
    path = locate(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ManifestError("cannot read manifest %s: %s" % (path, exc.strerror or exc)) from exc
    try:
        data = json.loads(raw)
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
    directory = os.path.dirname(path)
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
        sources.append(Source(tuple(names), relpath, os.path.join(directory, *parts), digest, package))
    return Manifest(path, sources)


def dump(sources: "list[Source] | tuple[Source, ...]") -> str:
    entries = [
        {"names": list(s.names), "path": s.relpath, "sha256": s.sha256, "package": s.package}
        for s in sources
    ]
    return json.dumps({"hn_modulefix": FORMAT, "modules": entries}, indent=2) + "\n"
