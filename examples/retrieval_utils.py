"""Local helper of examples/modal_daft_pipeline.py.  `modal run` mounts only the script
itself (FILE mode); this module reaches the container only through the bundle."""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter


@dataclasses.dataclass(frozen=True)
class Passage:
    doc_id: str
    text: str


CORPUS = (
    Passage("daft", "Daft is a distributed dataframe for multimodal data, with Python UDFs."),
    Passage("modal", "Modal runs Python functions in containers in the cloud."),
    Passage("ray", "Ray schedules tasks and actors across a cluster of machines."),
    Passage("pickle", "cloudpickle pickles classes of importable modules by reference."),
)


def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def cosine(a: Counter, b: Counter) -> float:
    dot = sum(a[t] * b[t] for t in a)
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0
