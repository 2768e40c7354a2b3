import dataclasses


@dataclasses.dataclass(frozen=True)
class Shape:
    side: int

    def area(self) -> int:
        return self.side * self.side
