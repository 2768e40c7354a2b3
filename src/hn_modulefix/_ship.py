"""`hn_modulefix.ship()`: one line for local drivers.

It bundles the calling script (or the scripts given) into a directory of the user's cache
named by the bundle's content, and exports HN_MODULEFIX_MANIFEST into `os.environ`, so
that every process started afterwards — Daft's UDF workers, process pools, subprocesses —
inherits it and resolves the scripts' modules.  While the sources stay the same the
bundle is reused; an edit makes a new one.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Iterable

from _hn_modulefix_boot import ENV_MANIFEST
from hn_modulefix._bundle import PathLike, calling_script, plan, write
from hn_modulefix._finder import ShippedLoader
from hn_modulefix._manifest import MANIFEST_NAME, ManifestError, dump, load, sha256_bytes


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "hn_modulefix", "bundles")


def ship(*scripts: PathLike, root: PathLike | None = None, include: Iterable[str] = ()) -> Path | None:
    """Bundle `scripts` (default: the calling script) and export HN_MODULEFIX_MANIFEST for
    every process this one starts from now on; return the manifest path.

    Where the calling module was itself rebuilt by hn_modulefix (a worker importing the
    script), or in a Modal container, it does nothing and returns the manifest in effect
    (None if there is none).  `root` and `include` are as for `bundle`.
    """
    from hn_modulefix._modal import _is_remote

    caller = sys._getframe(1).f_globals
    loader = getattr(caller.get("__spec__"), "loader", None)
    if isinstance(loader, ShippedLoader):
        return Path(loader._finder.manifest.path)
    if _is_remote():
        active = os.environ.get(ENV_MANIFEST)
        return Path(active) if active else None
    if not scripts:
        scripts = (calling_script(caller, "ship()"),)
    planned = plan(*scripts, root=root, include=include)
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
    return manifest
