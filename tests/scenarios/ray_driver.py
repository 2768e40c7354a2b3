"""Run ray_user/scripts/job.py on Daft's Ray runner.

    ray_driver.py SRC MODE FIX [ADDRESS]

SRC: where hn_modulefix's source is (added to sys.path here only: the workers' interpreter
does not have it).  MODE: "local" (the driver starts Ray) or "address" (connect to
ADDRESS).  FIX: "1" to pass hn_modulefix.ray_runtime_env.  JOB_PROJECT, when set, is the
project directory to run instead of ray_user (it holds scripts/job.py).

The driver prints `driver: {"pid": ..., "node": ..., "alive": <nodes alive>}`, and with
JOB_ORIGIN=1, after the result, where a task ran and which files its modules came from:
`origin: {"pid": ..., "node": ..., "job": job.__file__, "shapes": shapes.__file__}`.
"""

import importlib
import json
import os
import sys

src, mode, fix = sys.argv[1:4]
project = os.environ.get("JOB_PROJECT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "ray_user")
scripts = os.path.join(project, "scripts")
sys.path.insert(0, src)
sys.path.insert(0, scripts)  # how `modal run scripts/job.py` imports it
job = importlib.import_module("job")

import daft  # noqa: E402
import ray  # noqa: E402

import hn_modulefix  # noqa: E402

runtime_env = hn_modulefix.ray_runtime_env(job.__file__, root=project) if fix == "1" else None
if mode == "local":
    ray.init(_node_ip_address="127.0.0.1", _temp_dir=os.environ["RAY_TMPDIR"], runtime_env=runtime_env,
             num_cpus=2, object_store_memory=256 * 2**20, include_dashboard=False)
else:
    ray.init(address=sys.argv[4], runtime_env=runtime_env)


@daft.func(return_dtype=daft.DataType.string(), use_process=False)
def origin(side: int) -> str:
    import job
    import shapes

    return json.dumps({"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                       "job": job.__file__, "shapes": shapes.__file__})


try:
    daft.set_runner_ray()
    print("driver: " + json.dumps({"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                                   "alive": sum(n["Alive"] for n in ray.nodes())}))
    print("result: " + json.dumps(job.run()))
    if os.environ.get("JOB_ORIGIN") == "1":
        where = daft.from_pydict({"side": [1]}).select(origin(daft.col("side")).alias("origin"))
        print("origin: " + where.to_pydict()["origin"][0])
finally:
    ray.shutdown()
