"""A helper of tiles.py: the pydantic model its tasks return."""

import pydantic


class Measure(pydantic.BaseModel):
    area: int
    perimeter: int
