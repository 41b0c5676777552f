"""TF-IDF similarity of incident texts: terms, ranking, and the properties of a similarity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revleak.remediation.similarity import rank, terms

WORDS = st.sampled_from(
    [
        "lead_response",
        "deal_velocity",
        "SLA_BREACH_UNTOUCHED",
        "O-0001",
        "owner",
        "round",
        "robin",
        "stalled",
        "paused",
        "the",
        "of",
        "Nakatomi",
        "renewal",
        "42",
        "2026-03-02T10:00:00.000Z",
    ]
)
TEXTS = st.lists(WORDS, max_size=30).map(" ".join) | st.text(max_size=200)
WORDY_TEXTS = st.lists(WORDS.filter(lambda word: word[0].isalpha()), min_size=1, max_size=30).map(
    lambda words: " ".join([*words, "incident"])
)


def test_terms_keep_identifiers_whole_and_split() -> None:
    counts = terms(
        "The lead_response SLO of O-0001 breached: SLA_BREACH_UNTOUCHED at 2026-03-02T10:00:00Z, 42"
    )
    assert counts == {
        "lead_response": 1,
        "lead": 1,
        "response": 1,
        "slo": 1,
        "o-0001": 1,
        "breached": 1,
        "sla_breach_untouched": 1,
        "sla": 1,
        "breach": 1,
        "untouched": 1,
    }


def test_rank_prefers_shared_rare_terms_and_breaks_ties_by_key() -> None:
    documents = {
        "INC-1": "lead_response breached: leads untouched, round robin paused",
        "INC-2": "deal_velocity stalled deals in the renewal pipeline",
        "INC-3": "lead_response breached: leads untouched, round robin paused",
        "INC-4": "nothing in common",
    }
    ranking = rank("round robin paused on lead_response", documents, limit=10)
    assert [key for key, _score in ranking] == ["INC-1", "INC-3"]
    assert ranking[0][1] == ranking[1][1] > 0.5
    assert [key for key, _score in rank("round robin", documents, limit=1)] == ["INC-1"]
    assert rank("", documents, limit=5) == []
    assert rank("round robin", documents, limit=0) == []


def test_a_rarer_shared_term_counts_more_than_a_common_one() -> None:
    documents = {
        "common": "owner owner pipeline",
        "rare": "nakatomi pipeline",
        "other": "owner pipeline",
    }
    ranking = dict(rank("nakatomi owner", documents, limit=3))
    assert ranking["rare"] > ranking["common"] > 0


@given(TEXTS, TEXTS)
def test_similarity_is_symmetric(first: str, second: str) -> None:
    assert dict(rank(first, {"b": second}, 1)).get("b", 0.0) == dict(
        rank(second, {"a": first}, 1)
    ).get("a", 0.0)


@given(WORDY_TEXTS)
def test_a_text_is_fully_similar_to_itself(text: str) -> None:
    assert rank(text, {"self": text}, 1) == [("self", 1.0)]


@given(TEXTS, st.dictionaries(st.sampled_from("abcdefgh"), TEXTS, max_size=8))
def test_scores_lie_in_0_1_and_come_best_first(query: str, documents: dict[str, str]) -> None:
    ranking = rank(query, documents, limit=len(documents))
    assert all(0.0 < score <= 1.0 for _key, score in ranking)
    assert ranking == sorted(ranking, key=lambda item: (-item[1], item[0]))
    assert ranking == rank(query, dict(reversed(list(documents.items()))), len(documents))


@pytest.mark.parametrize("text", ["", "the of and", "2026-03-02T10:00:00.000Z 42 -- **"])
def test_texts_without_terms_match_nothing(text: str) -> None:
    assert terms(text) == {}
    assert rank(text, {"a": text, "b": "lead_response"}, 5) == []
