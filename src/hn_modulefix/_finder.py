"""The meta-path finder that gives every process the driver's module for each listed name.

It sits ahead of importlib's path finder and answers only the names the manifest lists,
so that neither a namespace directory nor another module of the same name shadows them.
For a listed name it executes, in this order of preference, the first file whose bytes
have the listed sha256:

1. the regular module another finder would have loaded (Modal's mount at
   ``/root/pipeline.py`` stays the entry module's ``__file__``);
2. the driver's own file, at the path it had when bundled (files read beside it through
   ``__file__`` are found); if that file exists but changed, the import fails and says so
   rather than run code the driver no longer runs;
3. the shipped copy.

All names of one file resolve to one module object, executed once, under the first name
asked for.  Only verified bytes are executed, and bytecode only from a hash-checked cache
of exactly those bytes.
"""

from __future__ import annotations

import _imp
import _thread
import os
import sys
from importlib.machinery import ModuleSpec, SourceFileLoader

import _hn_modulefix_boot as _boot
from hn_modulefix._manifest import Manifest, Source, SourceChanged, load, read_matching

# Flags word of a hash-based pyc whose source hash is checked on load (PEP 552).
_CHECKED_HASH_PYC = b"\x03\x00\x00\x00"


class _Built:
    """Per listed file: the one module object its names share, the file it is executed
    from in this process, and the lock that makes it executed once even when threads
    import different names of it at the same time."""

    __slots__ = ("source", "module", "location", "lock")

    def __init__(self, source: Source) -> None:
        self.source = source
        self.module: object | None = None
        self.location = source.path
        # Re-entrant: a module that (indirectly) imports another of its own names while
        # executing gets the partly built module, as a plain circular import would.
        self.lock = _thread.RLock()


class ShippedLoader(SourceFileLoader):
    """The standard source loader (tracebacks at the file, bytecode caching), made to
    execute only the bytes the finder verified, and bytecode only when it was compiled
    from exactly those bytes."""

    def __init__(self, fullname: str, location: str, verified: bytes | None, finder: ManifestFinder,
                 built: _Built) -> None:
        super().__init__(fullname, location)
        self._verified = verified
        self._finder = finder
        self._built = built

    def create_module(self, spec: ModuleSpec) -> None:
        return None

    def get_data(self, path: str) -> bytes:
        if path == self.path and self._verified is not None:
            return self._verified
        data = super().get_data(path)
        if path.endswith(".pyc") and (data[4:8] != _CHECKED_HASH_PYC or _imp.check_hash_based_pycs == "never"):
            # A timestamp pyc is trusted on the source's mtime and size alone, an unchecked
            # hash pyc on nothing: either could hold other code than the verified source.
            # A checked one is compared with the hash of the verified bytes by importlib.
            raise OSError("not a hash-checked bytecode cache: %s" % path)
        return data

    def set_data(self, path: str, data: bytes, *, _mode: int = 0o666) -> None:  # type: ignore[override]
        if path.endswith(".pyc") and self._verified is not None:
            # importlib wrote a timestamp pyc; store the hash-checked kind, which the lines
            # above accept (the code object that follows the 16-byte header is the same).
            from importlib.util import source_hash

            data = data[:4] + _CHECKED_HASH_PYC + source_hash(self._verified) + data[16:]
        super().set_data(path, data, _mode=_mode)

    def exec_module(self, module: object) -> None:
        built = self._built
        with built.lock:
            existing = built.module if built.module is not None else self._loaded_elsewhere(module)
            if existing is not None:
                # importlib re-reads sys.modules after exec_module: the alias becomes the
                # one module object and the empty module made for this name is dropped.
                built.module = existing
                sys.modules[self.name] = existing  # type: ignore[assignment]
                return
            if self._verified is None:
                # This spec's bytes went to an earlier, failed execution: verify afresh.
                self._verified = self._finder.verified(self.name, built, self.path)
            built.module = module
            try:
                super().exec_module(module)  # type: ignore[arg-type]
            except BaseException as exc:
                built.module = None
                for name, value in list(sys.modules.items()):
                    if value is module:
                        del sys.modules[name]
                if isinstance(exc, Exception):
                    raise self._finder.error(self.name, built, self.path, _describe(exc)) from exc
                raise
            finally:
                self._verified = None

    def _loaded_elsewhere(self, module: object) -> object | None:
        """Another name of this file already imported without this finder (before it
        was installed, say) is reused when its source is byte-identical, so that pickles
        naming either name meet the same classes."""
        for name in self._built.source.names:
            other = sys.modules.get(name)
            origin = getattr(other, "__file__", None)
            if other is None or other is module or not isinstance(origin, str):
                continue
            # Another thread's import of this file under another name, not executed yet
            # (or failed): reusing it would hand out an empty module.
            loader = getattr(getattr(other, "__spec__", None), "loader", None)
            if isinstance(loader, ShippedLoader) and loader._built is self._built:
                continue
            try:
                read_matching(origin, self._built.source.sha256)
            except (OSError, SourceChanged):
                continue
            return other
        return None


