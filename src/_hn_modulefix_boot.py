"""hn_modulefix start-up hook: `start()` is called by hn_modulefix.pth in every
interpreter where HN_MODULEFIX_MANIFEST is set; where `install-hook --start` wrote one, by
the entry point in hn_modulefix.start in every Python 3.15+ interpreter (PEP 829: then it
returns at once when the variable is unset); and by sitecustomize.py.  Importing the
module does nothing else.

It runs in every process of an environment, so it costs next to nothing (measured by
benchmarks/startup.py): one top-level module rather than a package plus a module, only
modules that are built in or already loaded (`sys`, `_thread`, and `os` inside the
functions that use it; not even `__future__`), no class to build.  The module itself is
the finder placed on sys.meta_path, ahead of the path finder so that a namespace
directory or another module of a listed name cannot shadow the driver's module.  Every
other name costs one set lookup: the bundle's `names.txt` (plain text, no `json`) is read
on the first lookup; the real finder and the manifest load on the first lookup of a
listed name.  Nothing here raises: problems become one stderr line.

Exit costs nothing either.  CPython keeps sys.meta_path alive while it tears modules
down (3.11 holds a copy of the `sys` module's dict), so every module this finder's
globals reach outlives that teardown and is then wiped name by name: with `os` in them,
`os`, `posixpath`, `stat`, `io` and more, about 1 % of a bare `python -c pass`.  So the
globals hold only `sys` and `_thread` until the real finder loads; it reaches much more,
and `_load` then registers `_leave` with atexit to take this finder off sys.meta_path.
"""

import _thread
import sys

# Typed with comments: annotations would cost a little at every start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from typing import FrozenSet, Optional

    from hn_modulefix._finder import ManifestFinder

ENV_MANIFEST = "HN_MODULEFIX_MANIFEST"
ENV_DEBUG = "HN_MODULEFIX_DEBUG"
# "pythonpath:DIR/manifest.json": the first sys.path entry holding DIR/manifest.json,
# for bundles shipped where no absolute path is known in advance (Ray's py_modules).
ON_PYTHONPATH = "pythonpath:"
# Beside manifest.json: every listed name and implied parent package, one per line.
NAMES_FILE = "names.txt"

_hn_modulefix_finder = True
manifest_path = ""
_names = None  # type: Optional[FrozenSet[str]]
_real = None  # type: Optional[ManifestFinder]
_failed = False  # the bundle cannot be used: stay inert
_loading = False
_lock = _thread.RLock()


def report(message):
    # type: (str) -> None
    """One stderr line; the traceback of the exception being handled only when debugging."""
    import os

    try:
        sys.stderr.write("hn_modulefix: %s\n" % message)
        if os.environ.get(ENV_DEBUG) == "1" and sys.exc_info()[0] is not None:
            import traceback

            traceback.print_exc()
    except Exception:  # a closed stderr must not break start-up either
        pass


def locate(reference):
    # type: (str) -> Optional[str]
    """The manifest file a HN_MODULEFIX_MANIFEST value names (None: no sys.path entry
    holds a `pythonpath:` one yet)."""
    import os

    if not reference.startswith(ON_PYTHONPATH):
        return os.path.abspath(reference)
    relative = reference[len(ON_PYTHONPATH):]
    for entry in sys.path:
        candidate = os.path.join(entry or os.curdir, relative)
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    return None


def insert(finder):
    # type: (object) -> None
    """Put `finder` just ahead of importlib's path finder: after the built-in and frozen
    importers (no listed name is a standard one), before anything that searches sys.path."""
    path_finder = sys.modules["_frozen_importlib_external"].PathFinder
    for index, other in enumerate(sys.meta_path):
        if other is path_finder:
            sys.meta_path.insert(index, finder)  # type: ignore[arg-type]
            return
    sys.meta_path.append(finder)  # type: ignore[arg-type]


def find_spec(fullname, path=None, target=None):
    # type: (str, object, object) -> Optional[ModuleSpec]
    # `site` imports these right after the .pth files: answer without reading anything.
    if fullname == "sitecustomize" or fullname == "usercustomize":
        return None
    names = _names
    if names is None:
        names = _read_names()
    if fullname not in names:
        return None
    real = _real
    if real is None:
        if _failed:
            return None
        real = _load()
        if real is None:
            return None
    return real.find_spec(fullname, path, target)


def invalidate_caches():
    # type: () -> None
    pass


def _read_names():
    # type: () -> FrozenSet[str]
    global _names, _failed
    import os

    with _lock:
        if _names is not None:
            return _names
        if _loading:  # the real finder's own imports, while it loads
            return frozenset()
        try:
            found = locate(manifest_path)
            with open(os.path.join(os.path.dirname(found or manifest_path), NAMES_FILE), "rb") as f:
                _names = frozenset(f.read().decode("utf-8").split())
        except OSError:
            # No names.txt (a bundle made by hand, or none at all): the real finder reads
            # the manifest and says what is wrong with it.
            real = _load()
            _names = real.names if real is not None else frozenset()
        except Exception as exc:
            _failed = True
            _names = frozenset()
            report("finder disabled: cannot read %s beside %s: %s" % (NAMES_FILE, manifest_path, exc))
        return _names


def _load():
    # type: () -> Optional[ManifestFinder]
    global _real, _failed, _loading
    with _lock:
        # Importing the finder goes through sys.meta_path, so through this module
        # again in this thread; other threads wait here for the outcome.
        if _real is not None or _failed or _loading:
            return _real
        _loading = True
        try:
            from hn_modulefix._finder import ManifestFinder

            _real = ManifestFinder.from_path(manifest_path, _names)
            if _names is not None and _names != _real.names:
                raise ValueError("%s beside %s does not list the names the manifest does: re-run "
                                 "`hn-modulefix bundle`" % (NAMES_FILE, _real.manifest.path))
            import atexit

            atexit.register(_leave)
        except Exception as exc:
            _real = None
            _failed = True
            report("finder disabled: %s" % (exc,))
        finally:
            _loading = False
        return _real


def _leave():
    # type: () -> None
    # Registered once the real finder is loaded (see the module docstring); atexit runs
    # this after every handler registered later, which may still import listed names.
    sys.meta_path[:] = [f for f in sys.meta_path if f is not sys.modules.get(__name__)]


def installed(path):
    # type: (str) -> bool
    """Whether an hn_modulefix finder for manifest `path` is on sys.meta_path."""
    for finder in sys.meta_path:
        if getattr(finder, "_hn_modulefix_finder", False) and getattr(finder, "manifest_path", None) == path:
            return True
    return False


def start():
    # type: () -> None
    global manifest_path
    try:
        this = sys.modules[__name__]
        # Already placed (up to 3.14 a venv's `site` runs every .pth twice): return before
        # anything costs.
        if this in sys.meta_path or _real is not None or _failed:
            return
        import os

        manifest = os.environ.get(ENV_MANIFEST)
        if not manifest:
            return
        manifest_path = manifest if manifest.startswith(ON_PYTHONPATH) else os.path.abspath(manifest)
        if not installed(manifest_path):
            insert(this)
    except Exception as exc:
        report("start-up hook failed: %r" % (exc,))
