"""A retrieval pipeline on Modal whose Daft UDF runs in worker processes.

    modal run examples/modal_daft_pipeline.py          (needs a Modal account)
    hn-modulefix emulate examples/modal_daft_pipeline.py::retrieve --args-from example_queries

`modal run` imports this file as module `modal_daft_pipeline` and mounts only this file.
Daft pickles the UDF — a class of this module whose state holds `Passage` objects of the
helper `retrieval_utils` — by reference, and its struct return type makes Daft run it in
a separate worker process (`daft.execution.udf_worker`), which must import both modules.
The `.pipe(...)` line below is what makes them importable in every process of the
container.
"""

from __future__ import annotations

import os
from collections import Counter

import daft
import modal

import hn_modulefix
from retrieval_utils import CORPUS, Passage, cosine, tokens

image = (
    modal.Image.debian_slim(python_version="3.11")
    .uv_pip_install("daft==0.7.26", "pydantic")
    .pipe(hn_modulefix.image_layer())
)
app = modal.App("hn-modulefix-retrieval", image=image)

PREDICTION = daft.DataType.struct({
    "query": daft.DataType.string(),
    "doc_id": daft.DataType.string(),
    "score": daft.DataType.float64(),
    "worker_pid": daft.DataType.int64(),
})


@daft.cls(use_process=True)
class Retriever:
    """Stateful: the index over the passages is built once per worker process."""

    def __init__(self, corpus: tuple[Passage, ...]) -> None:
        self.index = [(passage, Counter(tokens(passage.text))) for passage in corpus]

    @daft.method(return_dtype=PREDICTION)
    def __call__(self, query: str) -> dict:
        query_tokens = Counter(tokens(query))
        passage, score = max(((p, cosine(query_tokens, v)) for p, v in self.index), key=lambda pv: pv[1])
        return {"query": query, "doc_id": passage.doc_id, "score": round(score, 4), "worker_pid": os.getpid()}


def example_queries() -> tuple:
    return (["what runs python in containers", "dataframe udf", "pickles classes by reference"],)


@app.function()
def retrieve(queries: list) -> list:
    print("retrieving in pid %d" % os.getpid())
    df = daft.from_pydict({"query": list(queries)})
    df = df.with_column("prediction", Retriever(CORPUS)(daft.col("query")))
    return df.to_pydict()["prediction"]


@app.local_entrypoint()
def main() -> None:
    for prediction in retrieve.remote(*example_queries()):
        print(prediction)