def from_bundle(spec: object) -> bool:
    """Whether the module with this __spec__ was loaded by the finder (a worker rebuilding
    it), not by the program that imported it first."""
    return isinstance(getattr(spec, "loader", None), ShippedLoader)


def _rebuild_error(exc: BaseException | None) -> bool:
    return isinstance(exc, ImportError) and str(exc).startswith("hn_modulefix cannot rebuild")


def _describe(exc: BaseException) -> str:
    if _rebuild_error(exc):
        # Each module on an import chain wraps the error of the one it imports: name the
        # innermost, the root cause, first, and the modules on the way after it.
        chain = [exc]
        while _rebuild_error(chain[-1].__cause__):
            chain.append(chain[-1].__cause__)  # type: ignore[arg-type]
        names = " -> ".join(repr(getattr(e, "name", None)) for e in chain)
        return "while executing, %s%s" % (chain[-1], " (import chain: %s)" % names if len(chain) > 1 else "")
    if isinstance(exc, SyntaxError):
        return "syntax error at line %s: %s" % (exc.lineno, exc.msg)
    return "executing it raised %s: %s" % (type(exc).__name__, exc)


def _elsewhere(fullname: str, path: object, target: object) -> ModuleSpec | None:
    """The spec the rest of sys.meta_path gives `fullname`: what importlib would load
    without hn_modulefix."""
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None or getattr(finder, "_hn_modulefix_finder", False):
            continue
        spec = find(fullname, path, target)
        if spec is not None:
            return spec  # type: ignore[no-any-return]
    return None


