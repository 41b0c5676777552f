"""Stored post-mortems: one per incident, never changed, searchable by full text and by
similarity.

Full text is SQLite FTS5 (Porter stemming) or PostgreSQL ``websearch_to_tsquery`` over a GIN
index. Both read a query the way a web search box does: words must all occur, ``"…"`` is a
phrase, ``or`` between words means either, ``-word`` excludes. Any other character is
searched for literally, so no query can make the search fail.
"""

from __future__ import annotations

import builtins
import re
import threading
from collections import Counter
from typing import Any

from pydantic import field_validator
from sqlalchemy import Engine, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from revleak.remediation.db import POSTMORTEM_TSVECTOR, PostmortemRow, read_only
from revleak.remediation.model import Frozen
from revleak.remediation.postmortem import canonical_timestamp
from revleak.remediation.similarity import rank_terms, terms

# Similar incidents are looked for among this many most recent post-mortems.
SIMILAR_POOL = 5000

_SNIPPET_CHARS = 200


class Postmortem(Frozen):
    incident_id: str
    title: str
    slo: str
    service: str
    created_at: str  # stored as UTC with milliseconds and ``Z``, so it sorts as text
    markdown: str

    @field_validator("created_at")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return canonical_timestamp(value)


class SearchHit(Frozen):
    incident_id: str
    title: str
    slo: str
    service: str
    created_at: str
    snippet: str  # matched words in **bold**
    score: float  # higher is better; comparable within one answer only


class PostmortemStore:
    def __init__(self, engine: Engine) -> None:
        self._reader = read_only(engine)
        # Post-mortems never change, so their terms can be kept once computed.
        self._terms: dict[str, Counter[str]] = {}
        self._terms_lock = threading.Lock()

    def save(self, session: Session, postmortem: Postmortem) -> None:
        """Store ``postmortem`` in the caller's transaction; if the incident already has
        one, keep that one and do nothing."""
        values = postmortem.model_dump()
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            session.execute(
                postgresql.insert(PostmortemRow)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["incident_id"])
            )
        elif dialect == "sqlite":
            session.execute(
                sqlite.insert(PostmortemRow)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["incident_id"])
            )
        else:
            raise NotImplementedError(
                f"post-mortems are stored in SQLite or PostgreSQL, not {dialect}"
            )

    def get(self, incident_id: str) -> Postmortem | None:
        with Session(self._reader) as session:
            row = session.scalars(
                select(PostmortemRow).where(PostmortemRow.incident_id == incident_id)
            ).first()
            return _postmortem(row) if row is not None else None

    def list(self, *, limit: int = 50, offset: int = 0) -> builtins.list[Postmortem]:
        """Newest first."""
        with Session(self._reader) as session:
            rows = session.scalars(
                select(PostmortemRow)
                .order_by(PostmortemRow.created_at.desc(), PostmortemRow.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
            return [_postmortem(row) for row in rows]

    def search(self, query: str, *, limit: int = 20) -> builtins.list[SearchHit]:
        """Post-mortems that match ``query``, best first."""
        query = query.replace("\x00", " ")
        if limit < 1 or not query.strip():
            return []
        with self._reader.connect() as connection:
            if connection.dialect.name == "postgresql":
                rows = connection.execute(_POSTGRESQL_SEARCH, {"query": query, "limit": limit})
            else:
                expression = fts5_query(query)
                if expression is None:
                    return []
                rows = connection.execute(_SQLITE_SEARCH, {"query": expression, "limit": limit})
            return [SearchHit(**row._mapping) for row in rows]

    def similar(
        self, text: str, *, exclude: str | None = None, limit: int = 5
    ) -> builtins.list[SearchHit]:
        """The post-mortems whose text is most like ``text`` (TF-IDF cosine), best first."""
        with self._reader.connect() as connection:
            pool = connection.execute(
                select(
                    PostmortemRow.incident_id,
                    PostmortemRow.title,
                    PostmortemRow.slo,
                    PostmortemRow.service,
                    PostmortemRow.created_at,
                )
                .order_by(PostmortemRow.created_at.desc(), PostmortemRow.id.desc())
                .limit(SIMILAR_POOL)
            ).all()
        candidates = {row.incident_id: row for row in pool if row.incident_id != exclude}
        documents = self._documents(builtins.list(candidates))
        ranking = rank_terms(terms(text), documents, limit)
        markdown = self._markdown([incident_id for incident_id, _score in ranking])
        return [
            SearchHit(
                incident_id=incident_id,
                title=candidates[incident_id].title,
                slo=candidates[incident_id].slo,
                service=candidates[incident_id].service,
                created_at=candidates[incident_id].created_at,
                snippet=summary_line(markdown.get(incident_id, "")),
                score=score,
            )
            for incident_id, score in ranking
        ]

    def _documents(self, incident_ids: builtins.list[str]) -> dict[str, Counter[str]]:
        with self._terms_lock:
            missing = [
                incident_id for incident_id in incident_ids if incident_id not in self._terms
            ]
        for chunk in _chunks(missing, 500):
            for incident_id, markdown in self._markdown(chunk).items():
                counts = terms(markdown)
                with self._terms_lock:
                    self._terms[incident_id] = counts
        with self._terms_lock:
            documents = {incident_id: self._terms[incident_id] for incident_id in incident_ids}
            if len(self._terms) > 2 * SIMILAR_POOL:
                # Post-mortems that left the pool are not asked for again.
                self._terms = dict(documents)
            return documents

    def _markdown(self, incident_ids: builtins.list[str]) -> dict[str, str]:
        if not incident_ids:
            return {}
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(PostmortemRow.incident_id, PostmortemRow.markdown).where(
                    PostmortemRow.incident_id.in_(incident_ids)
                )
            )
            return {row.incident_id: row.markdown for row in rows}


def fts5_query(query: str) -> str | None:
    """A web-search style query as an FTS5 expression in which every word is a quoted
    string (so FTS5 syntax in it is literal); None when nothing searchable is left.

    >>> fts5_query('lead_response -paused "round robin" or AND*')
    '(("lead_response") AND ("round robin" OR "AND*")) NOT ("paused")'
    """
    groups: builtins.list[builtins.list[str]] = []
    excluded: builtins.list[str] = []
    alternative = False
    for match in _QUERY_TERM.finditer(query):
        negated, phrase, word = match.group("negated"), match.group("phrase"), match.group("word")
        term = phrase if phrase is not None else word
        if phrase is None and term.lower() == "or":
            alternative = bool(groups)
            continue
        if not _SEARCHABLE.search(term):
            continue
        quoted = '"' + term.replace('"', '""') + '"'
        if negated:
            excluded.append(quoted)
        elif alternative:
            groups[-1].append(quoted)
        else:
            groups.append([quoted])
        alternative = False
    if not groups:
        return None
    expression = " AND ".join("(" + " OR ".join(group) + ")" for group in groups)
    if excluded:
        expression = f"({expression}) NOT ({' OR '.join(excluded)})"
    return expression


def summary_line(markdown: str) -> str:
    """The first paragraph line of the Summary section (else of the text), shortened."""
    lines = markdown.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if line.strip() == "## Summary"), 0)
    body = next(
        (
            line.strip()
            for line in lines[start:]
            if line.strip() and not line.startswith(("#", "|"))
        ),
        "",
    )
    return body if len(body) <= _SNIPPET_CHARS else body[: _SNIPPET_CHARS - 1].rstrip() + "…"


