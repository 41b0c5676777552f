"""Every metric name and label revleak exports (docs/semantics.md §6), in one place."""

from __future__ import annotations

# Counters (prometheus_client adds the ``_total`` suffix on exposition).
SLI_EVENTS = "revleak_sli_events"
SLI_WEIGHT_USD = "revleak_sli_weight_usd"
EVENTS = "revleak_events"
LATE_EVENTS = "revleak_late_events"
DEAD_LETTERS = "revleak_dead_letter"
ALERT_CORRECTIONS = "revleak_alert_corrections"
EVENT_TO_PAGE = "revleak_event_to_page_seconds"  # a histogram
REQUESTS = "revleak_requests"  # telemetry: requests (server spans) by service and outcome
ROOT_CAUSES = "revleak_root_causes"  # telemetry: root-cause analyses by SLO, cause, service

# Gauges read from the latest snapshot at scrape time.
BURN_RATE = "revleak_slo_burn_rate"
ERROR_BUDGET_REMAINING = "revleak_slo_error_budget_remaining_ratio"
REVENUE_AT_RISK = "revleak_revenue_at_risk_usd"
BUDGET_CONSUMPTION = "revleak_budget_consumption_ratio"
PAGING_STATE = "revleak_paging_state"
INCIDENT_SEVERITY = "revleak_incident_severity"
ALERTS_FIRING = "revleak_alerts_firing"
WATERMARK_LAG = "revleak_watermark_lag_seconds"
OPEN_RECORDS = "revleak_open_records"
CLOSED_RECORDS = "revleak_closed_records"

SLO = "slo"
OUTCOME = "outcome"
KIND = "kind"
WINDOW = "window"
SEVERITY = "severity"
SOURCE = "source"
REASON = "reason"
SERVICE = "service"
CAUSE = "cause"

GOOD = "good"
BAD = "bad"

# Outcomes of an input event.
ACCEPTED = "accepted"
LATE = "late"
DEAD_LETTER = "dead_letter"
EVENT_OUTCOMES = (ACCEPTED, LATE, DEAD_LETTER)
# Outcomes of a telemetry request: succeeded in time, failed, or succeeded too slowly.
OK = "ok"
ERROR = "error"
SLOW = "slow"
