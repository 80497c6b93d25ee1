"""Picks the skill for a message without the LLM: a small classifier over embeddings.

Each skill's routing examples, plus a list of out-of-scope examples, are
embedded with the sentence encoder and a logistic regression is fitted on them
at start-up. A message goes to the most probable skill if that probability
clears the confidence threshold; otherwise, or if out-of-scope is the most
probable class, the decision is ``out_of_scope`` and the assistant says what it
can help with. The decision is deterministic and its class probabilities are
returned for audit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping, Protocol

import numpy as np

__all__ = ["OUT_OF_SCOPE", "OUT_OF_SCOPE_EXAMPLES", "Route", "EmbeddingRouter", "TenantRouter", "Encoder", "ContextPolicy",
           "KnowledgeMatch", "route_in_context"]

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
    "hi there",
    "thanks, bye",
    "are you a real person or a bot",
    "what can you do",
    "start a timer for ten minutes",
    "convert 5 miles to kilometres",
    "how do you spell necessary",
    "flip a coin for me",
    "what's today's date",
    "add milk to my shopping list",
    "what's on my calendar tomorrow",
    "when is my next day off",
    "how many vacation days do I have left",
    "change your voice to a British accent",
    "call my wife",
    "where am I right now",
    "what's the definition of serendipity",
    "how long will it take to drive to Manchester",
    "do I need a visa to visit Japan",
    "what plug do they use in Italy",
    "speak more slowly please",
    "yes",
    "no thanks",
    "can you repeat that",
    "what is the boiling point of water",
]


def _predict_proba(coef: np.ndarray, intercept: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """A fitted LogisticRegression's ``predict_proba``, from its weights: a softmax of
    the class scores, or for two classes the logistic function of the one score."""
    scores = np.asarray(vectors, dtype=np.float64) @ coef.T + intercept
    if coef.shape[0] == 1:
        second = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        return np.column_stack([1.0 - second, second])
    scores -= scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    return scores / scores.sum(axis=1, keepdims=True)


class Encoder(Protocol):
    """What the router needs from an embedding model (sentence-transformers fits)."""

    def encode(self, sentences: list[str], **kwargs) -> np.ndarray: ...


@dataclass(frozen=True)
class Route:
    skill: str  # a skill name or OUT_OF_SCOPE
    confidence: float  # probability of the chosen skill (or of the best skill when out of scope)
    scores: dict[str, float]


class EmbeddingRouter:
    """Logistic regression over sentence embeddings of the routing examples.

    Small, deterministic (fixed solver, no randomness) and trained in well under
    a second at start-up, so third-party skills join the router simply by
    shipping examples.
    """

    def __init__(
        self,
        encoder: Encoder,
        examples: dict[str, list[str]],
        *,
        threshold: float = 0.55,
        out_of_scope_examples: list[str] = OUT_OF_SCOPE_EXAMPLES,
        regularization: float = 10.0,
    ):
        if not examples:
            raise ValueError("the router needs at least one skill with examples")
        self._encoder = encoder
        self.threshold = threshold
        self._regularization = regularization
        labels: list[str] = []
        texts: list[str] = []
        for name, items in {**examples, OUT_OF_SCOPE: out_of_scope_examples}.items():
            labels += [name] * len(items)
            texts += items
        self._fit(labels, self._embed(texts))

    def _fit(self, labels: list[str], vectors: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        #: The training set (labels and embeddings); a TenantRouter's gate learns from it too.
        self._labels, self._vectors = labels, vectors
        #: The fitted scikit-learn model (for audit; routing applies its weights directly).
        self.model = model = LogisticRegression(C=self._regularization, class_weight="balanced", max_iter=2000)
        model.fit(vectors, labels)
        self._classes = [str(c) for c in model.classes_]
        # The fitted weights, applied with numpy (see probabilities): scikit-learn's own
        # predict_proba validates its input on every call, a real cost per message
        # (measured: benchmarks/README.md, Design measurements).
        self._coef = np.asarray(model.coef_, dtype=np.float64)
        self._intercept = np.asarray(model.intercept_, dtype=np.float64)

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._encoder.encode(texts, normalize_embeddings=True, show_progress_bar=False))
        return vectors.astype(np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings of ``texts``, as the router sees them (the safety guard
        classifies the same vector, so a message is embedded once)."""
        return self._embed(texts)

    def route(self, text: str, vector: np.ndarray | None = None) -> Route:
        """Route one message; ``vector`` is its embedding when the caller has it already."""
        if vector is None:
            return self.route_many([text])[0]
        return self._decide(self.probabilities(np.asarray(vector, dtype=np.float32).reshape(1, -1)))[0]

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Class probabilities (rows: vectors, columns: ``classes``), as the fitted
        ``LogisticRegression.predict_proba`` gives them: a softmax of the class scores,
        or for two classes the logistic function of the one score."""
        return _predict_proba(self._coef, self._intercept, vectors)

    @property
    def classes(self) -> list[str]:
        """The skills and ``OUT_OF_SCOPE``, in the order of ``probabilities``' columns."""
        return list(self._classes)

    def route_many(self, texts: list[str]) -> list[Route]:
        return self._decide(self.probabilities(self._embed(texts)))

    def _decide(self, probabilities: np.ndarray) -> list[Route]:
        routes = []
        for row in probabilities:
            scores = {name: float(p) for name, p in zip(self._classes, row)}
            best = max(scores, key=scores.__getitem__)
            best_skill = installed_best(scores)
            if best == OUT_OF_SCOPE or scores[best] < self.threshold:
                routes.append(Route(OUT_OF_SCOPE, scores[best_skill], scores))
            else:
                routes.append(Route(best, scores[best], scores))
        return routes


