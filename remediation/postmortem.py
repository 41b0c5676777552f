"""The post-mortem of a resolved incident, rendered as Markdown from its facts.

Rendering is pure and deterministic: the same facts give the same bytes, so a stored
post-mortem can be regenerated and compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Self

from pydantic import field_validator, model_validator

from revleak.remediation.model import BlastRecord, Frozen
from revleak.timefmt import DAY_MS, HOUR_MS, MINUTE_MS, format_timestamp, parse_timestamp

TOP_RECORDS = 10


def canonical_timestamp(value: str) -> str:
    """Any ISO-8601 time as UTC with milliseconds and ``Z`` (naive means UTC)."""
    return format_timestamp(parse_timestamp(value))


class TimelineItem(Frozen):
    at: str
    status: str
    detail: str = ""

    @field_validator("at")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return canonical_timestamp(value)


class PostmortemFacts(Frozen):
    incident_id: str
    title: str
    slo: str
    service: str
    severity: str
    opened_at: str
    resolved_at: str
    timeline: tuple[TimelineItem, ...]
    impact_usd: float | None = None
    impact_users: int | None = None
    blast_radius: tuple[BlastRecord, ...] = ()
    root_cause: str
    fix: str
    verification: str
    follow_ups: tuple[str, ...] = ()

    @field_validator("opened_at", "resolved_at")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return canonical_timestamp(value)

    @model_validator(mode="after")
    def _resolved_after_opened(self) -> Self:
        if parse_timestamp(self.resolved_at) < parse_timestamp(self.opened_at):
            raise ValueError(f"resolved_at {self.resolved_at} is before opened_at {self.opened_at}")
        return self


def render_postmortem(facts: PostmortemFacts) -> str:
    """The post-mortem in Markdown: Summary, Impact, Timeline, Root cause, Fix, Verification
    and Follow-ups."""
    sections = [
        f"# Post-mortem: {_line(facts.title)}",
        _summary(facts),
        _impact(facts),
        _timeline(facts),
        f"## Root cause\n\n{_text(facts.root_cause)}",
        f"## Fix\n\n{_text(facts.fix)}",
        f"## Verification\n\n{_text(facts.verification)}",
        _follow_ups(facts.follow_ups),
    ]
    return "\n\n".join(sections) + "\n"


def format_usd(amount: float) -> str:
    """``48250.5`` → ``$48,250.50``."""
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def format_elapsed(ms: int) -> str:
    """The two largest units: ``2 h 15 min``, ``3 d 4 h``, ``45 s``."""
    parts = []
    rest = ms
    for size, unit in ((DAY_MS, "d"), (HOUR_MS, "h"), (MINUTE_MS, "min"), (1000, "s")):
        amount, rest = divmod(rest, size)
        if amount:
            parts.append(f"{amount} {unit}")
    return " ".join(parts[:2]) if parts else "0 s"


def _summary(facts: PostmortemFacts) -> str:
    elapsed = parse_timestamp(facts.resolved_at) - parse_timestamp(facts.opened_at)
    service = f" of service `{_line(facts.service)}`" if facts.service else ""
    lines = [
        "## Summary",
        "",
        f"Incident {_line(facts.incident_id)} (severity {_line(facts.severity)}) breached SLO "
        f"`{_line(facts.slo)}`{service} for {format_elapsed(elapsed)}, from {facts.opened_at} "
        f"to {facts.resolved_at}.",
    ]
    impact = _impact_phrases(facts)
    if impact:
        lines.append(f"Impact: {'; '.join(impact)}.")
    lines += [
        "",
        _table(
            ("Field", "Value"),
            [
                ("Incident", facts.incident_id),
                ("SLO", facts.slo),
                ("Service", facts.service or "-"),
                ("Severity", facts.severity),
                ("Opened", facts.opened_at),
                ("Resolved", facts.resolved_at),
                ("Duration", format_elapsed(elapsed)),
            ],
        ),
    ]
    return "\n".join(lines)


def _impact_phrases(facts: PostmortemFacts) -> list[str]:
    phrases = []
    if facts.impact_usd is not None:
        phrases.append(f"{format_usd(facts.impact_usd)} of revenue at risk")
    if facts.impact_users is not None:
        phrases.append(f"{facts.impact_users:,} users affected")
    if facts.blast_radius:
        owners = {record.owner or "unassigned" for record in facts.blast_radius}
        phrases.append(
            f"{_count(len(facts.blast_radius), 'record')} in the blast radius, "
            f"{_count(len(owners), 'owner')}"
        )
    return phrases


def _impact(facts: PostmortemFacts) -> str:
    parts = ["## Impact"]
    if facts.impact_usd is not None:
        parts.append(f"- Revenue at risk: **{format_usd(facts.impact_usd)}**")
    if facts.impact_users is not None:
        parts.append(f"- Users affected: **{facts.impact_users:,}**")
    records = sorted(facts.blast_radius, key=lambda record: (-record.impact_usd, record.record_id))
    if records:
        parts.append(f"- Blast radius: **{_count(len(records), 'record')}**")
    if len(parts) == 1:
        return "## Impact\n\nNo impact was measured."
    text = parts[0] + "\n\n" + "\n".join(parts[1:])
    if not records:
        return text
    top = _table(
        ("Record", "Rule", "Impact", "Owner", "Since"),
        [
            (
                record.record_id,
                record.rule,
                format_usd(record.impact_usd),
                record.owner or "unassigned",
                record.since or "-",
            )
            for record in records[:TOP_RECORDS]
        ],
        right=(2,),
    )
    by_owner: dict[str, list[float]] = {}
    for record in records:
        by_owner.setdefault(record.owner or "unassigned", []).append(record.impact_usd)
    owners = sorted(by_owner.items(), key=lambda item: (-sum(item[1]), item[0]))
    owner_table = _table(
        ("Owner", "Records", "Impact"),
        [(owner, f"{len(amounts):,}", format_usd(sum(amounts))) for owner, amounts in owners],
        right=(1, 2),
    )
    return f"{text}\n\n### Top records\n\n{top}\n\n### Owners\n\n{owner_table}"


def _timeline(facts: PostmortemFacts) -> str:
    if not facts.timeline:
        return "## Timeline\n\nNo transitions were recorded."
    table = _table(
        ("At (UTC)", "Status", "Detail"),
        [(item.at, item.status, item.detail or "-") for item in facts.timeline],
    )
    return f"## Timeline\n\n{table}"


def _follow_ups(items: tuple[str, ...]) -> str:
    if not items:
        return "## Follow-ups\n\nNone."
    return "## Follow-ups\n\n" + "\n".join(f"- [ ] {_line(item)}" for item in items)


def _table(
    header: tuple[str, ...], rows: Iterable[tuple[str, ...]], right: tuple[int, ...] = ()
) -> str:
    rule = tuple("---:" if index in right else "---" for index in range(len(header)))
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(_cell(cell) for cell in line) + " |" for line in lines)


def _cell(value: str) -> str:
    # A table row is one line, and ``|`` would end the cell.
    return _line(value).replace("|", "\\|")


def _line(value: str) -> str:
    return " ".join(value.split())


def _text(value: str) -> str:
    return value.strip() or "_Not recorded._"


def _count(amount: int, noun: str) -> str:
    return f"{amount:,} {noun}{'' if amount == 1 else 's'}"
