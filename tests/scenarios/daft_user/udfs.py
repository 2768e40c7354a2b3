"""Daft process UDFs whose classes come from this script and that report the pid they ran
in: `run("arrow")` returns strings (an Arrow type: a `daft.execution.udf_worker` process in
every Daft version), `run("python")` returns objects of this script's class
(`DataType.python()`: a worker in daft 0.6, the calling process in daft 0.7)."""

import dataclasses
import os

import daft
from daft import DataType


@dataclasses.dataclass(frozen=True)
class Tagged:
    text: str
    pid: int


@daft.cls(use_process=True)
class Tagger:
    def __init__(self, prefix: Tagged) -> None:
        self.prefix = prefix

    @daft.method(return_dtype=DataType.string())
    def __call__(self, text: str) -> str:
        return "%s:%s:%d" % (self.prefix.text, text, os.getpid())


@daft.cls(use_process=True)
class Wrapper:
    def __init__(self, prefix: Tagged) -> None:
        self.prefix = prefix

    @daft.method(return_dtype=DataType.python())
    def __call__(self, text: str) -> Tagged:
        return Tagged(self.prefix.text + ":" + text, os.getpid())


def run(kind: str) -> dict:
    udf = (Tagger if kind == "arrow" else Wrapper)(Tagged("tag", os.getpid()))
    rows = daft.from_pydict({"text": ["a", "b", "c"]}).with_column("out", udf(daft.col("text"))).to_pydict()["out"]
    if kind == "arrow":
        values = [row.rsplit(":", 1) for row in rows]
        texts, pids = [text for text, _ in values], [int(pid) for _, pid in values]
    else:
        assert all(type(row) is Tagged for row in rows)  # came back as this module's own class
        texts, pids = [row.text for row in rows], [row.pid for row in rows]
    return {"driver_pid": os.getpid(), "texts": texts, "worker_pids": sorted(set(pids))}