class TenantRouter:
    """The installed skills' router with a gate in front for a tenant's data skills.

    The gate is a second logistic regression, fitted the same way, over the data
    skills' examples and one more class, "anything else": every example the
    installed skills' router learnt from (out-of-scope ones included). A data skill
    takes a message when the gate gives it at least the router's threshold and more
    than the installed router gives its best skill ("can I finance a bike?" stays
    with credit scoring beside a bike-hire skill); otherwise the installed skills' router decides exactly as it does for a tenant
    without data skills. Refitting one model on all skills instead moved the
    installed skills' own decisions (benchmarks/README.md, Data skills).

    The scores cover every class: the gate's for the data skills, and for the
    others the installed router's, times the gate's "anything else".
    """

    def __init__(self, base: EmbeddingRouter, examples: dict[str, list[str]]):
        from sklearn.linear_model import LogisticRegression

        clash = sorted(set(examples) & set(base.classes))
        if clash:
            raise ValueError(f"the router already has {', '.join(clash)}")
        self.base, self.threshold = base, base.threshold
        labels = [name for name, items in examples.items() for _ in items]
        vectors = base.embed([text for items in examples.values() for text in items])
        self.gate = LogisticRegression(C=base._regularization, class_weight="balanced", max_iter=2000)
        self.gate.fit(np.concatenate([base._vectors, vectors]), [_ANYTHING_ELSE] * len(base._vectors) + labels)
        self._gate_classes = [str(c) for c in self.gate.classes_]
        self._gate_weights = (np.asarray(self.gate.coef_, dtype=np.float64),
                              np.asarray(self.gate.intercept_, dtype=np.float64))
        self._other = self._gate_classes.index(_ANYTHING_ELSE)

    @property
    def classes(self) -> list[str]:
        return self.base.classes + [c for c in self._gate_classes if c != _ANYTHING_ELSE]

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.base.embed(texts)

    def route(self, text: str, vector: np.ndarray | None = None) -> Route:
        if vector is None:
            vector = self.base.embed([text])[0]
        vector = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        installed = self.base.route(text, vector)
        gate = _predict_proba(*self._gate_weights, vector)[0]
        rest = float(gate[self._other])
        scores = {name: p * rest for name, p in installed.scores.items()}
        own = {name: float(p) for name, p in zip(self._gate_classes, gate) if name != _ANYTHING_ELSE}
        scores.update(own)
        best = max(own, key=own.__getitem__)
        if own[best] >= self.threshold and own[best] > installed.scores[installed_best(installed.scores)]:
            return Route(best, own[best], scores)
        return Route(installed.skill, installed.confidence, scores)

    def route_many(self, texts: list[str]) -> list[Route]:
        return [self.route(text, vector) for text, vector in zip(texts, self.embed(texts))]