def _postmortem(row: PostmortemRow) -> Postmortem:
    return Postmortem(
        incident_id=row.incident_id,
        title=row.title,
        slo=row.slo,
        service=row.service,
        created_at=row.created_at,
        markdown=row.markdown,
    )


def _chunks(items: builtins.list[Any], size: int) -> builtins.list[builtins.list[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


_QUERY_TERM = re.compile(r'(?P<negated>-)?(?:"(?P<phrase>[^"]*)"?|(?P<word>[^\s"]+))')
# FTS5's tokenizer keeps letters and digits only: a term without one would be an empty phrase.
_SEARCHABLE = re.compile(r"[^\W_]")

_SQLITE_SEARCH = text(
    """
    SELECT p.incident_id, p.title, p.slo, p.service, p.created_at,
           snippet(postmortems_fts, -1, '**', '**', '…', 16) AS snippet,
           -bm25(postmortems_fts, 5.0, 1.0) AS score
    FROM postmortems_fts JOIN postmortems AS p ON p.id = postmortems_fts.rowid
    WHERE postmortems_fts MATCH :query
    ORDER BY score DESC, p.created_at DESC, p.incident_id
    LIMIT :limit
    """
)

# Ranked and cut first, so that only the hits shown pay for their headline.
_POSTGRESQL_SEARCH = text(
    f"""
    SELECT hit.incident_id, hit.title, hit.slo, hit.service, hit.created_at,
           ts_headline('english', hit.markdown, hit.query,
                       'StartSel=**, StopSel=**, MaxFragments=1, MaxWords=24, MinWords=8')
               AS snippet,
           hit.score
    FROM (
        SELECT p.incident_id, p.title, p.slo, p.service, p.created_at, p.markdown, q AS query,
               ts_rank({POSTMORTEM_TSVECTOR}, q) AS score
        FROM postmortems AS p, websearch_to_tsquery('english', :query) AS q
        WHERE ({POSTMORTEM_TSVECTOR}) @@ q
        ORDER BY score DESC, p.created_at DESC, p.incident_id
        LIMIT :limit
    ) AS hit
    ORDER BY hit.score DESC, hit.created_at DESC, hit.incident_id
    """
)
