"""Local helper module of the example pipeline: Modal does not mount it for you, and a
worker process cannot import it unless something ships it."""

import enum

import pydantic


class Sentiment(enum.Enum):
    NEGATIVE = -1
    NEUTRAL = 0
    POSITIVE = 1


class Review(pydantic.BaseModel):
    text: str
    stars: int


POSITIVE_WORDS = frozenset({"great", "good", "love", "excellent"})
NEGATIVE_WORDS = frozenset({"bad", "awful", "hate", "broken"})


def tokens(text: str) -> list:
    return [word.strip(".,!?").lower() for word in text.split()]
