"""`hn_modulefix.ship()`: one line for local drivers.

It bundles the calling script (or the scripts given) into the user's bundle cache (see
_cache), named by the bundle's content, and exports HN_MODULEFIX_MANIFEST into
`os.environ`, so that every process started afterwards — Daft's UDF workers, process
pools, subprocesses — inherits it and resolves the scripts' modules.  While the sources
stay the same the bundle is reused, without reading them again; an edit makes a new one.

Worker processes already running keep the environment they started with.  Loky's reusable
executor (joblib's default backend) keeps its workers from one call to the next, so those
started before `ship()` would fail every later task (joblib#1705): `ship()` shuts it down,
and the next call starts workers that inherit the manifest.  Pools the program holds itself
must be created after `ship()`.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path
from typing import Iterable, Sequence

from _hn_modulefix_boot import ENV_MANIFEST
from hn_modulefix import __version__, _cache
from hn_modulefix._bundle import (ImportedModule, PathLike, Script, calling_scripts, driver_root, plan,
                                  snapshot_digest, write_into)
from hn_modulefix._finder import ShippedLoader
from hn_modulefix._manifest import sha256_bytes


# Where loky keeps its reusable executor: standalone, and the copy joblib vendors.
_LOKY_EXECUTORS = ("loky.reusable_executor", "joblib.externals.loky.reusable_executor")


def _retire_loky_workers() -> None:
    """Shut down loky's reusable executor if one is running: its workers lack the manifest,
    and the next `get_reusable_executor` (every joblib call) replaces a shut-down executor.
    Only where loky was imported already; never imported here."""
    for name in _LOKY_EXECUTORS:
        executor = getattr(sys.modules.get(name), "_executor", None)
        if executor is not None:
            executor.shutdown(wait=True)


def ship(*scripts: PathLike, root: PathLike | None = None, include: Iterable[str] = ()) -> Path | None:
    """Bundle `scripts` (default: the calling script; in a notebook, the project's modules
    it has imported) and export HN_MODULEFIX_MANIFEST for every process this one starts
    from now on; return the manifest path.

    Where the calling module was itself rebuilt by hn_modulefix (a worker importing the
    script), or in a Modal container, it does nothing and returns the manifest in effect
    (None if there is none).  `root` is the project root (default: the nearest directory
    above the first script holding pyproject.toml, setup.py, setup.cfg or .git, else the
    script's directory); `include` is as for `bundle`.  Cache entries unused for
    $HN_MODULEFIX_CACHE_MAX_AGE (default 7 days) that no live process uses are removed.
    When the manifest changes, loky's reusable executor is shut down (its next call starts
    new workers).
    """
    from hn_modulefix._modal import _is_remote

    caller = sys._getframe(1).f_globals
    loader = getattr(caller.get("__spec__"), "loader", None)
    if isinstance(loader, ShippedLoader):
        return Path(loader._finder.manifest.path)
    if _is_remote():
        active = os.environ.get(ENV_MANIFEST)
        return Path(active) if active else None
    chosen: Sequence[Script] = scripts or calling_scripts(caller, "ship()", root)
    older_than = _cache.max_age()  # a bad setting is said before any work
    script_paths = [s if isinstance(s, ImportedModule) else os.path.realpath(os.fspath(s)) for s in chosen]
    project = driver_root(chosen, root)
    extra = sorted(set(include))
    # What the plan depends on besides the files: the request and the interpreter (its
    # sys.path tells which directories are installed ones); the manifest also names the
    # main script's directory.
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    key = sha256_bytes(repr((script_paths, project, extra, main, sys.executable, sys.version, sys.path,
                             __version__)).encode())[:24]
    recalled = _cache.recall(key)
    manifest = None
    if recalled is not None:
        digest, warned = recalled
        manifest = _cache.reuse(digest)
    if manifest is None:
        started = time.time_ns()
        read: set[str] = set()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            planned = plan(*script_paths, root=project, include=extra, read=read)
        warned = [str(w.message) for w in caught]
        digest = snapshot_digest(planned)[:24]
        manifest = _cache.use(digest, lambda directory: write_into(planned, directory, snapshot=True))
        _cache.remember(key, digest, sorted(read), warned, started)
    for message in warned:
        warnings.warn(message, stacklevel=2)
    previous = os.environ.get(ENV_MANIFEST)
    if previous and os.path.abspath(previous) != manifest:
        warnings.warn("hn_modulefix.ship(): %s was %s; processes started from now on get %s instead"
                      % (ENV_MANIFEST, previous, manifest), stacklevel=2)
    os.environ[ENV_MANIFEST] = manifest
    if previous != manifest:
        _retire_loky_workers()
    _cache.prune(older_than)
    return Path(manifest)
