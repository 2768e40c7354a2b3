"""The original report's stack: a HyperNodes 0.4.8 retrieval pipeline on its DaftEngine with
process UDFs (daft 0.6.x; HyperNodes 0.4.8 does not import with daft 0.7).

Pydantic `Passage` and `Prediction` models appear in the nodes' annotations (so DaftEngine
gives those columns Python-object types), the index and the scorer are stateful resources
(HyperNodes runs nodes that use them as `@daft.cls(use_process=True)` UDFs), and the
per-query pipeline is nested and mapped over the queries. Every object of this script that
reaches a UDF worker travels by reference, as `hypernodes_pipeline.<name>`.

    python hypernodes_pipeline.py      # as __main__: works
    modal run hypernodes_pipeline.py   # imported as module `hypernodes_pipeline`: the worker
                                       # fails with No module named 'hypernodes_pipeline'
                                       # unless hn_modulefix ships this script

Prints JSON: the driver's pid and one prediction per query, each with the pid of the process
that scored it.
"""

import json
import os
from typing import List

import pydantic
from hypernodes import Pipeline, node, stateful
from hypernodes.engines import DaftEngine


class Passage(pydantic.BaseModel):
    doc_id: str
    text: str


class Prediction(pydantic.BaseModel):
    query: str
    doc_id: str
    score: float
    pid: int  # the process that scored it: a UDF worker, not the driver


def words(text: str) -> List[str]:
    return [w.strip(".,?!").lower() for w in text.split()]


@stateful
class Index:
    """Built where it is first used (in the UDF worker), from the passages it was given."""

    def __init__(self, passages: List[Passage]) -> None:
        self.passages = passages
        self.postings = {}  # word -> doc ids
        for passage in passages:
            for word in set(words(passage.text)):
                self.postings.setdefault(word, set()).add(passage.doc_id)

    def search(self, query: str, k: int) -> List[Passage]:
        hits = {}
        for word in words(query):
            for doc_id in self.postings.get(word, ()):
                hits[doc_id] = hits.get(doc_id, 0) + 1
        ranked = sorted(self.passages, key=lambda p: (-hits.get(p.doc_id, 0), p.doc_id))
        return ranked[:k]


@stateful
class Scorer:
    def __init__(self, length_penalty: float) -> None:
        self.length_penalty = length_penalty

    def score(self, query: str, passage: Passage) -> float:
        asked, found = set(words(query)), words(passage.text)
        overlap = len(asked & set(found)) / max(len(asked), 1)
        return round(overlap - self.length_penalty * len(found), 4)


@node(output_name="candidates")
def retrieve(query: str, index: Index) -> List[Passage]:
    return index.search(query, k=2)


@node(output_name="prediction")
def rerank(query: str, candidates: List[Passage], scorer: Scorer) -> Prediction:
    best = max(candidates, key=lambda p: (scorer.score(query, p), p.doc_id))
    return Prediction(query=query, doc_id=best.doc_id, score=scorer.score(query, best), pid=os.getpid())


answer_one = Pipeline(nodes=[retrieve, rerank], name="answer_one")
answer_all = Pipeline(
    nodes=[answer_one.as_node(input_mapping={"queries": "query"}, output_mapping={"prediction": "predictions"},
                              map_over="queries", name="answer_all")],
    engine=DaftEngine(default_daft_config={"use_process": True}),
)

PASSAGES = [
    Passage(doc_id="modal", text="Modal runs Python functions in containers in the cloud."),
    Passage(doc_id="daft", text="Daft is a dataframe library; a UDF can run in a separate process."),
    Passage(doc_id="pickle", text="cloudpickle pickles classes of importable modules by reference."),
    Passage(doc_id="ray", text="Ray schedules Python tasks and actors on a cluster."),
]
QUERIES = ["which library runs a UDF in a process", "how are classes pickled", "python in containers"]


def run() -> dict:
    result = answer_all.run(inputs={"queries": QUERIES, "index": Index(PASSAGES), "scorer": Scorer(0.01)})
    return {"driver_pid": os.getpid(), "predictions": [p.model_dump() for p in result["predictions"]]}


if __name__ == "__main__":
    print(json.dumps(run(), sort_keys=True))
