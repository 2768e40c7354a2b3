"""Tasks for a Dask cluster whose arguments and results are objects of this script's
classes (an Enum, a dataclass, pydantic models) and of its helper module.

Imported the way `modal run scripts/tiles.py` imports it, they pickle by reference to
`tiles` and `units`; run as `python tiles.py [ADDRESS]` (a LocalCluster of its own without
an address), `tiles` travels by value and the printed results are the reference.
"""

import dataclasses
import enum
import json
import os
import sys
import time

import pydantic
from units import Measure


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass(frozen=True)
class Tile:
    color: Color
    side: int


class Order(pydantic.BaseModel):
    tile: Tile
    count: int


def measure(order: Order, delay: float = 0.0) -> tuple:
    time.sleep(delay)
    side = order.tile.side
    return order, Measure(area=side * side * order.count, perimeter=4 * side), os.getpid(), __file__


ORDERS = [Order(tile=Tile(Color.RED, 1), count=2), Order(tile=Tile(Color.BLUE, 2), count=1),
          Order(tile=Tile(Color.RED, 3), count=3)]


def run(client, timeout=20, **submit) -> dict:
    from distributed import wait

    futures = client.map(measure, ORDERS, pure=False, **submit)
    wait(futures, timeout=timeout)  # a worker that cannot unpickle a task never answers
    results = client.gather(futures)
    # They came back from the workers: their classes must be this process's classes.
    assert all(type(o) is Order and type(o.tile) is Tile and o.tile.color in Color and type(m) is Measure
               for o, m, _, _ in results)
    return {"results": [[o.tile.color.value, o.tile.side, o.count, m.area, m.perimeter] for o, m, _, _ in results],
            "pids": sorted({pid for _, _, pid, _ in results}), "files": sorted({f for _, _, _, f in results})}


if __name__ == "__main__":
    from distributed import Client, LocalCluster

    if len(sys.argv) > 1:
        with Client(sys.argv[1]) as client:
            print(json.dumps(run(client)))
    else:
        with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
            print(json.dumps(run(client)))
