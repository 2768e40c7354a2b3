"""The meta-path finder that gives every process the driver's module for each listed name.

It sits ahead of importlib's path finder and answers only the names the manifest lists,
so that neither a namespace directory nor another module of the same name shadows them.
For a listed name it executes, in this order of preference, the first file whose bytes
have the listed sha256:

1. the regular module another finder would have loaded (Modal's mount at
   ``/root/pipeline.py`` stays the entry module's ``__file__``);
2. the driver's own file, at the path it had when bundled (files read beside it through
   ``__file__`` are found); if that file exists but changed, a bundle made ahead of time
   refuses it and says so rather than run code the driver may no longer run, while a
   snapshot (made by the running driver) passes it over: the driver ran the listed bytes;
3. the shipped copy.

One exception: a program of its own, whose main script lies in a directory the bundle
did not come from (`python other/tool.py`), keeps the module of a listed top-level name
that directory holds with other bytes.

All names of one file resolve to one module object, executed once, under the first name
asked for.  Only verified bytes are executed, and bytecode only from a hash-checked cache
of exactly those bytes.  `Resolver.resolve` decides where a name loads from; `doctor`
asks it too, without executing anything.
"""

from __future__ import annotations

import _imp
import _thread
import os
import sys
from importlib.machinery import ModuleSpec, SourceFileLoader

import _hn_modulefix_boot as _boot
from hn_modulefix._manifest import LazyManifest, Manifest, ManifestError, Source, SourceChanged, load, read_matching

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


class Resolution:
    """Where a listed name is executed from in this process, or why it is not.

    kind: "path" (the module another finder would load, with the listed bytes: a mount,
    a checkout), "original" (the driver's file), "shipped" (the bundle's copy), "refused"
    (an import error: `reason`, caused by `cause`), or "foreign" (not answered: this
    program's own module, `location`)."""

    __slots__ = ("kind", "location", "data", "reason", "cause")

    def __init__(self, kind: str, location: str, data: bytes | None = None, reason: str = "",
                 cause: BaseException | None = None) -> None:
        self.kind = kind
        self.location = location
        self.data = data  # the verified bytes, for "path", "original" and "shipped"
        self.reason = reason  # why refused; for "shipped", why not the original (or "")
        self.cause = cause

    def __repr__(self) -> str:
        return "Resolution(%r, %r)" % (self.kind, self.location)


def _read_listed(location: str, sha256: str) -> tuple[bytes | None, str, BaseException | None]:
    """A shipped file's verified bytes, or None with what is wrong with it and the cause."""
    try:
        return read_matching(location, sha256), "", None
    except FileNotFoundError as exc:
        return None, "the shipped file is missing", exc
    except IsADirectoryError as exc:
        return None, "the shipped path is a directory, not a file", exc
    except OSError as exc:
        return None, "the shipped file cannot be read: %s" % (exc.strerror or exc), exc
    except SourceChanged as exc:
        return None, ("sha256 mismatch: the manifest lists %s, the file has %s (changed after bundling? re-run "
                      "`hn-modulefix bundle`)" % (exc.listed[:12], exc.found[:12])), exc


