"""A script whose functions and classes go to spawned worker processes by reference."""

import dataclasses
import enum


class Kind(enum.Enum):
    SQUARE = "square"
    CUBE = "cube"


@dataclasses.dataclass(frozen=True)
class Job:
    kind: Kind
    value: int


@dataclasses.dataclass(frozen=True)
class Result:
    job: Job
    answer: int


def work(job: Job) -> Result:
    power = 2 if job.kind is Kind.SQUARE else 3
    return Result(job, job.value ** power)


JOBS = [Job(Kind.SQUARE, 3), Job(Kind.CUBE, 2), Job(Kind.SQUARE, 5)]
