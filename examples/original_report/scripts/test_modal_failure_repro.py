"""The original report, rebuilt: a HyperNodes 0.4.8 pipeline on its DaftEngine, run with
`uv run modal run scripts/test_modal_failure_repro.py` from the project root.

The nodes take and return pydantic models defined here (`Passage`, `Prediction`); the
scorer is a stateful resource, so DaftEngine runs the node that uses it as a process UDF
(`use_process=True`) and each `Prediction` carries the pid of the process that made it: a
Daft UDF worker, never the process that ran the pipeline. The whole pipeline object is
the Modal function's argument.

`modal run` imports this file as module `test_modal_failure_repro` (with scripts/ put on
sys.path of that process only), so everything of it reaches Daft's workers by reference,
and each worker must import `test_modal_failure_repro` by itself:

- here, on your machine (the local entrypoint calls the function with `.local()`, as the
  report did): the workers start in the directory you ran `modal run` from. From the
  project root that is not scripts/, and they die with
  `ModuleNotFoundError: No module named 'test_modal_failure_repro'`;
  `cd scripts && uv run modal run test_modal_failure_repro.py` works. The fix for this side
  is `hn_modulefix.ship()` below.
- in the Modal container (`--remote`): Modal mounts this file at /root and starts the
  function there; the workers find it as long as their working directory or PYTHONPATH
  reaches /root. In the container this function works in a scratch directory
  (`os.chdir`), so where /root is not on PYTHONPATH its workers fail the same way. The fix
  for this side is `.pipe(hn_modulefix.image_layer())` below.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import List

import modal
import pydantic
from hypernodes import Pipeline, node, stateful
from hypernodes.engines import DaftEngine

import hn_modulefix

hn_modulefix.ship()  # local side: Daft's workers on this machine get this script

image = (
    modal.Image.debian_slim(python_version="3.12")
    .uv_pip_install("hypernodes==0.4.8", "daft==0.6.14", "pydantic>=2")
    .pipe(hn_modulefix.image_layer())  # container side: every process in it gets this script
)
app = modal.App("original-report", image=image)


class Passage(pydantic.BaseModel):
    pid: str  # passage id
    text: str


class Prediction(pydantic.BaseModel):
    question: str
    passage: str
    overlap: int
    made_in_pid: int  # os.getpid() of the process that made it


def terms(text: str) -> set:
    return {word.strip("?.,'").lower() for word in text.split()} - {"a", "an", "the", "is", "in", "of", "to"}


@stateful
class OverlapScorer:
    """Stateful, so DaftEngine runs the node that uses it in a UDF worker process."""

    def __init__(self, passages: List[Passage]) -> None:
        self.passages = [(passage, terms(passage.text)) for passage in passages]

    def best(self, question: str) -> Prediction:
        asked = terms(question)
        passage, found = max(self.passages, key=lambda pair: (len(asked & pair[1]), pair[0].pid))
        return Prediction(question=question, passage=passage.pid, overlap=len(asked & found),
                          made_in_pid=os.getpid())


@node(output_name="prediction")
def predict(question: str, scorer: OverlapScorer) -> Prediction:
    return scorer.best(question)


@node(output_name="summary")
def summarize(predictions: List[Prediction]) -> str:
    return ", ".join("%s->%s" % (p.question.split()[0], p.passage) for p in predictions)


def build_pipeline() -> Pipeline:
    per_question = Pipeline(nodes=[predict], name="per_question")
    return Pipeline(
        nodes=[per_question.as_node(input_mapping={"questions": "question"},
                                    output_mapping={"prediction": "predictions"},
                                    map_over="questions", name="all_questions"),
               summarize],
        engine=DaftEngine(default_daft_config={"use_process": True}),
    )


PASSAGES = [
    Passage(pid="modal", text="Modal runs a Python function in a container in the cloud."),
    Passage(pid="daft", text="Daft runs a UDF in a separate worker process."),
    Passage(pid="pickle", text="Pickle stores a class by reference to its module."),
]
QUESTIONS = ["Which process runs a UDF?", "Where does a function run in the cloud?", "How is a class stored?"]


def pipeline_args() -> tuple:
    """The function's arguments, as the local entrypoint sends them (`--args-from`)."""
    return (build_pipeline(), QUESTIONS, PASSAGES)


@app.function()
def run_pipeline(pipeline: Pipeline, questions: List[str], passages: List[Passage]) -> dict:
    if not modal.is_local():
        os.chdir(tempfile.mkdtemp())  # in the container: work in scratch space, away from /root
    result = pipeline.run(inputs={"questions": questions, "scorer": OverlapScorer(passages)})
    return {"ran_in_pid": os.getpid(), "summary": result["summary"],
            "predictions": [p.model_dump() for p in result["predictions"]]}


@app.local_entrypoint()
def main(remote: bool = False) -> None:
    # The report called the function with .local(): the pipeline runs in this process.
    call = run_pipeline.remote if remote else run_pipeline.local
    print(json.dumps(call(*pipeline_args()), sort_keys=True))