class Resolver:
    """Where each listed name of one manifest loads from in this process: the finder's
    rule, shared with `doctor`.  Nothing is executed, nothing imported."""

    def __init__(self, manifest: Manifest | LazyManifest) -> None:
        self.manifest = manifest
        self._program_known = False
        self._program_entry: str | None = None
        self._foreign: dict[str, str | None] = {}

    def foreign(self, fullname: str) -> str | None:
        """This program's own module for the top-level name of `fullname`, which it keeps,
        or None.  A program of its own is one whose main script lies in a directory the
        bundle did not come from; its module is the regular module of that name, with
        other bytes than the listed ones, in the sys.path entry that is that directory.
        Workers of the driver (`python -m ...`, spawn children running the driver's script,
        Ray's worker script in Ray's package) are not: for them nothing shadows."""
        top = fullname.partition(".")[0]
        try:
            return self._foreign[top]
        except KeyError:
            pass
        if not self._program_known:  # once: sys.path and __main__ as at the first lookup of a listed name
            self._program_entry = _program_entry(self.manifest.roots)
            self._program_known = True
        own = None if self._program_entry is None else self._own_module(self._program_entry, top)
        self._foreign[top] = own
        return own

    def _own_module(self, entry: str, top: str) -> str | None:
        # The path finder's order within one entry: a package directory, then a module.
        for candidate in (os.path.join(entry, top, "__init__.py"), os.path.join(entry, top + ".py")):
            if os.path.isfile(candidate):
                break
        else:
            return None  # nothing, or a namespace directory: never this program's own module
        source = self.manifest.source(top)
        if source is None:
            return candidate  # a package the bundle only implies: no bytes to be the same
        try:
            read_matching(candidate, source.sha256)
        except SourceChanged:
            return candidate
        except OSError:
            pass
        return None

    def resolve(self, fullname: str, path: object = None, target: object = None) -> Resolution:
        """Where the listed name `fullname` loads from (`path`: its parent's __path__)."""
        own = self.foreign(fullname)
        if own is not None:
            return Resolution("foreign", own, reason="its main script lies in a directory the bundle did not come from")
        source = self.manifest.source(fullname)
        assert source is not None, fullname
        spec = _elsewhere(fullname, path, target)
        origin = getattr(spec, "origin", None)
        if (spec is not None and spec.has_location and isinstance(origin, str) and origin.endswith(".py")
                and (spec.submodule_search_locations is not None) == source.package):
            try:
                return Resolution("path", origin, read_matching(origin, source.sha256))
            except (OSError, SourceChanged):
                pass  # another module of this name: it must not shadow the driver's
        passed_over = ""
        if source.original is not None:
            try:
                return Resolution("original", source.original, read_matching(source.original, source.sha256))
            except SourceChanged as exc:
                if not self.manifest.snapshot:
                    return Resolution("refused", source.original, reason=(
                        "it changed since it was bundled (sha256 %s, listed %s): re-bundle (`hn-modulefix "
                        "bundle`, or hn_modulefix.ship()) so that every process runs what the driver runs"
                        % (exc.found[:12], exc.listed[:12])), cause=exc)
                # A snapshot holds the bytes the driver ran: the file there now is not them.
                passed_over = "%s has other bytes than the driver ran" % source.original
            except OSError as exc:
                # Not on this machine: the shipped copy stands in for it.
                passed_over = "cannot read the original %s: %s" % (source.original, exc.strerror or exc)
        data, reason, cause = _read_listed(source.path, source.sha256)
        if data is None:
            return Resolution("refused", source.path, reason=reason, cause=cause)
        return Resolution("shipped", source.path, data, passed_over)

    def namespace_path(self, fullname: str, path: object = None, target: object = None) -> list[str]:
        """The __path__ of a package implied by a dotted name whose driver had a namespace
        directory there: a namespace package spanning what the path finder sees and the
        driver's directory (else the shipped one), so that it encloses its listed children."""
        shipped, original = self.manifest.parent_dir(fullname)
        spec = _elsewhere(fullname, path, target)
        locations = []
        if spec is not None and spec.origin is None and spec.submodule_search_locations is not None:
            locations.extend(spec.submodule_search_locations)
        mine = original if original is not None and os.path.isdir(original) else shipped
        if mine not in locations:
            locations.append(mine)
        return locations

    def resolve_fresh(self, fullname: str) -> Resolution:
        """resolve() for a first import of `fullname` in this process, its packages
        resolved first as importlib would ask for them (none is executed)."""
        path = None
        parent = fullname.rpartition(".")[0]
        if parent:
            path, refused = self._package_path(parent)
            if refused is not None:
                return refused
        return self.resolve(fullname, path)

    def _package_path(self, name: str) -> tuple[list[str] | None, Resolution | None]:
        path = None
        parent = name.rpartition(".")[0]
        if parent:
            path, refused = self._package_path(parent)
            if refused is not None:
                return None, refused
        if self.manifest.source(name) is None:
            return self.namespace_path(name, path), None
        resolution = self.resolve(name, path)
        if resolution.kind in ("refused", "foreign"):
            return None, resolution
        return [os.path.dirname(resolution.location)], None


