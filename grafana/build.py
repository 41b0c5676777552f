"""revleak's Grafana dashboards, written as JSON into grafana/dashboards/.

Run ``python -P grafana/build.py`` after a change here and commit both: Grafana loads the
JSON (provisioning/dashboards/revleak.yaml), and tests/grafana checks that the committed
files are what this script writes and that every query works against a real Prometheus.

Panels are laid out left to right in rows of Grafana's 24 columns, so they never overlap.
Every query reads the raw metrics of docs/semantics.md §6 and api/metrics.py, never a
recording rule: the dashboards then work with any Prometheus that scrapes the flows.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revleak.slo.loader import load_catalog

Json = dict[str, Any]

FOLDER = Path(__file__).resolve().parent / "dashboards"
DATASOURCE: Json = {"type": "prometheus", "uid": "prometheus"}
GRID_COLUMNS = 24
SCHEMA_VERSION = 39
TAGS = ["revleak"]
RATE = "$__rate_interval"

SLO_FILES = [Path(__file__).resolve().parent.parent / "slos" / name
             for name in ("crm.yaml", "telemetry.yaml")]  # fmt: skip


def _policy() -> tuple[tuple[str, str, str, float], ...]:
    """The alert policy of the bundled SLO files: severity, long window, short window, burn
    factor. A rule fires while both windows burn above the factor; the threshold lines of the
    burn panels are these, so they cannot disagree with what pages."""
    policies = {
        tuple(
            (rule.severity, rule.long_window, rule.short_window, float(rule.factor))
            for rule in slo.alert_rules
        )
        for path in SLO_FILES
        for slo in load_catalog(path).slos
    }
    if len(policies) != 1:
        raise SystemExit("the dashboards draw one alert policy; the SLO files have several")
    return policies.pop()


POLICY = _policy()
# Every alert window, shortest first; the 30-day period is left out (budget panels show it).
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")

GREEN, YELLOW, ORANGE, RED, DARK_RED = "green", "yellow", "orange", "red", "dark-red"
SEVERITIES = {0: ("none", GREEN), 1: ("SEV1", DARK_RED), 2: ("SEV2", RED), 3: ("SEV3", ORANGE),
              4: ("SEV4", YELLOW)}  # fmt: skip
PAGING_STATES = {0: ("OK", GREEN), 1: ("WARN", YELLOW), 2: ("PAGE", RED)}


# Queries and panels


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = "__auto"
    instant: bool = False
    table: bool = False  # one row a series, for table panels


@dataclass(frozen=True)
class Panel:
    """A panel before layout: its size in grid units and its JSON without id and gridPos."""

    width: int
    height: int
    body: Json = field(repr=False)


def _targets(queries: Sequence[Query]) -> list[Json]:
    return [
        {
            "datasource": DATASOURCE,
            "refId": chr(ord("A") + index),
            "expr": query.expr,
            "legendFormat": query.legend,
            "range": not query.instant,
            "instant": query.instant,
            "format": "table" if query.table else "time_series",
            "editorMode": "code",
        }
        for index, query in enumerate(queries)
    ]


def _thresholds(steps: Sequence[tuple[str, float | None]]) -> Json:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for color, value in steps],
    }


def _value_mappings(names: dict[int, tuple[str, str]]) -> list[Json]:
    options = {
        str(value): {"text": text, "color": color, "index": index}
        for index, (value, (text, color)) in enumerate(names.items())
    }
    return [{"type": "value", "options": options}]


def _panel(
    kind: str,
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    width: int,
    height: int,
    defaults: Json,
    options: Json,
    overrides: Sequence[Json] = (),
    transformations: Sequence[Json] = (),
) -> Panel:
    body: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets(queries),
        "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
        "options": options,
    }
    if transformations:
        body["transformations"] = list(transformations)
    return Panel(width, height, body)


def _reduce_last() -> Json:
    return {"calcs": ["lastNotNull"], "fields": "", "values": False}


def timeseries(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    threshold_lines: Sequence[float] = (),
    bars: bool = False,
    stacked: bool = False,
    soft_max: float | None = None,
    logarithmic: bool = False,
) -> Panel:
    """Lines over time; ``threshold_lines`` are drawn as constant dashed lines."""
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "lineInterpolation": "stepAfter",
        "lineWidth": 2,
        "fillOpacity": 60 if bars else 8,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stacked else "none"},
        "thresholdsStyle": {"mode": "dashed" if threshold_lines else "off"},
    }
    if logarithmic:
        custom["scaleDistribution"] = {"type": "log", "log": 10}
    else:
        custom["axisSoftMin"] = 0
    if soft_max is not None:
        custom["axisSoftMax"] = soft_max
    steps: list[tuple[str, float | None]] = [(GREEN, None)]
    steps += [(RED, value) for value in sorted(threshold_lines)]
    defaults = {
        "unit": unit,
        "color": {"mode": "palette-classic"},
        "custom": custom,
        "thresholds": _thresholds(steps),
    }
    options = {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return _panel("timeseries", title, description, queries, width=width, height=height,
                  defaults=defaults, options=options)  # fmt: skip


def stat(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str = "short",
    width: int = 6,
    height: int = 5,
    steps: Sequence[tuple[str, float | None]] = ((GREEN, None),),
    names: dict[int, tuple[str, str]] | None = None,
    decimals: int | None = None,
) -> Panel:
    """The latest value of each series, coloured by ``steps`` or by the value ``names``."""
    defaults: Json = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": _thresholds(steps),
        "mappings": _value_mappings(names) if names else [],
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    options = {
        "reduceOptions": _reduce_last(),
        "colorMode": "background",
        "graphMode": "none",
        "textMode": "value_and_name",
        "justifyMode": "auto",
        "orientation": "auto",
    }
    return _panel("stat", title, description, queries, width=width, height=height,
                  defaults=defaults, options=options)  # fmt: skip


def gauge(
    title: str,
    description: str,
    query: Query,
    *,
    unit: str,
    maximum: float,
    steps: Sequence[tuple[str, float | None]],
    width: int = 6,
    height: int = 5,
) -> Panel:
    defaults = {"unit": unit, "min": 0, "max": maximum, "thresholds": _thresholds(steps),
                "color": {"mode": "thresholds"}}  # fmt: skip
    options = {"reduceOptions": _reduce_last(), "showThresholdMarkers": True,
               "showThresholdLabels": False, "orientation": "auto"}  # fmt: skip
    return _panel("gauge", title, description, [query], width=width, height=height,
                  defaults=defaults, options=options)  # fmt: skip


def bargauge(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str,
    steps: Sequence[tuple[str, float | None]],
    width: int = 12,
    height: int = 8,
) -> Panel:
    defaults = {"unit": unit, "min": 0, "thresholds": _thresholds(steps),
                "color": {"mode": "thresholds"}}  # fmt: skip
    options = {"reduceOptions": _reduce_last(), "displayMode": "gradient",
               "orientation": "horizontal", "showUnfilled": True}  # fmt: skip
    return _panel("bargauge", title, description, queries, width=width, height=height,
                  defaults=defaults, options=options)  # fmt: skip


def table(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    transformations: Sequence[Json],
    unit: str = "short",
    steps: Sequence[tuple[str, float | None]] = ((GREEN, None),),
    overrides: Sequence[Json] = (),
    width: int = 24,
    height: int = 8,
) -> Panel:
    defaults = {
        "unit": unit,
        "thresholds": _thresholds(steps),
        "color": {"mode": "thresholds"},
        "custom": {"align": "auto", "cellOptions": {"type": "color-text"}},
    }
    options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    return _panel("table", title, description, queries, width=width, height=height,
                  defaults=defaults, options=options, overrides=overrides,
                  transformations=transformations)  # fmt: skip


# Dashboards


def layout(panels: Iterable[Panel]) -> list[Json]:
    """Ids in order and grid positions left to right, a new row when one is full."""
    placed: list[Json] = []
    x = y = row_height = 0
    for number, panel in enumerate(panels, start=1):
        if not 0 < panel.width <= GRID_COLUMNS:
            raise ValueError(f"{panel.body['title']!r} is {panel.width} columns wide")
        if x + panel.width > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        grid = {"x": x, "y": y, "w": panel.width, "h": panel.height}
        placed.append({"id": number, "gridPos": grid, **panel.body})
        x += panel.width
        row_height = max(row_height, panel.height)
    return placed


def variable(name: str, label: str, metric: str, *, include_all: bool = False) -> Json:
    """A template variable listing the values of label ``name`` on ``metric``."""
    definition = f"label_values({metric}, {name})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {"query": definition, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,  # on time range change: a new SLO or service shows up
        "sort": 1,
        "multi": include_all,
        "includeAll": include_all,
        "allValue": ".*" if include_all else None,
        "current": {},
        "options": [],
        "hide": 0,
        "regex": "",
        "skipUrlSync": False,
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: Iterable[Panel],
    *,
    variables: Sequence[Json] = (),
    annotations: Sequence[Json] = (),
) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,  # a shared crosshair: the same moment on every panel
        "timezone": "utc",
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "links": [{"title": "revleak", "type": "dashboards", "tags": TAGS, "asDropdown": True}],
        "templating": {"list": list(variables)},
        "annotations": {"list": list(annotations)},
        "panels": layout(panels),
    }


def _policy_steps() -> list[tuple[str, float | None]]:
    """Burn colours: above 1 the budget runs out before the period ends."""
    return [(GREEN, None), (YELLOW, 1.0), (ORANGE, 3.0), (RED, 6.0), (DARK_RED, 14.4)]


def war_room() -> Json:
    every_window = "|".join(WINDOWS)
    burn_now = (
        f'max by (slo, window) (revleak_slo_burn_rate{{kind="count", window=~"{every_window}"}})'
    )
    panels = [
        stat("Incident severity", "SEV1 (worst) to SEV4 per flow; none when no leak is open.",
             [Query("max by (job) (revleak_incident_severity)", "{{job}}")],
             width=5, names=SEVERITIES),
        gauge("Budget consumption",
              "Dollars at risk over the 30-day period ÷ the monthly revenue budget: "
              "WARN from 25 %, PAGE above 50 %, SEV2 above 100 %, SEV1 above 200 %.",
              Query("max(revleak_budget_consumption_ratio)", "consumption"),
              unit="percentunit", maximum=2.0, width=5,
              steps=[(GREEN, None), (YELLOW, 0.25), (RED, 0.5), (DARK_RED, 1.0)]),
        stat("Paging state", "The incident's paging state per flow.",
             [Query("max by (job) (revleak_paging_state)", "{{job}}")],
             width=4, names=PAGING_STATES),
        stat("Revenue at risk", "Dollar weight of bad events over the period, every SLO.",
             [Query("sum(revleak_revenue_at_risk_usd)", "at risk")],
             unit="currencyUSD", width=5, steps=[(GREEN, None), (ORANGE, 1.0)]),
        stat("Alerts firing", "Burn-rate rules firing now, by severity.",
             [Query("sum by (severity) (revleak_alerts_firing)", "{{severity}}")],
             width=5, steps=[(GREEN, None), (RED, 1.0)]),
        table("Burn rate by SLO and window",
              "Count burn rate of every SLO over every alert window, at the flow's "
              "watermark. Colours follow the policy's factors: 1, 3, 6, 14.4.",
              [Query(burn_now, "{{slo}} {{window}}", instant=True, table=True)],
              width=12, height=9, steps=_policy_steps(),
              transformations=[
                  {"id": "groupingToMatrix",
                   "options": {"columnField": "window", "rowField": "slo",
                               "valueField": "Value"}},
                  {"id": "organize",
                   "options": {"indexByName": {"slo\\window": 0,
                                               **{w: i for i, w in enumerate(WINDOWS, 1)}}}},
              ]),
        timeseries("Burn rate over 1 h",
                   "Count burn rate of each SLO over the 1 h window; the page rule fires "
                   "when it and the 5 m window are both above 14.4.",
                   [Query('max by (slo) (revleak_slo_burn_rate{kind="count", window="1h"})',
                          "{{slo}}")],
                   height=9, threshold_lines=[14.4]),
        timeseries("Firing alerts", "Burn-rate rules firing, by SLO and severity.",
                   [Query("sum by (slo, severity) (revleak_alerts_firing) > 0",
                          "{{slo}} {{severity}}")],
                   width=12, stacked=True),
        bargauge("Blast radius: dollars at risk by SLO",
                 "Dollar weight of each SLO's bad events over the period.",
                 [Query("sort_desc(sum by (slo) (revleak_revenue_at_risk_usd) > 0)", "{{slo}}",
                        instant=True)],
                 unit="currencyUSD", width=8,
                 steps=[(GREEN, None), (ORANGE, 1000.0), (RED, 10000.0)]),
        stat("Open records", "CRM records each flow holds in state.",
             [Query("sum by (job) (revleak_open_records)", "{{job}}")], width=4, height=8),
        timeseries("Incident and fix-pack changes",
                   "Changes the API announced since it started: incidents opened, updated "
                   "and resolved; fix-pack runs proposed, approved, applied, verified, rolled "
                   "back. Totals, so a kind of change that happened once still shows.",
                   [Query("sum by (type, change) (revleak_api_changes_total)",
                          "{{type}} {{change}}")],
                   width=12),
        timeseries("Alertmanager notifications", "Webhook notifications the API received.",
                   [Query(f"sum by (outcome) (rate(revleak_api_webhook_notifications_total"
                          f"[{RATE}]))", "{{outcome}}")],
                   unit="reqps", width=6),
        timeseries("API latency p95", "95th percentile of the API's request duration by route.",
                   [Query("histogram_quantile(0.95, sum by (le, route) (rate("
                          f"revleak_api_request_duration_seconds_bucket[{RATE}])))",
                          "{{route}}")],
                   unit="s", width=6),
    ]  # fmt: skip
    return dashboard(
        "revleak-war-room",
        "revleak · War Room",
        "Is revenue leaking now, how badly, where, and what is being done about it.",
        panels,
    )


def _slo(outcome: str | None = None) -> str:
    matchers = 'slo="$slo"' + (f', outcome="{outcome}"' if outcome else "")
    return f"revleak_sli_events_total{{{matchers}}}"


def slo_detail() -> Json:
    good_ratio = f"sum(rate({_slo('good')}[{RATE}])) / sum(rate({_slo()}[{RATE}]))"
    range_ratio = f"sum(increase({_slo('good')}[$__range])) / sum(increase({_slo()}[$__range]))"
    # Logarithmic: a dollar burn can be thousands while the count burn of the same SLO is
    # near its factor, and both must be readable against it.
    rules = [
        timeseries(f"{severity.capitalize()}: {long} and {short} over {factor:g}",
                   f"Burn rate over the rule's windows; it fires while both are above "
                   f"{factor:g}.",
                   [Query('max by (kind, window) (revleak_slo_burn_rate{slo="$slo", '
                          f'window=~"{long}|{short}"}})', "{{kind}} {{window}}")],
                   width=6, threshold_lines=[factor], soft_max=factor * 1.25, logarithmic=True)
        for severity, long, short, factor in POLICY
    ]  # fmt: skip
    panels = [
        stat("Good ratio over the range", "Good SLI events ÷ all SLI events in the time range.",
             [Query(range_ratio, "SLI", instant=True)], unit="percentunit", decimals=3),
        stat("Error budget remaining", "Budget left over the 30-day period, per burn kind.",
             [Query('revleak_slo_error_budget_remaining_ratio{slo="$slo"}', "{{kind}}")],
             unit="percentunit", steps=[(RED, None), (ORANGE, 0.0), (YELLOW, 0.25),
                                        (GREEN, 0.5)]),
        stat("Revenue at risk", "Dollar weight of the SLO's bad events over the period.",
             [Query('sum(revleak_revenue_at_risk_usd{slo="$slo"})', "at risk")],
             unit="currencyUSD", steps=[(GREEN, None), (ORANGE, 1.0)]),
        stat("Alerts firing", "The SLO's burn-rate rules firing now, by severity.",
             [Query('sum by (severity) (revleak_alerts_firing{slo="$slo"})', "{{severity}}")],
             steps=[(GREEN, None), (RED, 1.0)]),
        timeseries("SLI: good ratio", "Good SLI events ÷ all SLI events, per rate interval.",
                   [Query(good_ratio, "good ratio")], unit="percentunit", soft_max=1.0),
        timeseries("Good and bad events", "SLI events per rate interval, by outcome.",
                   [Query(f'sum by (outcome) (increase({_slo()}[{RATE}]))', "{{outcome}}")],
                   bars=True, stacked=True),
        *rules,
        timeseries("Error budget remaining over time",
                   "Budget left over the 30-day period, per burn kind.",
                   [Query('revleak_slo_error_budget_remaining_ratio{slo="$slo"}', "{{kind}}")],
                   unit="percentunit"),
        timeseries("Dollar weight of SLI events",
                   "Dollars carried by the SLO's events per rate interval (revenue SLOs).",
                   [Query('sum by (outcome) (increase(revleak_sli_weight_usd_total{slo="$slo"}'
                          f'[{RATE}]))', "{{outcome}}")],
                   unit="currencyUSD", bars=True, stacked=True),
    ]  # fmt: skip
    return dashboard(
        "revleak-slo-detail",
        "revleak · SLO Detail",
        "One SLO: its SLI, its burn over each alert rule's windows, its budget, its events.",
        panels,
        variables=[variable("slo", "SLO", "revleak_sli_events_total")],
    )


def _requests(outcome: str | None = None) -> str:
    matchers = 'service=~"$service"' + (f', outcome="{outcome}"' if outcome else "")
    return f"sum by (service) (rate(revleak_requests_total{{{matchers}}}[{RATE}]))"


def _share(outcome: str) -> str:
    """Requests of ``outcome`` ÷ all requests per service; 0, not nothing, for a service
    that has had none of them (its counter is only created by the first one)."""
    return f"({_requests(outcome)} or {_requests()} * 0) / {_requests()}"


# Root-cause analyses in the minute before: the counter went up, or its series appeared (a
# counter created by its first increment shows no increase).
ANALYSED = (
    "sum by (slo, cause, service) (increase(revleak_root_causes_total[1m]) > 0 "
    "or (revleak_root_causes_total unless revleak_root_causes_total offset 1m))"
)
# The moment of the latest analysis: the last step at which ANALYSED holds and did not hold
# at the step before (it holds for a minute after each one).
LATEST_ANALYSIS = (
    f"max_over_time(timestamp({ANALYSED} unless last_over_time(({ANALYSED})"
    "[$__interval:$__interval] offset $__interval))[$__range:$__interval]) * 1000"
)


def telemetry() -> Json:
    def burn(slo: str) -> Query:
        paged = {window for _, long, short, _ in POLICY[:2] for window in (long, short)}
        windows = "|".join(window for window in WINDOWS if window in paged)
        return Query(
            f'max by (window) (revleak_slo_burn_rate{{slo="{slo}", kind="count", '
            f'window=~"{windows}"}})',
            "{{window}}",
        )

    panels = [
        timeseries("Request rate", "Requests (server, consumer and root spans) per second.",
                   [Query(_requests(), "{{service}}")], unit="reqps", width=8),
        timeseries("Error ratio", "Failed requests ÷ requests.",
                   [Query(_share("error"), "{{service}}")], unit="percentunit", width=8),
        timeseries("Slow ratio",
                   "Requests that succeeded over their latency threshold ÷ requests.",
                   [Query(_share("slow"), "{{service}}")], unit="percentunit", width=8),
        timeseries("Saturation burn rate",
                   "Memory SLO: minutes with usage ÷ limit over 0.9 or an OOM kill, as burn "
                   "over the page rules' windows.",
                   [burn("saturation")], width=8, threshold_lines=[6.0, 14.4]),
        timeseries("Conversion burn rate",
                   "Cart-to-checkout SLO: minutes converting below the objective × baseline, "
                   "as burn over the page rules' windows.",
                   [burn("conversion")], width=8, threshold_lines=[6.0, 14.4]),
        timeseries("Availability and latency burn over 1 h",
                   "Count burn rate of the request SLOs over the 1 h window.",
                   [Query('max by (slo) (revleak_slo_burn_rate{slo=~"availability|latency", '
                          'kind="count", window="1h"})', "{{slo}}")],
                   width=8, threshold_lines=[14.4]),
        table("Latest root causes",
              "Root-cause analyses of telemetry pages by SLO and top cause: how many since "
              "the flow started, and the latest in the time range.",
              [Query("sum by (slo, cause, service) (revleak_root_causes_total)", "",
                     instant=True, table=True),
               Query(LATEST_ANALYSIS, "", instant=True, table=True)],
              transformations=[
                  {"id": "merge", "options": {}},
                  {"id": "organize",
                   "options": {"excludeByName": {"Time": True},
                               "renameByName": {"Value #A": "analyses",
                                                "Value #B": "latest"}}},
                  {"id": "sortBy", "options": {"sort": [{"field": "latest", "desc": True}]}},
              ],
              overrides=[{"matcher": {"id": "byName", "options": "latest"},
                          "properties": [{"id": "unit", "value": "dateTimeAsIso"}]}]),
    ]  # fmt: skip
    annotation = {
        "name": "Root causes",
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": "red",
        "expr": ANALYSED,
        "step": "1m",
        "titleFormat": "Root cause of {{slo}}: {{cause}}",
        "textFormat": "{{cause}} on {{service}}",
        "tagKeys": "slo,cause,service",
        "useValueForTime": False,
    }
    return dashboard(
        "revleak-telemetry",
        "revleak · Telemetry",
        "Services seen through their spans: RED per service, the telemetry SLOs' burn, and "
        "the root causes revleak found for their pages.",
        panels,
        variables=[variable("service", "Service", "revleak_requests_total", include_all=True)],
        annotations=[annotation],
    )


def pipeline_health() -> Json:
    def quantile(q: float) -> Query:
        return Query(
            f"histogram_quantile({q}, sum by (le, job) "
            f"(rate(revleak_event_to_page_seconds_bucket[{RATE}])))",
            f"p{round(q * 100)} {{{{job}}}}",
        )

    panels = [
        timeseries("Throughput", "Input events per second by source and outcome.",
                   [Query(f"sum by (source, outcome) (rate(revleak_events_total[{RATE}]))",
                          "{{source}} {{outcome}}")], unit="ops"),
        timeseries("Watermark lag",
                   "Newest event time minus the watermark per source: the allowed lateness "
                   "while data flows.",
                   [Query("max by (source) (revleak_watermark_lag_seconds)", "{{source}}")],
                   unit="s"),
        timeseries("Late events", "Events older than the watermark, dead-lettered as late.",
                   [Query(f"sum by (source) (increase(revleak_late_events_total[{RATE}]))",
                          "{{source}}")], width=8, bars=True),
        timeseries("Dead letters by reason", "Dead-lettered input per rate interval.",
                   [Query(f"sum by (source, reason) (increase(revleak_dead_letter_total"
                          f"[{RATE}])) > 0", "{{source}} {{reason}}")],
                   width=8, bars=True, stacked=True),
        bargauge("Dead letters in the range", "Dead letters by source and reason.",
                 [Query("sort_desc(round(sum by (source, reason) (increase("
                        "revleak_dead_letter_total[$__range]))) > 0)", "{{source}} {{reason}}",
                        instant=True)],
                 unit="short", width=8, steps=[(ORANGE, None)]),
        timeseries("Event to page latency",
                   "Wall time Alertmanager accepted a firing page minus the event time it "
                   "fired at (meaningful when event time follows wall time).",
                   [quantile(0.5), quantile(0.9), quantile(0.99)], unit="s"),
        timeseries("Records held", "Open and closed CRM records in the flows' state.",
                   [Query("sum(revleak_open_records)", "open"),
                    Query("sum(revleak_closed_records)", "closed")], width=6),
        stat("Flows scraped", "Scrape targets of the revleak jobs that answer.",
             [Query('sum by (job) (up{job=~"revleak.*"})', "{{job}}")],
             width=6, height=8, steps=[(RED, None), (GREEN, 1.0)]),
        timeseries("Alert corrections",
                   "Pages corrected to the final alert log (SLI events that arrived out of "
                   "event-time order).",
                   [Query(f"sum(increase(revleak_alert_corrections_total[{RATE}]))",
                          "corrections")], width=12, bars=True),
        timeseries("Pages delivered", "Firing pages Alertmanager accepted per second.",
                   [Query(f"sum by (job) (rate(revleak_event_to_page_seconds_count[{RATE}]))",
                          "{{job}}")], unit="reqps", width=12),
    ]  # fmt: skip
    return dashboard(
        "revleak-pipeline",
        "revleak · Pipeline Health",
        "The flows themselves: what they read, how far behind event time they run, what they "
        "reject, and how fast a page goes out.",
        panels,
    )


def dashboards() -> dict[str, Json]:
    """File name → dashboard."""
    return {
        "war-room.json": war_room(),
        "slo-detail.json": slo_detail(),
        "telemetry.json": telemetry(),
        "pipeline-health.json": pipeline_health(),
    }


def serialise(board: Json) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name, board in dashboards().items():
        (FOLDER / name).write_text(serialise(board), encoding="utf-8")
        print(f"wrote {FOLDER / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
