"""Which alerts Alertmanager should show (docs/semantics.md §4, *Pages*).

Two evaluations of the same rules feed the :class:`AlertBook`:

- the **early** one runs over events as they arrive, so a page goes out the moment
  a rule fires on what has arrived;
- the **final** one is the alert log, computed once the watermark has passed.

Each reports its transitions and how far in event time it has got. While both
agree on a rule's state at the final evaluation's time, Alertmanager follows the
early one, which is ahead. Where they disagree, the early evaluation saw a
different order of events than the log did, and Alertmanager is corrected to the
final log until the two agree again. Every such change is a correction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

from revleak.slo.alerts import AlertTransition
from revleak.slo.catalog import PICOS_PER_USD, SloCatalog
from revleak.timefmt import format_duration

EARLY = "early"
FINAL = "final"
ALERT_NAME = "SLOBurnRate"


class RuleKey(NamedTuple):
    """One multi-window rule of one SLO and burn kind: the identity of a page."""

    slo: str
    kind: str
    severity: str
    long_ms: int
    short_ms: int


@dataclass(frozen=True, slots=True)
class Page:
    """An alert as Alertmanager should hold it. ``ends_at`` is set once it resolved."""

    key: RuleKey
    service: str
    starts_at: int
    ends_at: int | None
    burn_long: float
    burn_short: float
    at_risk_usd: float
    blast_radius: int
    description: str
    # Numbers every state the book decides, in order: a sink that restarts skips the
    # states Alertmanager already has a later one of.
    seq: int = 0
    # Annotations that explain the page (a telemetry SLO's root cause), once found.
    explanation: tuple[tuple[str, str], ...] = ()

    @property
    def firing(self) -> bool:
        return self.ends_at is None

    def labels(self) -> dict[str, str]:
        """The stable label set: Alertmanager's fingerprint of this rule."""
        return {
            "alertname": ALERT_NAME,
            "slo": self.key.slo,
            "severity": self.key.severity,
            "kind": self.key.kind,
            "long_window": format_duration(self.key.long_ms),
            "short_window": format_duration(self.key.short_ms),
            "service": self.service,
        }

    def summary(self) -> str:
        windows = f"{format_duration(self.key.long_ms)}/{format_duration(self.key.short_ms)}"
        return (
            f"{self.key.slo} is burning its {self.key.kind} error budget "
            f"{self.burn_long:.1f}×/{self.burn_short:.1f}× over {windows}"
        )


class PagerFeed(NamedTuple):
    """What one evaluation adds: its transitions and the event time it has reached.
    ``seq`` numbers each lane's feeds, which must be applied in that order."""

    lane: str
    seq: int
    transitions: tuple[AlertTransition, ...]
    watermark: int


class Explanation(NamedTuple):
    """The annotations that explain an SLO's current pages (its root cause)."""

    slo: str
    annotations: dict[str, str]


@dataclass(slots=True)
class _Rule:
    """Both evaluations' view of one rule, and what Alertmanager was last told."""

    early: list[AlertTransition] = field(default_factory=list)  # after the final watermark
    early_state: AlertTransition | None = None  # the last early transition at or before it
    final_state: AlertTransition | None = None
    shown: Page | None = None


