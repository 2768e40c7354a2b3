"""examples/scripts/pipeline.py on Daft's Ray runner, imported the way Modal imports it.

Ray workers get neither this process's sys.path nor its files; the runtime_env from
`hn_modulefix.ray_runtime_env` carries the script, its helper module and the start-up
hook to every worker and every UDF process a worker starts — on any node.

    python examples/ray_daft.py              # starts a local Ray, or joins RAY_ADDRESS
    python examples/ray_daft.py --without    # the same without the runtime_env: fails

(Ray binds the machine's external address; on a machine without a network, run it inside
`unshare -n sh -c 'ip link set lo up; python examples/ray_daft.py'` as root.)
"""

from __future__ import annotations

import importlib
import json
import os
import sys

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")


def main() -> int:
    sys.path.insert(0, SCRIPTS)
    pipeline = importlib.import_module("pipeline")

    import daft
    import ray

    import hn_modulefix

    runtime_env = None if "--without" in sys.argv else hn_modulefix.ray_runtime_env(pipeline.__file__)
    ray.init(address=os.environ.get("RAY_ADDRESS"), runtime_env=runtime_env,
             **({} if os.environ.get("RAY_ADDRESS") else {"num_cpus": 2, "include_dashboard": False}))
    try:
        daft.set_runner_ray()
        print(json.dumps(pipeline.run(), sort_keys=True))
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
