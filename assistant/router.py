"""Picks the skill for a message without the LLM: nearest examples in embedding space.

Each skill's routing examples, plus a list of out-of-scope examples, are
embedded once. A message is scored against every class as the mean cosine
similarity of its ``k`` nearest examples of that class. The best skill wins if
it also beats the out-of-scope class and clears the confidence threshold;
otherwise the decision is ``out_of_scope`` and the assistant says what it can
help with. The decision is deterministic and its scores are returned for audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["OUT_OF_SCOPE", "OUT_OF_SCOPE_EXAMPLES", "Route", "EmbeddingRouter", "Encoder"]

OUT_OF_SCOPE = "out_of_scope"

#: Messages none of the skills should take. Written for this router; never taken
#: from an evaluation set.
OUT_OF_SCOPE_EXAMPLES = [
    "what's the weather like tomorrow",
    "tell me a joke",
    "who won the football last night",
    "book me a flight to Paris",
    "what time is it in Tokyo",
    "translate good morning into Spanish",
    "how do I make pancakes",
    "what's the capital of Australia",
    "play some music",
    "set an alarm for 7am",
    "who are you",
    "what's 15 times 23",
    "write me a poem about the sea",
    "what is the meaning of life",
    "recommend a good restaurant nearby",
    "how far is the moon",
    "what's the news today",
    "help me write a python function",
    "find me a hotel in Rome",
    "how do I change a tyre on my car",
    "what's your favourite colour",
    "remind me to call my sister",
    "what's the population of India",
    "how tall is the Eiffel tower",
    "can you do my homework",
    "what movies are showing tonight",
    "how do you say thank you in Japanese",
    "is it going to rain this weekend",
    "what rhymes with orange",
    "when is the next bus to the city centre",
    "what's the best way to learn guitar",
    "how many calories are in an apple",
    "who painted the Mona Lisa",
    "what's the traffic like on the motorway",
    "turn off the lights",
    "I'm bored, talk to me",
    "what is the speed of light",
    "give me a fun fact",
    "how do I get to the airport",
    "what should I cook for dinner tonight",
]


class Encoder(Protocol):
    """What the router needs from an embedding model (sentence-transformers fits)."""

    def encode(self, sentences: list[str], **kwargs) -> np.ndarray: ...


@dataclass(frozen=True)
class Route:
    skill: str  # a skill name or OUT_OF_SCOPE
    confidence: float  # score of the chosen skill (or of the best skill when out of scope)
    scores: dict[str, float]


class EmbeddingRouter:
    def __init__(
        self,
        encoder: Encoder,
        examples: dict[str, list[str]],
        *,
        threshold: float = 0.42,
        out_of_scope_examples: list[str] = OUT_OF_SCOPE_EXAMPLES,
        k: int = 3,
    ):
        if not examples:
            raise ValueError("the router needs at least one skill with examples")
        self._encoder = encoder
        self.threshold = threshold
        self._k = k
        self._labels: list[str] = []
        texts: list[str] = []
        for name, items in {**examples, OUT_OF_SCOPE: out_of_scope_examples}.items():
            self._labels += [name] * len(items)
            texts += items
        self._classes = list(dict.fromkeys(self._labels))
        self._label_ids = np.array([self._classes.index(label) for label in self._labels])
        self._matrix = self._embed(texts)

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._encoder.encode(texts, normalize_embeddings=True, show_progress_bar=False))
        return vectors.astype(np.float32)

    def route(self, text: str) -> Route:
        return self.route_many([text])[0]

    def route_many(self, texts: list[str]) -> list[Route]:
        sims = self._embed(texts) @ self._matrix.T  # (n_texts, n_examples)
        routes = []
        for row in sims:
            scores = {}
            for i, name in enumerate(self._classes):
                class_sims = np.sort(row[self._label_ids == i])[::-1][: self._k]
                scores[name] = float(class_sims.mean())
            best_skill = max((n for n in self._classes if n != OUT_OF_SCOPE), key=scores.__getitem__)
            confidence = scores[best_skill]
            if confidence < self.threshold or scores[OUT_OF_SCOPE] >= confidence:
                routes.append(Route(OUT_OF_SCOPE, confidence, scores))
            else:
                routes.append(Route(best_skill, confidence, scores))
        return routes
