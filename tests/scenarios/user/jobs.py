"""A script whose functions and classes go to spawned worker processes by reference."""

import dataclasses
import enum
import os


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
    pid: int  # of the process that did the work


def work(job: Job) -> Result:
    power = 2 if job.kind is Kind.SQUARE else 3
    return Result(job, job.value ** power, os.getpid())


JOBS = [Job(Kind.SQUARE, 3), Job(Kind.CUBE, 2), Job(Kind.SQUARE, 5)]