def installed_best(scores: Mapping[str, float]) -> str:
    """The most probable skill (not out of scope) among a router's scores."""
    return max((name for name in scores if name != OUT_OF_SCOPE), key=scores.__getitem__)


#: The gate's class for every message that is not for a data skill.
_ANYTHING_ELSE = "\x00anything_else"


# -- routing with context -------------------------------------------------------------

#: ``(skill, collection, message) -> similarity`` of the message's best chunk in the
#: tenant's collection (cosine, dense search), or None when the tenant has none.
KnowledgeMatch = Callable[[str, str, str], "float | None"]


@dataclass(frozen=True)
class ContextPolicy:
    """How a conversation's current skill and the tenant's knowledge weigh in.

    - ``switch``: another skill takes the conversation over only with at least this
      probability ("by the way, can you recommend a gift?"); anything less stays with
      the current skill ("it is 39.5 now", "no rash", "the blue one").
    - ``leave``: out of scope ends the current skill's part only with at least this
      probability ("what's the weather tomorrow?"), and never for a short reply of at
      most ``short_reply`` words ("no", "since Monday", "under 100"): in a conversation
      those answer the skill's last question.
    - ``knowledge``: a message the router would not give to a skill goes to the skill
      that owns a knowledge collection when the collection's best chunk is at least this
      similar to it (the tenant's own help centre answers it).

    The values are chosen on development dialogues and questions, never the test sets:
    benchmarks/README.md, Routing in context.
    """

    switch: float = 0.7
    leave: float = 0.8
    knowledge: float = 0.45
    short_reply: int = 3


def route_in_context(
    route: Route,
    message: str,
    *,
    current: str | None,
    policy: ContextPolicy,
    owners: Mapping[str, str] | None = None,
    knowledge: KnowledgeMatch | None = None,
) -> Route:
    """The decision for ``message`` given the conversation's ``current`` skill (None for
    a new conversation) and the skills that own knowledge (``owners``: skill →
    collection), starting from the router's own ``route`` of the message. Deterministic
    given the router's scores and the knowledge store's similarities."""
    scores = route.scores
    best = max(scores, key=scores.__getitem__)
    # uncertain: the message did not pick its skill on its own (out of scope, or kept
    # with the current skill for want of a confident switch).
    decision, uncertain = route, route.skill == OUT_OF_SCOPE
    if current == OUT_OF_SCOPE or current not in scores:
        current = None
    if current is not None and best != current:
        if best == OUT_OF_SCOPE:
            leaving = scores[OUT_OF_SCOPE] >= policy.leave and len(message.split()) > policy.short_reply
        else:
            leaving = scores[best] >= policy.switch
        if not leaving:
            decision, uncertain = Route(current, scores[current], scores), True
        elif best != OUT_OF_SCOPE:
            decision = Route(best, scores[best], scores)
        else:
            decision = Route(OUT_OF_SCOPE, route.confidence, scores)
    elif current is not None and best == current:
        decision, uncertain = Route(current, scores[current], scores), False
    if not uncertain or not owners or knowledge is None:
        return decision
    matches = {}
    for skill, collection in owners.items():
        if skill == decision.skill:
            continue
        similarity = knowledge(skill, collection, message)
        if similarity is not None and similarity >= policy.knowledge:
            matches[skill] = similarity
    if not matches:
        return decision
    owner = max(matches, key=matches.__getitem__)
    return Route(owner, scores.get(owner, 0.0), scores)