class ManifestFinder:
    _hn_modulefix_finder = True

    def __init__(self, manifest: Manifest, reference: str | None = None) -> None:
        # As installed (a pythonpath: reference stays one), so installing it again matches.
        self.manifest_path = reference or manifest.path
        self.manifest = manifest
        self.names = frozenset(manifest.by_name) | manifest.parents
        self._built: dict[str, _Built] = {}
        self._lock = _thread.allocate_lock()

    @classmethod
    def from_path(cls, manifest_path: str) -> ManifestFinder:
        return cls(load(manifest_path), manifest_path)

    def __repr__(self) -> str:
        return "<hn_modulefix finder %s (%d modules)>" % (self.manifest.path, len(self.manifest.sources))

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        source = self.manifest.by_name.get(fullname)
        if source is None:
            if fullname in self.manifest.parents:
                return self._parent_spec(fullname, path, target)
            return None
        built = self._built_for(source)
        verified = None
        with built.lock:
            if built.module is None:
                built.location, verified = self._resolve(fullname, built, path, target)
            location = built.location
        spec = ModuleSpec(fullname, ShippedLoader(fullname, location, verified, self, built),
                          origin=location, is_package=source.package)
        if source.package:
            # Where its submodules are: a listed one is answered here first anyway.
            spec.submodule_search_locations = [os.path.dirname(location)]
        spec.has_location = True  # sets __file__ and __cached__ from origin
        return spec

    def invalidate_caches(self) -> None:
        pass

    def _resolve(self, fullname: str, built: _Built, path: object, target: object) -> tuple[str, bytes]:
        """The file to execute `fullname` from, and its verified bytes."""
        source = built.source
        spec = _elsewhere(fullname, path, target)
        origin = getattr(spec, "origin", None)
        if (spec is not None and spec.has_location and isinstance(origin, str) and origin.endswith(".py")
                and (spec.submodule_search_locations is not None) == source.package):
            try:
                return origin, read_matching(origin, source.sha256)
            except (OSError, SourceChanged):
                pass  # another module of this name: it must not shadow the driver's
        if source.original is not None:
            try:
                return source.original, read_matching(source.original, source.sha256)
            except SourceChanged as exc:
                raise self.error(fullname, built, source.original, "it changed since it was bundled (sha256 %s, listed "
                                 "%s): re-bundle (`hn-modulefix bundle`, or hn_modulefix.ship()) so that every "
                                 "process runs what the driver runs" % (exc.found[:12], exc.listed[:12])) from exc
            except OSError:
                pass  # not on this machine: the shipped copy stands in for it
        return source.path, self.verified(fullname, built, source.path)

    def verified(self, fullname: str, built: _Built, location: str) -> bytes:
        try:
            return read_matching(location, built.source.sha256)
        except FileNotFoundError as exc:
            raise self.error(fullname, built, location, "the shipped file is missing") from exc
        except IsADirectoryError as exc:
            raise self.error(fullname, built, location, "the shipped path is a directory, not a file") from exc
        except OSError as exc:
            raise self.error(fullname, built, location, "the shipped file cannot be read: %s"
                             % (exc.strerror or exc)) from exc
        except SourceChanged as exc:
            raise self.error(fullname, built, location, "sha256 mismatch: the manifest lists %s, the file has %s "
                             "(changed after bundling? re-run `hn-modulefix bundle`)"
                             % (exc.listed[:12], exc.found[:12])) from exc

    def error(self, fullname: str, built: _Built, location: str, reason: str) -> ImportError:
        source = built.source
        others = [n for n in source.names if n != fullname]
        alias = " (also listed as %s)" % ", ".join(repr(n) for n in others) if others else ""
        return ImportError("hn_modulefix cannot rebuild module %r%s from %s (bundle %s): %s"
                           % (fullname, alias, location, self.manifest.path, reason), name=fullname, path=location)

    def _parent_spec(self, fullname: str, path: object, target: object) -> ModuleSpec:
        """A package implied by a dotted name whose driver had a namespace directory
        there: a namespace package spanning what the path finder sees and the driver's
        directory (else the shipped one), so its __path__ encloses its listed children."""
        shipped, original = self.manifest.parent_dirs[fullname]
        spec = _elsewhere(fullname, path, target)
        locations = []
        if spec is not None and spec.origin is None and spec.submodule_search_locations is not None:
            locations.extend(spec.submodule_search_locations)
        mine = original if original is not None and os.path.isdir(original) else shipped
        if mine not in locations:
            locations.append(mine)
        namespace = ModuleSpec(fullname, None, is_package=True)
        namespace.submodule_search_locations = locations
        return namespace

    def _built_for(self, source: Source) -> _Built:
        with self._lock:
            built = self._built.get(source.relpath)
            if built is None:
                built = self._built[source.relpath] = _Built(source)
            return built


def _manifest_argument(manifest: str | os.PathLike[str] | None) -> str:
    if manifest is None:
        manifest = os.environ.get(_boot.ENV_MANIFEST)
        if not manifest:
            raise ValueError("no manifest given and %s is not set" % _boot.ENV_MANIFEST)
    manifest = os.fspath(manifest)
    return manifest if manifest.startswith(_boot.ON_PYTHONPATH) else os.path.abspath(manifest)


def install(manifest: str | os.PathLike[str] | None = None) -> None:
    """Put the finder for `manifest` (default: $HN_MODULEFIX_MANIFEST) on sys.meta_path,
    ahead of the path finder.

    Unlike the start-up hook, this reads the manifest at once and raises ManifestError if
    it is unusable.  Installing the same manifest again adds nothing.
    """
    path = _manifest_argument(manifest)
    if not _boot.installed(path):
        _boot.insert(ManifestFinder.from_path(path))


def uninstall(manifest: str | os.PathLike[str] | None = None) -> None:
    """Remove the finder for `manifest`, or every hn_modulefix finder when none is given.

    Modules already rebuilt stay in sys.modules, as with any finder.
    """
    path = None if manifest is None else _manifest_argument(manifest)
    sys.meta_path[:] = [
        finder
        for finder in sys.meta_path
        if not (getattr(finder, "_hn_modulefix_finder", False) and path in (None, finder.manifest_path))  # type: ignore[attr-defined]
    ]
