"""Ray integration: a runtime_env with which every Ray worker, and every process a worker
starts (Daft's UDF subprocesses), resolves the scripts' modules.

Everything travels inside the runtime_env, so it works on clusters the driver starts,
clusters it connects to, and nodes that share no filesystem and may not even have
hn_modulefix installed:

- ``py_modules``: the bundle directory, the hn_modulefix package, its boot module and a
  ``sitecustomize.py``.  Ray unpacks them on each node and prepends their directories to
  PYTHONPATH, which the processes workers start inherit; the sitecustomize installs the
  finder there at interpreter start (and runs any later sitecustomize).
- ``env_vars``: ``HN_MODULEFIX_MANIFEST=pythonpath:<bundle dir>/manifest.json``.  Where
  Ray unpacks py_modules is not known on the driver, so the manifest is looked up on
  sys.path, lazily, on the finder's first lookup.
"""

from __future__ import annotations

import copy
import hashlib
import os
from typing import Any, Iterable

from _hn_modulefix_boot import ENV_MANIFEST, ON_PYTHONPATH
from hn_modulefix._bundle import PathLike, driver_snapshot
from hn_modulefix._hook import stage
from hn_modulefix._manifest import MANIFEST_NAME


def ray_runtime_env(*scripts: PathLike, base: dict[str, Any] | None = None, root: PathLike | None = None,
                    include: Iterable[str] = ()) -> dict[str, Any]:
    """A Ray runtime_env (a new dict; `base`, when given, is merged in and kept) that
    makes `scripts` and their local imports importable in every Ray process.

    Pass it to ``ray.init(runtime_env=...)`` (or a job submission).  The files are
    uploaded when Ray starts the job; the local copies are removed at exit.  `root`
    defaults to the first script's project root (see `ship`).
    """
    runtime_env = copy.deepcopy(base) if base else {}
    env_vars = runtime_env.setdefault("env_vars", {})
    if env_vars.get(ENV_MANIFEST):
        raise ValueError("ray_runtime_env(base=...): env_vars already sets %s=%r"
                         % (ENV_MANIFEST, env_vars[ENV_MANIFEST]))
    # A worker node holding other files at the driver's paths (an older checkout) runs
    # the bytes this driver reads now.
    staging, manifest = driver_snapshot(scripts, root, include, "hn_modulefix-ray-")
    # Named by content: each distinct bundle is its own py_module, uploaded once, and its
    # name cannot collide with another job's bundle on a shared node.
    with open(manifest, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    shipped = os.path.join(staging, "hn_modulefix_bundle_" + digest)
    os.rename(manifest.parent, shipped)
    # No .pth: py_modules takes only .py files, directories and wheels.
    hook = stage(os.path.join(staging, "hook"), pth=False, sitecustomize=True)
    runtime_env["py_modules"] = list(runtime_env.get("py_modules") or []) + [shipped, *hook]
    env_vars[ENV_MANIFEST] = "%s%s/%s" % (ON_PYTHONPATH, os.path.basename(shipped), MANIFEST_NAME)
    return runtime_env
