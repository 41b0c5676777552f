"""Head to head: the same traffic paged by revleak's flow directly, and by Prometheus
evaluating the exported Sloth-style rules over the flow's counters.

Part g) of ``make bench`` (its section of docs/BENCHMARKS.md); on its own,
``python -P -m revleak.loadtest.head_to_head``. One Tansu, one Alertmanager, one
``revleak run crm`` (pages straight to Alertmanager, serves /metrics) and one Prometheus
(scrapes the flow, evaluates ``revleak slo export-prometheus slos/crm.yaml`` and sends its
alerts to the same Alertmanager) run on loopback. Generic JSON changes stamped with the wall
clock flow at a steady rate, clean first, then with most owners and regions left empty:
``data_quality`` burns its budget, the only SLO whose events come at once (the others wait
for deadlines of 30 minutes or days).

Time to page = the wall time Alertmanager first shows the page (``SLOBurnRate`` from the
flow, ``SLOBurnRatePrometheus`` from Prometheus, severity page) minus the wall time of the
first messy change. Alertmanager is polled every ``POLL_S``.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from revleak.connectors import kafka
from revleak.loadtest import services
from revleak.loadtest.figures import met, paragraph_lines, write_section
from revleak.paging import ALERT_NAME
from revleak.slo.loader import load_catalog
from revleak.slo.prometheus_rules import ALERT_NAME as PROMETHEUS_ALERT_NAME
from revleak.slo.prometheus_rules import rules_yaml
from revleak.timefmt import format_timestamp

MODULE = "revleak.loadtest.head_to_head"
SECTION = "## Head to head: direct pages vs Prometheus rules"
SLOS = Path(__file__).resolve().parent.parent / "slos" / "crm.yaml"
# The common kube-prometheus settings Sloth's rules run under: Sloth's shortest window is
# 5 minutes, which 30 s samples cover ten times.
SCRAPE_INTERVAL_S = 30
EVALUATION_INTERVAL_S = 30
CHANGES_PER_S = 20
CLEAN_S = 20.0
MESSY_SHARE = 0.6
POLL_S = 0.25
OWNERS = ("ana", "bo", "chen", "dee")
REGIONS = ("emea", "amer", "apac")
ALERTMANAGER_CONFIG = "route:\n  receiver: sink\nreceivers:\n  - name: sink\n"


@dataclass(frozen=True, slots=True)
class Plan:
    timeout_s: float  # after the first messy change, give up on a page this late


FULL = Plan(timeout_s=240.0)


@dataclass(slots=True)
class Results:
    first_messy_s: float = 0.0
    changes: int = 0
    # (source, slo) → seconds from the first messy change to the page in Alertmanager.
    pages: dict[tuple[str, str], float] = field(default_factory=dict)

    def slos(self, source: str) -> set[str]:
        return {slo for (by, slo) in self.pages if by == source}

    def time_to_page(self, source: str) -> float | None:
        times = [seconds for (by, _), seconds in self.pages.items() if by == source]
        return min(times) if times else None


def _change(rng: random.Random, index: int, ts_ms: int, messy: float) -> bytes:
    """A lead or opportunity created with owner and region, each empty with ``messy``."""
    obj = rng.choice(("lead", "opportunity"))
    at = format_timestamp(ts_ms)
    fields: dict[str, Any] = {
        "owner": "" if rng.random() < messy else rng.choice(OWNERS),
        "region": "" if rng.random() < messy else rng.choice(REGIONS),
        "domain": f"company{index}.example",
        "created_at": at,
        "value_usd": 10_000,
    }
    if obj == "opportunity":
        fields |= {"stage": "Qualified", "next_step": "call back"}
    record = {"event_id": f"h{index}", "ts": at, "object": obj, "op": "create",
              "record_id": f"{obj[0].upper()}{index}", "fields": fields}  # fmt: skip
    return orjson.dumps(record)


def _prometheus_config(flow_target: str, alertmanager: str, rules: Path) -> str:
    return yaml.safe_dump(
        {
            "global": {
                "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
                "evaluation_interval": f"{EVALUATION_INTERVAL_S}s",
            },
            "rule_files": [str(rules)],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]
            },
            "scrape_configs": [
                {"job_name": "revleak", "static_configs": [{"targets": [flow_target]}]}
            ],
        },
        sort_keys=False,
    )


@contextmanager
def _flow(brokers: str, topic: str, alertmanager: str, scratch: Path) -> Iterator[str]:
    """``revleak run crm`` paging ``alertmanager``; yields the host:port of its /metrics."""
    port = services.free_port()
    revleak = str(Path(sys.executable).with_name("revleak"))
    run = uuid.uuid4().hex[:8]
    with (scratch / "flow.log").open("wb") as log:
        process = subprocess.Popen(
            [revleak, "run", "crm", "--brokers", brokers, "--changes-topic", topic,
             "--alerts-topic", f"alerts-{run}", "--dlq-topic", f"dlq-{run}",
             "--slos", str(SLOS), "--format", "generic", "--allowed-lateness", "1s",
             "--idle-timeout-s", "1", "--alertmanager-url", alertmanager,
             "--metrics-port", str(port), "--metrics-host", "127.0.0.1"],
            cwd=scratch, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield f"127.0.0.1:{port}"
    finally:
        services.stop(process)


def _pages(alertmanager: str) -> set[tuple[str, str]]:
    """(source, slo) of every page Alertmanager holds now."""
    alerts = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
    found: set[tuple[str, str]] = set()
    for alert in alerts:
        labels = alert["labels"]
        if labels.get("severity") != "page":
            continue
        if labels.get("alertname") == ALERT_NAME:
            found.add(("revleak", labels["slo"]))
        elif labels.get("alertname") == PROMETHEUS_ALERT_NAME:
            found.add(("prometheus", labels["slo"]))
    return found


def run(scratch: Path, *, plan: Plan = FULL) -> Results:
    rules = scratch / "revleak-slos.yml"
    rules.write_text(rules_yaml([load_catalog(SLOS)], sources=["slos/crm.yaml"]))
    topic = f"changes-{uuid.uuid4().hex[:8]}"
    results = Results()
    with (
        services.tansu(scratch / "tansu") as brokers,
        services.alertmanager(scratch / "alertmanager", ALERTMANAGER_CONFIG) as alertmanager,
    ):
        kafka.ensure_topics(brokers, {topic: 1})
        with _flow(brokers, topic, alertmanager, scratch) as target:
            config = _prometheus_config(target, alertmanager.removeprefix("http://"), rules)
            with services.prometheus(scratch / "prometheus", config):
                _race(brokers, topic, alertmanager, plan, results)
    return results


def _race(brokers: str, topic: str, alertmanager: str, plan: Plan, results: Results) -> None:
    producer = kafka.producer(brokers)
    rng = random.Random(1)
    started = time.monotonic()
    messy_at: float | None = None
    next_poll = 0.0
    index = 0
    while True:
        now = time.monotonic()
        elapsed = now - started
        if messy_at is None and elapsed >= CLEAN_S:
            messy_at = now
            results.first_messy_s = elapsed
        if messy_at is not None and now - messy_at > plan.timeout_s:
            break
        messy = MESSY_SHARE if messy_at is not None else 0.0
        producer.produce(topic, _change(rng, index, int(time.time() * 1000), messy))
        producer.poll(0)
        index += 1
        if messy_at is not None and now >= next_poll:
            next_poll = now + POLL_S
            for page in _pages(alertmanager) - set(results.pages):
                results.pages[page] = time.monotonic() - messy_at
            if {source for source, _ in results.pages} == {"revleak", "prometheus"}:
                break
        time.sleep(max(0.0, started + index / CHANGES_PER_S - time.monotonic()))
    producer.flush(30)
    results.changes = index


def render_section(results: Results) -> list[str]:
    direct = results.time_to_page("revleak")
    rules = results.time_to_page("prometheus")
    same = results.slos("revleak") == results.slos("prometheus") != set()

    def seconds(value: float | None) -> str:
        return f"{value:.1f}" if value is not None else "no page"

    ratio = f"{rules / direct:.0f}×" if direct and rules else "—"
    rows = [
        ("revleak flow, direct page: time to page (s)", seconds(direct)),
        ("Prometheus, exported rules: time to page (s)", seconds(rules)),
        ("ratio (Prometheus ÷ revleak)", ratio),
        ("SLOs paged by revleak", ", ".join(sorted(results.slos("revleak"))) or "none"),
        ("SLOs paged by Prometheus", ", ".join(sorted(results.slos("prometheus"))) or "none"),
        ("both page on the same SLOs", met(same)),
    ]
    table = "| measurement | result |\n|---|---:|\n" + "\n".join(
        f"| {name} | {value} |" for name, value in rows
    )
    paragraphs = [
        table,
        f"The flow pages from its early lane as the messy changes arrive; Prometheus needs "
        f"the changes scraped (every {SCRAPE_INTERVAL_S} s), the SLI ratio recorded and the "
        f"alert rule evaluated (every {EVALUATION_INTERVAL_S} s), then sends its alert. Both "
        "compute the same windows and burn factors from the same SLO file.",
        "### Details",
        f"- `python -P -m {MODULE}`; Tansu, Alertmanager, `revleak run crm` and Prometheus on "
        f"loopback; {results.changes:,} generic JSON creates at {CHANGES_PER_S}/s stamped "
        f"with the wall clock, {CLEAN_S:g} s clean, then {MESSY_SHARE:.0%} of owners and "
        f"regions empty; `data_quality` (99 %, page at 14.4× over 1h and 5m) burns.\n"
        f"- Prometheus: scrape and evaluation every {SCRAPE_INTERVAL_S} s and "
        f"{EVALUATION_INTERVAL_S} s, the rules of `revleak slo export-prometheus "
        "slos/crm.yaml` (docs/prometheus.md); time to page is read from Alertmanager's "
        f"`/api/v2/alerts` every {POLL_S} s.",
    ]
    return [SECTION, "", *paragraph_lines(paragraphs), ""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -P -m {MODULE}",
        description="Race revleak's direct pages against Prometheus evaluating the exported "
        "rules, and update its section of docs/BENCHMARKS.md.",
    )
    parser.add_argument("--output", type=Path, default=Path("docs/BENCHMARKS.md"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="revleak-head-to-head-") as scratch:
        results = run(Path(scratch))
    write_section(args.output, SECTION, render_section(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
