"""Similar incidents: TF-IDF vectors of their texts compared by cosine similarity.

Pure and deterministic. The query is part of the corpus the inverse document frequencies
come from, so ``rank(a, {"b": b})`` and ``rank(b, {"a": a})`` give the same score.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping

# Time stamps say when, not what: left in, they would make every incident of a day alike.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?")
# Words and identifiers such as lead_response, SLA_BREACH_UNTOUCHED or O-0001.
_TOKEN = re.compile(r"[^\W_](?:[\w-]*[^\W_])?")
_PARTS = re.compile(r"[_-]+")

_STOP_WORDS = """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its itself
    just me more most my no nor not now of off on once only or other our ours out over own
    same she should so some such than that the their theirs them then there these they this
    those through to too under until up very was we were what when where which while who
    whom why will with would you your yours
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())


def terms(text: str) -> Counter[str]:
    """How often each term occurs: lower-case words with a letter, identifiers whole and
    split at ``_`` and ``-`` (``lead_response`` counts as itself, ``lead`` and ``response``)."""
    counts: Counter[str] = Counter()
    for match in _TOKEN.finditer(_TIMESTAMP.sub(" ", text)):
        word = match.group().lower()
        parts = _PARTS.split(word)
        for term in (word, *parts) if len(parts) > 1 else (word,):
            if len(term) > 1 and term not in STOP_WORDS and any(c.isalpha() for c in term):
                counts[term] += 1
    return counts


def rank(query: str, documents: Mapping[str, str], limit: int) -> list[tuple[str, float]]:
    """The ``limit`` documents most similar to ``query``, best first (ties by key), each
    with its cosine similarity in (0, 1]; documents sharing no term are left out."""
    return rank_terms(terms(query), {key: terms(text) for key, text in documents.items()}, limit)


def rank_terms(
    query: Counter[str], documents: Mapping[str, Counter[str]], limit: int
) -> list[tuple[str, float]]:
    """:func:`rank` over texts already reduced by :func:`terms`."""
    frequency: Counter[str] = Counter(query.keys())
    for counts in documents.values():
        frequency.update(counts.keys())
    corpus = len(documents) + 1
    idf = {term: math.log((1 + corpus) / (1 + seen)) + 1 for term, seen in frequency.items()}
    wanted = _unit_vector(query, idf)
    scored = []
    for key, counts in documents.items():
        score = _cosine(wanted, _unit_vector(counts, idf))
        if score > 0:
            scored.append((key, score))
    scored.sort(key=lambda item: (-item[1], item[0]))
    return scored[: max(limit, 0)]


def _unit_vector(counts: Counter[str], idf: Mapping[str, float]) -> dict[str, float]:
    # Sub-linear term frequency: a word said ten times is not ten times as telling.
    weights = {term: (1 + math.log(count)) * idf[term] for term, count in sorted(counts.items())}
    norm = math.sqrt(sum(weight * weight for weight in weights.values()))
    return {term: weight / norm for term, weight in weights.items()} if norm else {}


def _cosine(first: Mapping[str, float], second: Mapping[str, float]) -> float:
    small, large = (first, second) if len(first) <= len(second) else (second, first)
    total = sum(small[term] * large[term] for term in sorted(small) if term in large)
    # Rounding makes a text's similarity to itself exactly 1 and hides summation noise.
    return min(1.0, max(0.0, round(total, 12)))
