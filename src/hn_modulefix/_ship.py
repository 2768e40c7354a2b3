"""`hn_modulefix.ship()`: one line for local drivers.

It bundles the calling script (or the scripts given) into a directory of the user's cache
named by the bundle's content, and exports HN_MODULEFIX_MANIFEST into `os.environ`, so
that every process started afterwards — Daft's UDF workers, process pools, subprocesses —
inherits it and resolves the scripts' modules.  While the sources stay the same the
bundle is reused; an edit makes a new one.

Worker processes already running keep the environment they started with.  Loky's reusable
executor (joblib's default backend) keeps its workers from one call to the next, so those
started before `ship()` would fail every later task (joblib#1705): `ship()` shuts it down,
and the next call starts workers that inherit the manifest.  Pools the program holds itself
must be created after `ship()`.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Iterable, Sequence

from _hn_modulefix_boot import ENV_MANIFEST
from hn_modulefix._bundle import PathLike, Script, calling_scripts, plan, write
from hn_modulefix._finder import ShippedLoader
from hn_modulefix._manifest import MANIFEST_NAME, ManifestError, dump, load, sha256_bytes


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "hn_modulefix", "bundles")


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
    (None if there is none).  `root` and `include` are as for `bundle`.  When the manifest
    changes, loky's reusable executor is shut down (its next call starts new workers).
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
    planned = plan(*chosen, root=root, include=include)
    # Named by what a worker would get: names, files, contents and the driver's paths.
    digest = sha256_bytes(dump([item.source("") for item in planned]).encode())[:24]
    out = _cache_dir() / digest
    manifest = out / MANIFEST_NAME
    try:
        load(str(manifest))
    except ManifestError:
        manifest = write(planned, out, snapshot=True)
    previous = os.environ.get(ENV_MANIFEST)
    if previous and os.path.abspath(previous) != str(manifest):
        warnings.warn("hn_modulefix.ship(): %s was %s; processes started from now on get %s instead"
                      % (ENV_MANIFEST, previous, manifest), stacklevel=2)
    os.environ[ENV_MANIFEST] = str(manifest)
    if previous != str(manifest):
        _retire_loky_workers()
    return manifest
