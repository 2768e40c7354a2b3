"""A Daft pipeline imported the way `modal run` imports a script; its classes travel to
Ray's scheduler actor, Ray workers and, with use_process, their UDF subprocesses."""

import dataclasses
import json
import os

import daft
from shapes import Shape

USE_PROCESS = os.environ.get("JOB_USE_PROCESS") == "1"


@dataclasses.dataclass(frozen=True)
class Scale:
    factor: int


@daft.cls(use_process=USE_PROCESS)
class Area:
    def __init__(self, scale: Scale) -> None:
        self.scale = scale

    @daft.method(return_dtype=daft.DataType.int64())
    def __call__(self, side: int) -> int:
        return Shape(side).area() * self.scale.factor


def run() -> list:
    df = daft.from_pydict({"side": [1, 2, 3, 4]})
    return df.with_column("area", Area(Scale(10))(daft.col("side"))).to_pydict()["area"]


if __name__ == "__main__":
    print("result: " + json.dumps(run()))
