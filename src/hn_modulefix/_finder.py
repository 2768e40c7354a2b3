"""The meta-path finder that rebuilds listed modules from a bundle.

It is appended to sys.meta_path, so it is asked only after every other finder failed: a
module that really is importable always wins.  All names of one shipped file resolve to
one module object, executed once, under the first name asked for.
"""

from __future__ import annotations

import _thread
import os
import sys
from importlib.machinery import ModuleSpec, SourceFileLoader

import _hn_modulefix_boot as _boot
from hn_modulefix._manifest import Manifest, Source, SourceChanged, load, read_verified, sha256_bytes


class _Built:
    """Per shipped file: the one module object its names share, and the lock that makes
    it executed once even when threads import different names of it at the same time."""

    __slots__ = ("source", "module", "lock")

    def __init__(self, source: Source) -> None:
        self.source = source
        self.module: object | None = None
        # Re-entrant: a module that (indirectly) imports another of its own names while
        # executing gets the partly built module, as a plain circular import would.
        self.lock = _thread.RLock()


class ShippedLoader(SourceFileLoader):
    """The standard source loader (bytecode cache, tracebacks at the shipped file), made
    to execute only bytes whose sha256 matches the manifest."""

    def __init__(self, fullname: str, finder: ManifestFinder, built: _Built) -> None:
        super().__init__(fullname, built.source.path)
        self._finder = finder
        self._built = built
        self._verified: bytes | None = None

    def create_module(self, spec: ModuleSpec) -> None:
        return None

    def get_data(self, path: str) -> bytes:
        if path == self.path and self._verified is not None:
            return self._verified
        return super().get_data(path)

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
            # Outside the try: its ImportError already names the reason, and nothing ran,
            # so it must not be wrapped as "while executing, ...".
            self._verified = self._read_verified()
            built.module = module
            try:
                super().exec_module(module)  # type: ignore[arg-type]
            except BaseException as exc:
                built.module = None
                for name, value in list(sys.modules.items()):
                    if value is module:
                        del sys.modules[name]
                if isinstance(exc, Exception):
                    raise self._error(_describe(exc)) from exc
                raise
            finally:
                self._verified = None

    def _loaded_elsewhere(self, module: object) -> object | None:
        """Another name of this file already imported by a real finder (Modal's runner
        importing ``scripts.pipeline`` from a mount, say) is reused when its source is
        byte-identical, so that pickles naming either name meet the same classes."""
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
                with open(origin, "rb") as f:
                    if sha256_bytes(f.read()) == self._built.source.sha256:
                        return other
            except OSError:
                continue
        return None

    def _read_verified(self) -> bytes:
        try:
            return read_verified(self._built.source)
        except FileNotFoundError as exc:
            raise self._error("the shipped file is missing") from exc
        except IsADirectoryError as exc:
            raise self._error("the shipped path is a directory, not a file") from exc
        except OSError as exc:
            raise self._error("the shipped file cannot be read: %s" % (exc.strerror or exc)) from exc
        except SourceChanged as exc:
            raise self._error(
                "sha256 mismatch: the manifest lists %s, the file has %s (changed after bundling?"
                " re-run `hn-modulefix bundle`)" % (exc.listed[:12], exc.found[:12])
            ) from exc

    def _error(self, reason: str) -> ImportError:
        source = self._built.source
        others = [n for n in source.names if n != self.name]
        alias = " (also listed as %s)" % ", ".join(repr(n) for n in others) if others else ""
        return ImportError(
            "hn_modulefix cannot rebuild module %r%s from %s (bundle %s): %s"
            % (self.name, alias, source.path, self._finder.manifest.path, reason),
            name=self.name,
            path=source.path,
        )


def from_bundle(spec: object) -> bool:
    """Whether the module with this __spec__ was rebuilt from a bundle by the finder."""
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


class ManifestFinder:
    _hn_modulefix_finder = True

    def __init__(self, manifest: Manifest, reference: str | None = None) -> None:
        # As installed (a pythonpath: reference stays one), so installing it again matches.
        self.manifest_path = reference or manifest.path
        self.manifest = manifest
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
                # A dotted alias whose parent package exists nowhere: an empty package with
                # no search path, so its listed children are still answered by this finder.
                return ModuleSpec(fullname, None, is_package=True)
            return None
        spec = ModuleSpec(fullname, ShippedLoader(fullname, self, self._built_for(source)),
                          origin=source.path, is_package=source.package)
        spec.has_location = True  # sets __file__ and __cached__ from origin
        return spec

    def invalidate_caches(self) -> None:
        pass

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
    """Append the finder for `manifest` (default: $HN_MODULEFIX_MANIFEST) to sys.meta_path.

    Unlike the start-up hook, this reads the manifest at once and raises ManifestError if
    it is unusable.  Installing the same manifest again adds nothing.
    """
    path = _manifest_argument(manifest)
    if not _boot.installed(path):
        sys.meta_path.append(ManifestFinder.from_path(path))


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