class AlertBook:
    def __init__(self, catalog: SloCatalog, *, early_lane: bool = True) -> None:
        # Without an early evaluation (a replay), Alertmanager simply follows the log.
        self._early_lane = early_lane
        self._services = {slo.name: slo.service for slo in catalog.slos}
        self._descriptions = {slo.name: slo.description for slo in catalog.slos}
        self._rules: dict[RuleKey, _Rule] = {}
        self._final_watermark = -(1 << 62)
        self._early_watermark = -(1 << 62)
        self._next_seq = 1
        self.corrections = 0
        self._explanations: dict[str, tuple[tuple[str, str], ...]] = {}

    def explain(self, slo: str, annotations: dict[str, str]) -> list[Page]:
        """Attach ``annotations`` to the SLO's firing pages, and to those it fires until
        all of them have resolved; the pages that change."""
        explanation = tuple(sorted(annotations.items()))
        self._explanations[slo] = explanation
        changed: list[Page] = []
        for key, rule in sorted(self._rules.items()):
            shown = rule.shown
            if key.slo == slo and shown is not None and shown.firing:
                rule.shown = replace(shown, explanation=explanation, seq=self._next_seq)
                self._next_seq += 1
                changed.append(rule.shown)
        return changed

    def receive(self, feed: PagerFeed) -> list[Page]:
        """Apply one feed; every change Alertmanager must be told, in order."""
        changed: list[Page] = []
        if feed.lane == EARLY:
            self._early_watermark = max(self._early_watermark, feed.watermark)
            for transition in feed.transitions:
                key = _key_of(transition)
                rule = self._rule(key)
                rule.early.append(transition)
                self._settle(key, rule, self._final_watermark, changed)
            return changed
        for transition in feed.transitions:
            key = _key_of(transition)
            rule = self._rule(key)
            rule.final_state = transition
            # The log is complete for this rule up to its transition.
            self._settle(key, rule, transition.at + 1, changed)
        if feed.watermark > self._final_watermark:
            self._final_watermark = feed.watermark
            for key, rule in sorted(self._rules.items()):
                self._settle(key, rule, feed.watermark, changed)
        return changed

    def _rule(self, key: RuleKey) -> _Rule:
        rule = self._rules.get(key)
        if rule is None:
            rule = self._rules[key] = _Rule()
        return rule

    def _settle(self, key: RuleKey, rule: _Rule, known_until: int, changed: list[Page]) -> None:
        """Bring what Alertmanager shows of one rule in line, the log being complete
        for it before ``known_until``."""
        # Early transitions the log has caught up with only matter as the early
        # state at that point.
        while rule.early and rule.early[0].at < known_until:
            rule.early_state = rule.early.pop(0)
        if not self._early_lane or self._early_watermark < known_until:
            # Nothing early to follow, or the early lane is behind the log (possible
            # when workers are busy): the log leads, and correcting nothing.
            early_says = None
        else:
            early_says = _state(rule.early_state) == _state(rule.final_state)
        agree = early_says is not False
        if early_says:
            wanted = rule.early[-1] if rule.early else rule.early_state
        else:
            wanted = rule.final_state
        shown = rule.shown
        if _state(wanted) == (shown is not None and shown.firing):
            return
        if wanted is not None and wanted.firing:
            page = Page(
                key=key,
                service=self._services.get(key.slo, "crm"),
                starts_at=wanted.at,
                ends_at=None,
                burn_long=wanted.burn_long,
                burn_short=wanted.burn_short,
                at_risk_usd=wanted.at_risk_picos / PICOS_PER_USD,
                blast_radius=wanted.blast_radius,
                description=self._descriptions.get(key.slo, ""),
                seq=self._next_seq,
                explanation=self._explanations.get(key.slo, ()),
            )
        else:
            assert shown is not None
            # A page the early lane never fired ends where the log resolved it, or, if
            # the log never fired it either, where the log has got to. The resolve keeps
            # what the page showed, so the notification says what was resolved.
            if wanted is None:
                wanted = rule.final_state
            ended = wanted.at if wanted is not None else known_until
            page = replace(shown, ends_at=max(ended, shown.starts_at), seq=self._next_seq)
        if not agree:
            self.corrections += 1  # the early evaluation had said otherwise
        self._next_seq += 1
        rule.shown = page
        changed.append(page)
        if not page.firing and not self._fires(key.slo):
            self._explanations.pop(key.slo, None)  # the next episode has its own cause

    def _fires(self, slo: str) -> bool:
        return any(
            key.slo == slo and rule.shown is not None and rule.shown.firing
            for key, rule in self._rules.items()
        )


def _key_of(transition: AlertTransition) -> RuleKey:
    return RuleKey(
        transition.slo,
        transition.kind.value,
        transition.severity,
        transition.long_ms,
        transition.short_ms,
    )


def _state(transition: AlertTransition | None) -> bool:
    return transition is not None and transition.firing