def _program_entry(roots: frozenset[str] | None) -> str | None:
    """The first sys.path entry that is the directory of this process's main script, if
    that directory is not one the bundle came from (None when the manifest does not
    record them)."""
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    if roots is None or not isinstance(main, str) or not main.endswith(".py"):
        return None
    directory = os.path.dirname(os.path.realpath(main))
    if directory in roots:
        return None
    for entry in sys.path:
        if isinstance(entry, str) and os.path.realpath(entry or os.curdir) == directory:
            return entry or os.curdir
    return None


class ManifestFinder:
    _hn_modulefix_finder = True

    def __init__(self, manifest: Manifest | LazyManifest, reference: str | None = None) -> None:
        # As installed (a pythonpath: reference stays one), so installing it again matches.
        self.manifest_path = reference or manifest.path
        self.manifest = manifest
        self.resolver = Resolver(manifest)
        self.names = (manifest.names if isinstance(manifest, LazyManifest)
                      else frozenset(manifest.by_name) | manifest.parents)
        self._built: dict[str, _Built] = {}
        self._lock = _thread.allocate_lock()

    @classmethod
    def from_path(cls, manifest_path: str, names: frozenset[str] | None = None) -> ManifestFinder:
        """The finder for the manifest `manifest_path` names.  With `names` (what its
        names.txt lists, as the start-up hook read it), through its index where it has a
        matching one: each entry is checked when first asked for (see LazyManifest)."""
        lazy = None
        if names is not None:
            from hn_modulefix._manifest import locate

            lazy = LazyManifest.read(locate(manifest_path), names)
        return cls(lazy or load(manifest_path), manifest_path)

    def __repr__(self) -> str:
        return "<hn_modulefix finder %s (%d modules)>" % (self.manifest.path, len(self.manifest))

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        try:
            source = self.manifest.source(fullname)
            if source is None:
                if self.manifest.is_parent(fullname) and self.resolver.foreign(fullname) is None:
                    return self._parent_spec(fullname, path, target)
                return None
            if self.resolver.foreign(fullname) is not None:
                return None
        except ManifestError as exc:  # an entry of a LazyManifest, checked now
            raise ImportError("hn_modulefix cannot rebuild module %r (bundle %s): %s"
                              % (fullname, self.manifest.path, exc), name=fullname) from exc
        built = self._built_for(source)
        verified = None
        with built.lock:
            if built.module is None:
                resolution = self.resolver.resolve(fullname, path, target)
                if resolution.kind == "refused":
                    raise self.error(fullname, built, resolution.location, resolution.reason) from resolution.cause
                built.location, verified = resolution.location, resolution.data
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

    def verified(self, fullname: str, built: _Built, location: str) -> bytes:
        data, reason, cause = _read_listed(location, built.source.sha256)
        if data is None:
            raise self.error(fullname, built, location, reason) from cause
        return data

    def error(self, fullname: str, built: _Built, location: str, reason: str) -> ImportError:
        source = built.source
        others = [n for n in source.names if n != fullname]
        alias = " (also listed as %s)" % ", ".join(repr(n) for n in others) if others else ""
        return ImportError("hn_modulefix cannot rebuild module %r%s from %s (bundle %s): %s"
                           % (fullname, alias, location, self.manifest.path, reason), name=fullname, path=location)

    def _parent_spec(self, fullname: str, path: object, target: object) -> ModuleSpec:
        namespace = ModuleSpec(fullname, None, is_package=True)
        namespace.submodule_search_locations = self.resolver.namespace_path(fullname, path, target)
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
