"""Example pipeline: classes from this script and its helper module travel to Daft's
UDF worker process inside the pickled UDF.

Run it as a platform would import it (module `pipeline`, see examples/daft_local.py),
or as a plain script from this directory: `python pipeline.py`.
"""

import dataclasses
import json

import daft
from daft import DataType
from helpers import NEGATIVE_WORDS, POSITIVE_WORDS, Review, Sentiment, tokens


@dataclasses.dataclass(frozen=True)
class Scoring:
    positive_weight: float
    negative_weight: float


@daft.cls(use_process=True)
class SentimentModel:
    """Stateful UDF: its state holds instances of the script's and the helper's classes."""

    def __init__(self, scoring: Scoring) -> None:
        self.scoring = scoring
        self.threshold = {Sentiment.POSITIVE: 0.5, Sentiment.NEGATIVE: -0.5}

    @daft.method(return_dtype=DataType.string())
    def __call__(self, text: str, stars: int) -> str:
        review = Review(text=text, stars=stars)
        words = tokens(review.text)
        score = (self.scoring.positive_weight * sum(w in POSITIVE_WORDS for w in words)
                 - self.scoring.negative_weight * sum(w in NEGATIVE_WORDS for w in words)
                 + (review.stars - 3) * 0.25)
        if score >= self.threshold[Sentiment.POSITIVE]:
            return Sentiment.POSITIVE.name
        if score <= self.threshold[Sentiment.NEGATIVE]:
            return Sentiment.NEGATIVE.name
        return Sentiment.NEUTRAL.name


REVIEWS = {
    "text": ["Great product, love it", "Awful. Broken on arrival", "It is a chair", "Good but bad glue"],
    "stars": [5, 1, 3, 3],
}


def run() -> dict:
    model = SentimentModel(Scoring(positive_weight=1.0, negative_weight=1.0))
    df = daft.from_pydict(REVIEWS).with_column("sentiment", model(daft.col("text"), daft.col("stars")))
    return df.to_pydict()


if __name__ == "__main__":
    print(json.dumps(run(), sort_keys=True))
