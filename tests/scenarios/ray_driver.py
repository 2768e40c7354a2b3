"""Run ray_user/scripts/job.py on Daft's Ray runner.

    ray_driver.py SRC MODE FIX [ADDRESS]

SRC: where hn_modulefix's source is (added to sys.path here only: the workers' interpreter
does not have it).  MODE: "local" (the driver starts Ray), "address" (connect to ADDRESS),
"cluster" (two nodes started with ray.cluster_utils.Cluster; the bundle's local files are
deleted before the job runs).  FIX: "1" to pass hn_modulefix.ray_runtime_env.
"""

import importlib
import json
import os
import shutil
import sys

src, mode, fix = sys.argv[1:4]
scripts = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ray_user", "scripts")
sys.path.insert(0, src)
sys.path.insert(0, scripts)  # how `modal run scripts/job.py` imports it
job = importlib.import_module("job")

import daft  # noqa: E402
import ray  # noqa: E402

import hn_modulefix  # noqa: E402

runtime_env = hn_modulefix.ray_runtime_env(job.__file__, root=os.path.dirname(scripts)) if fix == "1" else None
node = dict(num_cpus=2, object_store_memory=256 * 2**20, include_dashboard=False)
cluster = None
if mode == "local":
    ray.init(_node_ip_address="127.0.0.1", _temp_dir=os.environ["RAY_TMPDIR"], runtime_env=runtime_env, **node)
elif mode == "address":
    ray.init(address=sys.argv[4], runtime_env=runtime_env)
else:
    from ray.cluster_utils import Cluster

    head = dict(node, node_ip_address="127.0.0.1", temp_dir=os.environ["RAY_TMPDIR"] + "/ray")
    cluster = Cluster(initialize_head=True, head_node_args=head)
    cluster.add_node(num_cpus=2, object_store_memory=256 * 2**20)
    ray.init(address=cluster.address, runtime_env=runtime_env)
    print("nodes: %d" % len([n for n in ray.nodes() if n["Alive"]]))
    if runtime_env:
        # Uploaded by ray.init: from here on only what travelled in the runtime_env exists.
        for path in runtime_env["py_modules"]:
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        assert not any(os.path.exists(p) for p in runtime_env["py_modules"])
try:
    daft.set_runner_ray()
    print("result: " + json.dumps(job.run()))
finally:
    ray.shutdown()
    if cluster is not None:
        cluster.shutdown()
