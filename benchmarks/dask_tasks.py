"""A Dask job of many small tasks whose arguments and results are a script's objects: with
hn_modulefix's plugin vs with the project on the workers' path; and how long registering
the plugin takes.

Two LocalClusters (processes, one thread per worker), both started before the driver
imports tests/scenarios/dask_user/scripts/tiles.py the way `modal run` imports it:

A: the plugin registered: every worker rebuilds `tiles` and `units` from the bundle.
B: the scripts directory put on each worker's sys.path (`client.run`).

A job maps `tiles.measure` over TASKS distinct `Order` objects and gathers the results;
the ratio is the median of paired A/B jobs, alternated.  Registration is timed as
`dask_plugin(script)` (bundle and zip) and `client.register_plugin` (to the scheduler and
every worker, unpacked and installed there), medians of REGISTRATIONS, for the example
pipeline or (`--files N`) the generated project of benchmarks/_project.py.

    python benchmarks/dask_tasks.py [--pairs 15] [--tasks 1000] [--files 2500]
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from _pairs import REPO, machine, paired

SCRIPTS = REPO / "tests" / "scenarios" / "dask_user" / "scripts"
REGISTRATIONS = 5


def job(client: Any, tiles: Any, orders: list[Any]) -> Callable[[], float]:
    def once() -> float:
        start = time.perf_counter()
        results = client.gather(client.map(tiles.measure, orders, pure=False))
        elapsed = time.perf_counter() - start
        if [m.area for _, m, _, _ in results] != [o.tile.side ** 2 * o.count for o in orders]:
            raise SystemExit("wrong results")
        return elapsed
    return once


def on_path(directory: str) -> None:
    sys.path.insert(0, directory)


def registration(client: Any, script: Path, root: Path) -> tuple[float, float, int, int]:
    """Median seconds to make the plugin and to register it; its pickled size; its files."""
    import hn_modulefix
    from distributed.protocol.pickle import dumps
    from hn_modulefix._manifest import load

    made, registered = [], []
    for _ in range(REGISTRATIONS):
        start = time.perf_counter()
        plugin = hn_modulefix.dask_plugin(script, root=root)
        middle = time.perf_counter()
        client.register_plugin(plugin)
        registered.append(time.perf_counter() - middle)
        made.append(middle - start)
    files = len(load(plugin.manifest).sources)  # type: ignore[attr-defined]
    return statistics.median(made), statistics.median(registered), len(dumps(plugin)), files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--files", type=int, help="time registration on a generated project of about this many files")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    import hn_modulefix
    from distributed import Client, LocalCluster

    options = dict(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                   dashboard_address=":0")
    # Workers unpack each plugin (the 2,500-file one is large) into their temp dir: this one.
    os.environ["TMPDIR"] = tempfile.mkdtemp(prefix="hn_modulefix-bench-")
    tempfile.tempdir = None
    with LocalCluster(**options) as cluster_a, Client(cluster_a) as a, \
            LocalCluster(**options) as cluster_b, Client(cluster_b) as b:
        sys.path.insert(0, str(SCRIPTS))  # after the clusters: their workers do not inherit it
        tiles = importlib.import_module("tiles")
        a.register_plugin(hn_modulefix.dask_plugin(tiles.__file__, root=SCRIPTS.parent))
        b.run(on_path, str(SCRIPTS))
        orders = [tiles.Order(tile=tiles.Tile(list(tiles.Color)[i % 2], i % 7 + 1), count=i) for i in range(args.tasks)]
        ratio, ta, tb = paired(job(a, tiles, orders), job(b, tiles, orders), args.pairs, warmup=2)
        print(machine())
        print("%d tasks on %d worker processes, %d pairs" % (args.tasks, args.workers, args.pairs))
        print("  plugin (A):                  median %.3f s" % ta)
        print("  project on the path (B):     median %.3f s" % tb)
        print("  ratio (median of paired A/B): %.3f" % ratio)

        with tempfile.TemporaryDirectory() as tmp:
            if args.files:
                from _project import SCRIPT, generate  # the scale benchmark's generator

                root = Path(tmp) / "project"
                generate(root, args.files)
                script, what = root / SCRIPT, "a generated project of %d files" % args.files
            else:
                script, root = REPO / "examples" / "scripts" / "pipeline.py", REPO / "examples"
                what = "examples/scripts/pipeline.py"
            made, registered, size, files = registration(a, script, root)
            print("registration, %s (%d files bundled), median of %d: dask_plugin() %.3f s, "
                  "register_plugin() %.3f s; pickled plugin %d bytes"
                  % (what, files, REGISTRATIONS, made, registered, size))
    shutil.rmtree(os.environ["TMPDIR"], ignore_errors=True)

if __name__ == "__main__":
    os.environ.pop("HN_MODULEFIX_MANIFEST", None)  # only the plugin may bring the modules to A
    main()
