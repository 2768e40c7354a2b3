"""Run dask_user/scripts/tiles.py (copied to PROJECT) on Dask, step by step, one JSON line
per step: {"step": NAME, "out": ...} or {"step": NAME, "error": "Type: message"}.

    dask_driver.py SRC PROJECT SCENARIO [ADDRESS]

SRC: where hn_modulefix's source is (on sys.path here; a LocalCluster's workers inherit
sys.path, a `dask worker` does not).  PROJECT: the project, its script in scripts/.
SCENARIO:

- "before-none", "before-plugin", "before-ship": a LocalCluster started first, then the
  script imported as `modal run` imports it; then nothing, the plugin, or ship() and
  client.restart().  With the plugin: a worker made to import an older tiles.py first
  (OLD_TILES, another directory), a restart in the middle of a run, a worker that joins.
- "after-none", "after-ship": the script loaded by file location (no sys.path entry for
  spawned workers to inherit), then maybe ship(), then a LocalCluster.
- "address-none", "address-plugin": connect to ADDRESS, import the script as `modal run`
  does; with the plugin, also where the workers run and doctor's report from each.

A worker that cannot unpickle a task stops reading the scheduler's stream and never
answers: red runs end with a TimeoutError, the ModuleNotFoundError is on stderr.
"""

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback

src, project, scenario = sys.argv[1:4]
sys.path.insert(0, src)
scripts = os.path.join(project, "scripts")

import hn_modulefix  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402


# Long enough for three tiny tasks on a loaded machine; a worker that failed never answers.
RED_TIMEOUT = 10


def step(name, func, *args, **kwargs):
    try:
        out = func(*args, **kwargs)
    except Exception as exc:
        line = {"step": name, "error": "%s: %s" % (type(exc).__name__, exc)}
        if os.environ.get("HN_MODULEFIX_DEBUG") == "1":
            traceback.print_exc()
    else:
        line = {"step": name, "out": out}
    print(json.dumps(line), flush=True)
    return line


def import_like_modal_run():
    sys.path.insert(0, scripts)
    return importlib.import_module("tiles")


def load_by_file_location():
    for name in ("units", "tiles"):
        spec = importlib.util.spec_from_file_location(name, os.path.join(scripts, name + ".py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def local_cluster(n_workers=1):
    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)


def import_old_tiles():
    sys.path.insert(0, os.environ["OLD_TILES"])
    return importlib.import_module("tiles").__file__


def register(client, tiles):
    return client.register_plugin(hn_modulefix.dask_plugin(tiles.__file__, root=project))


def namespaces():
    return {"pid": os.getpid(), "mnt": os.readlink("/proc/self/ns/mnt"), "pidns": os.readlink("/proc/self/ns/pid")}


def where(client):
    return {"driver": namespaces(), "workers": list(client.run(namespaces).values())}


def child_imports():
    # A process the worker starts: only the environment it inherits can bring the modules.
    done = subprocess.run([sys.executable, "-c", "import tiles, units; print(tiles.__file__)"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    return {"pid": os.getpid(), "stdout": done.stdout, "stderr": done.stderr[-2000:]}


def hn_modulefix_state():
    return {"environ": os.environ.get("HN_MODULEFIX_MANIFEST"),
            "finders": [repr(f) for f in sys.meta_path if getattr(f, "_hn_modulefix_finder", False)]}


def events(client):
    # Workers send their events to the scheduler in the background.
    deadline = time.monotonic() + 10
    while not client.get_events("hn_modulefix") and time.monotonic() < deadline:
        time.sleep(0.1)
    return [event for _, event in client.get_events("hn_modulefix")]


def restart_mid_run(client, tiles):
    before = client.run(os.getpid)
    futures = client.map(tiles.measure, tiles.ORDERS, delay=30, pure=False)
    while not any(client.processing().values()):  # the graph reaches the scheduler in the background
        time.sleep(0.05)
    client.restart()
    after = client.run(os.getpid)
    return {"restarted": sorted(before.values()) != sorted(after.values()),
            "cancelled": [f.status for f in futures], "run": tiles.run(client)}


def on_new_worker(cluster, client, tiles):
    old = set(client.scheduler_info()["workers"])
    cluster.scale(2)
    client.wait_for_workers(2)
    (new,) = set(client.scheduler_info()["workers"]) - old
    return tiles.run(client, workers=[new])


def main():
    print(json.dumps({"driver_pid": os.getpid()}), flush=True)
    if scenario == "before-none":
        with local_cluster() as cluster, Client(cluster) as client:
            tiles = import_like_modal_run()
            step("run", tiles.run, client, timeout=RED_TIMEOUT)
    elif scenario == "before-plugin":
        with local_cluster() as cluster, Client(cluster) as client:
            tiles = import_like_modal_run()
            step("old", client.run, import_old_tiles)
            step("stale", tiles.run, client)
            step("plugin", register, client, tiles)
            step("events", events, client)
            step("run", tiles.run, client)
            step("restart", restart_mid_run, client, tiles)
            step("joined", on_new_worker, cluster, client, tiles)
            client.unregister_worker_plugin("hn_modulefix")
            step("unregistered", lambda: list(client.run(hn_modulefix_state).values()))
    elif scenario == "before-ship":
        with local_cluster() as cluster, Client(cluster) as client:
            tiles = import_like_modal_run()
            hn_modulefix.ship(tiles.__file__, root=project)
            client.restart()  # ship() reaches the processes started after it
            step("run", tiles.run, client)
    elif scenario in ("after-none", "after-ship"):
        tiles = load_by_file_location()
        if scenario == "after-ship":
            hn_modulefix.ship(tiles.__file__, root=project)
        with local_cluster() as cluster, Client(cluster) as client:
            step("run", tiles.run, client, timeout=RED_TIMEOUT)
    else:
        with Client(sys.argv[4]) as client:
            tiles = import_like_modal_run()
            if scenario == "address-none":
                step("run", tiles.run, client)
            else:
                step("plugin", register, client, tiles)
                step("run", tiles.run, client)
                step("where", where, client)
                step("child", lambda: list(client.run(child_imports).values()))
                step("doctor", lambda: list(client.run(hn_modulefix.doctor_report).values()))


if __name__ == "__main__":
    main()
