"""The job's own text helpers: a package beside the script, shipped with it."""

import dataclasses

VERSION = "jobs/textkit 1"


@dataclasses.dataclass(frozen=True)
class Span:
    start: int
    end: int

    def render(self) -> str:
        return "[%d:%d]" % (self.start, self.end)
