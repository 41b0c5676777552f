"""Post-mortems: the Markdown they render to, and their store on SQLite and PostgreSQL."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from databases import throwaway_database
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session

from revleak.remediation.db import create_schema, engine_for
from revleak.remediation.model import BlastRecord
from revleak.remediation.postmortem import PostmortemFacts, TimelineItem, render_postmortem
from revleak.remediation.postmortem_store import (
    Postmortem,
    PostmortemStore,
    SearchHit,
    fts5_query,
    summary_line,
)


def facts(**changes: object) -> PostmortemFacts:
    base: dict[str, object] = {
        "incident_id": "INC-7",
        "title": "Round robin paused | EMEA leads untouched",
        "slo": "lead_response",
        "service": "crm",
        "severity": "page",
        "opened_at": "2026-03-02T10:00:00Z",
        "resolved_at": "2026-03-02T14:15:30.250+02:00",
        "timeline": (
            TimelineItem(at="2026-03-02T10:00:00Z", status="DETECTED", detail="burn 14.4×"),
            TimelineItem(at="2026-03-02T10:20:00Z", status="APPLIED", detail="reassign | notify"),
            TimelineItem(at="2026-03-02T12:15:30.250Z", status="RESOLVED"),
        ),
        "impact_usd": 1248250.5,
        "impact_users": 12345,
        "blast_radius": (
            BlastRecord(
                slo="lead_response", record_id="L-2", rule="UNTOUCHED", impact_usd=250.5,
                owner="ellis",
            ),
            BlastRecord(
                slo="lead_response", record_id="L-1", rule="UNTOUCHED", impact_usd=48000,
                owner="ellis", since="2026-03-02T09:00:00.000Z",
            ),
            BlastRecord(
                slo="lead_response", record_id="L-3", rule="SLA_BREACH_UNTOUCHED",
                impact_usd=1200000,
            ),
        ),
        "root_cause": "The round robin rule was **paused** during a territory change.",
        "fix": "Reassigned 3 leads to the on-call owner.",
        "verification": "lead_response recovered within 20 minutes.",
        "follow_ups": ("Alert when round robin is paused", "Review territory runbook"),
    }  # fmt: skip
    return PostmortemFacts.model_validate({**base, **changes})


# --- rendering ----------------------------------------------------------------------------


def test_render_has_every_section_in_order() -> None:
    markdown = render_postmortem(facts())
    headings = [line for line in markdown.splitlines() if line.startswith("#")]
    assert headings == [
        "# Post-mortem: Round robin paused | EMEA leads untouched",
        "## Summary",
        "## Impact",
        "### Top records",
        "### Owners",
        "## Timeline",
        "## Root cause",
        "## Fix",
        "## Verification",
        "## Follow-ups",
    ]
    assert markdown == render_postmortem(facts())
    assert markdown.endswith("- [ ] Review territory runbook\n")


def test_render_formats_numbers_times_and_tables() -> None:
    markdown = render_postmortem(facts())
    summary = summary_line(markdown)
    assert summary == (
        "Incident INC-7 (severity page) breached SLO `lead_response` of service `crm` for "
        "2 h 15 min, from 2026-03-02T10:00:00.000Z to 2026-03-02T12:15:30.250Z."
    )
    assert (
        "Impact: $1,248,250.50 of revenue at risk; 12,345 users affected; "
        "3 records in the blast radius, 2 owners." in markdown
    )
    assert "- Revenue at risk: **$1,248,250.50**" in markdown
    assert "- Users affected: **12,345**" in markdown
    records = [line for line in markdown.splitlines() if line.startswith("| L-")]
    assert records == [
        "| L-3 | SLA_BREACH_UNTOUCHED | $1,200,000.00 | unassigned | - |",
        "| L-1 | UNTOUCHED | $48,000.00 | ellis | 2026-03-02T09:00:00.000Z |",
        "| L-2 | UNTOUCHED | $250.50 | ellis | - |",
    ]
    assert "| unassigned | 1 | $1,200,000.00 |\n| ellis | 2 | $48,250.50 |" in markdown
    assert "| 2026-03-02T10:20:00.000Z | APPLIED | reassign \\| notify |" in markdown
    assert "| 2026-03-02T12:15:30.250Z | RESOLVED | - |" in markdown


def test_render_without_measured_impact_or_follow_ups() -> None:
    markdown = render_postmortem(
        facts(impact_usd=None, impact_users=None, blast_radius=(), follow_ups=(), timeline=())
    )
    assert "## Impact\n\nNo impact was measured." in markdown
    assert "## Follow-ups\n\nNone." in markdown
    assert "## Timeline\n\nNo transitions were recorded." in markdown
    assert "Impact:" not in markdown
    users_only = render_postmortem(facts(impact_usd=None, impact_users=1, blast_radius=()))
    assert "- Users affected: **1**" in users_only
    assert "Revenue" not in users_only


def test_facts_refuse_bad_times() -> None:
    with pytest.raises(ValidationError, match="before opened_at"):
        facts(resolved_at="2026-03-02T09:00:00Z")
    with pytest.raises(ValidationError):
        facts(opened_at="yesterday")


# --- the store ------------------------------------------------------------------------------

POSTMORTEMS = (
    ("INC-1", "Round robin paused for EMEA", "lead_response", "2026-03-01T10:00:00Z",
     "The round robin assignment was paused during a territory change, so new leads sat "
     "untouched (SLA_BREACH_UNTOUCHED) until the round robin was resumed."),
    ("INC-2", "Stalled renewals at Nakatomi", "deal_velocity", "2026-03-02T10:00:00Z",
     "A bulk import emptied the next steps of the Nakatomi renewal deals."),
    ("INC-3", "Leads of a departed owner", "lead_response", "2026-03-03T10:00:00Z",
     "An owner was deactivated while the round robin kept assigning new leads to them."),
)  # fmt: skip


def postmortem(incident_id: str, title: str, slo: str, created_at: str, cause: str) -> Postmortem:
    markdown = render_postmortem(
        facts(
            incident_id=incident_id,
            title=title,
            slo=slo,
            root_cause=cause,
            blast_radius=(),
            follow_ups=("Review the runbook",),
        )
    )
    return Postmortem(
        incident_id=incident_id,
        title=title,
        slo=slo,
        service="crm",
        created_at=created_at,
        markdown=markdown,
    )


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with throwaway_database("revleak_postmortem") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = engine_for(f"sqlite:///{tmp_path / 'revleak.db'}")
    else:
        engine = engine_for(request.getfixturevalue("postgres_url"))
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS postmortems CASCADE"))
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> PostmortemStore:
    store = PostmortemStore(engine)
    for row in POSTMORTEMS:
        with Session(engine) as session, session.begin():
            store.save(session, postmortem(*row))
    return store


def ids(hits: Sequence[Postmortem | SearchHit]) -> list[str]:
    return [hit.incident_id for hit in hits]


def test_save_get_and_list_newest_first(store: PostmortemStore) -> None:
    assert ids(store.list()) == ["INC-3", "INC-2", "INC-1"]
    assert ids(store.list(limit=1, offset=1)) == ["INC-2"]
    found = store.get("INC-2")
    assert found is not None
    assert found.created_at == "2026-03-02T10:00:00.000Z"
    assert found.markdown.startswith("# Post-mortem: Stalled renewals at Nakatomi\n")
    assert store.get("INC-404") is None


def test_saving_again_keeps_the_first_post_mortem(engine: Engine, store: PostmortemStore) -> None:
    second = postmortem("INC-1", "Another title", "lead_response", "2026-04-01T00:00:00Z", "x")
    with Session(engine) as session, session.begin():
        store.save(session, second)
    kept = store.get("INC-1")
    assert kept is not None
    assert kept.title == "Round robin paused for EMEA"
    assert len(store.list()) == 3
    assert ids(store.search("another")) == []


def test_save_belongs_to_the_callers_transaction(engine: Engine, store: PostmortemStore) -> None:
    with Session(engine) as session:
        session.begin()
        store.save(session, postmortem("INC-9", "Rolled back", "x", "2026-04-01T00:00:00Z", "y"))
        session.rollback()
    assert store.get("INC-9") is None
    assert ids(store.search("rolled back")) == []


def test_search_finds_stemmed_words_and_ranks_titles_first(store: PostmortemStore) -> None:
    assert ids(store.search("nakatomi")) == ["INC-2"]
    assert ids(store.search("pausing")) == ["INC-1"]  # paused, pausing: one stem
    assert ids(store.search("round robin")) == ["INC-1", "INC-3"]
    assert ids(store.search("round robin", limit=1)) == ["INC-1"]
    hit = store.search("deactivated")[0]
    assert (hit.incident_id, hit.title, hit.slo, hit.created_at) == (
        "INC-3",
        "Leads of a departed owner",
        "lead_response",
        "2026-03-03T10:00:00.000Z",
    )
    assert "**" in hit.snippet
    assert hit.score > 0


def test_search_understands_phrases_alternatives_and_exclusions(store: PostmortemStore) -> None:
    assert ids(store.search('"round robin" -deactivated')) == ["INC-1"]
    assert sorted(ids(store.search("nakatomi or deactivated"))) == ["INC-2", "INC-3"]
    assert ids(store.search('"robin round"')) == []


WEIRD_QUERIES = [
    '"',
    '""',
    "*",
    "AND",
    "OR",
    "NOT",
    "-",
    "--",
    "(",
    ")",
    "title:",
    "title:round",
    "NEAR(round robin)",
    '"unterminated round',
    "'; DROP TABLE postmortems; --",
    "\x00",
    "round\x00robin",
    "^",
    "a*b",
    "🙂",
    "   ",
    "-paused",
    "round AND OR NOT robin",
    "sla_breach_untouched",
    "{}[]<>!@#$%&|\\",
]


@pytest.mark.parametrize("query", WEIRD_QUERIES)
def test_no_query_makes_search_fail(store: PostmortemStore, engine: Engine, query: str) -> None:
    hits = store.search(query)
    assert set(ids(hits)) <= {"INC-1", "INC-2", "INC-3"}
    assert inspect(engine).has_table("postmortems")


def test_identifiers_are_searched_literally(store: PostmortemStore) -> None:
    assert ids(store.search("SLA_BREACH_UNTOUCHED")) == ["INC-1"]
    assert ids(store.search("sla_breach_untouched")) == ["INC-1"]


@pytest.fixture(scope="module")
def sqlite_store() -> Iterator[PostmortemStore]:
    with tempfile.TemporaryDirectory() as folder:
        engine = engine_for(f"sqlite:///{folder}/revleak.db")
        create_schema(engine)
        store = PostmortemStore(engine)
        with Session(engine) as session, session.begin():
            for row in POSTMORTEMS:
                store.save(session, postmortem(*row))
        yield store
        engine.dispose()


@given(st.text(max_size=60))
def test_any_text_is_a_safe_sqlite_query(sqlite_store: PostmortemStore, query: str) -> None:
    assert set(ids(sqlite_store.search(query))) <= {"INC-1", "INC-2", "INC-3"}


def test_fts5_query_quotes_every_term() -> None:
    assert fts5_query('a "b c" or NEAR(e) -d') == '(("a") AND ("b c" OR "NEAR(e)")) NOT ("d")'
    assert fts5_query('say "hi') == '("say") AND ("hi")'
    assert fts5_query("-only or *") is None


def test_similar_ranks_by_shared_terms(store: PostmortemStore) -> None:
    hits = store.similar("round robin paused, leads untouched", exclude="INC-1")
    assert ids(hits)[0] == "INC-3"
    assert all(0 < hit.score <= 1 for hit in hits)
    assert hits[0].snippet.startswith("Incident INC-3 (severity page) breached SLO")
    with_self = store.similar("round robin paused, leads untouched", limit=1)
    assert ids(with_self) == ["INC-1"]
    assert store.similar("zebra quantum") == []
