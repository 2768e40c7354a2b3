"""A job script imported the way `modal run jobs/pipeline.py` imports it (module `pipeline`).

Its process UDF returns a string (an Arrow type: daft 0.7 runs it in a worker process)
and holds an `Options` and a `textkit.Span`: the worker unpickles both classes by
reference, so it imports this script and its sibling package, and this script reads data
beside itself through `__file__` when it is imported.
"""

import dataclasses
import json
import os
from pathlib import Path

import daft
from daft import DataType
from textkit import VERSION, Span
from textkit.spans import first_word

LABELS = json.loads((Path(__file__).parent / "labels.json").read_text())


@dataclasses.dataclass(frozen=True)
class Options:
    labels: str  # "file": the labels read beside this script


@daft.cls(use_process=True)
class Tagger:
    def __init__(self, span: Span, options: Options) -> None:
        self.span = span
        self.options = options

    @daft.method(return_dtype=DataType.string())
    def __call__(self, text: str) -> str:
        return json.dumps({"pid": os.getpid(), "label": LABELS[first_word(text)], "span": self.span.render(),
                           "textkit": VERSION}, sort_keys=True)


def run() -> list:
    df = daft.from_pydict({"text": ["alpha one", "beta two"]})
    df = df.with_column("out", Tagger(Span(0, 5), Options("file"))(daft.col("text")))
    return [json.loads(row) for row in df.to_pydict()["out"]]


if __name__ == "__main__":
    print(json.dumps({"driver": os.getpid(), "rows": run()}, sort_keys=True))
