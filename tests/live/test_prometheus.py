"""A real Prometheus scraping a live flow fed through Kafka: PromQL over revleak's counters,
and the recording rules of prometheus/rules/, give the burn rates the flow itself reports.

The flow's windows slide over event time, Prometheus' over wall time. The test makes the two
coincide by producing changes stamped with the wall-clock time at which they are produced,
for well under 5 minutes, so that every window from 5m up holds the whole run on both sides.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
import yaml
from harness import DEFAULT_SLOS, ROOT
from oracle.reference import replay as oracle_replay
from prometheus_client.parser import text_string_to_metric_families

from revleak.connectors import kafka
from revleak.loadtest import services
from revleak.slo.catalog import SloCatalog
from revleak.slo.loader import load_catalog
from revleak.timefmt import (
    MINUTE_MS,
    format_duration,
    format_timestamp,
    parse_duration,
    parse_timestamp,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

CONFIG = ROOT / "prometheus" / "prometheus.yml"
RULES = ROOT / "prometheus" / "rules" / "revleak-burn.yml"
RECORD = "slo:revleak_slo_burn_rate:increase"
JOB = "revleak"
SLO = "data_quality"  # the SLO whose bad events happen at the change, without a deadline
LATENESS = "1s"
LATENESS_MS = parse_duration(LATENESS)

# Traffic: 288 changes over 36 s, with a minute boundary at least 8 s from either end.
TRAFFIC_S = 36.0
CHANGES_PER_S = 8
MIN_SIDE_S = 8.0
# Chance that a change leaves a field it sets empty: low before the minute boundary, high
# after it, so that the whole run and its last minute burn at clearly different rates.
MESSY_BEFORE, MESSY_AFTER = 0.03, 0.3

# Every comparison of a burn rate is exact up to float rounding; see the test for why the
# extrapolation of increase() cancels out of the ratio.
REL = 1e-9
# increase() extrapolates its last sample to the end of the range: by at most 1.1 scrape
# intervals (1.1 s), over a sampled interval of more than the 36 s of traffic, so by < 3.1 %.
# It never extrapolates to the start, because every counter's first sample is 0.
EXTRAPOLATION = 1.05

OWNERS = ("ana", "bo", "chen", "dee")
REGIONS = ("NA", "EMEA", "APAC")

T = TypeVar("T")


def promtool(*args: str) -> None:
    done = subprocess.run(
        [services.require("promtool"), *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def alert_windows(catalog: SloCatalog, slo: str) -> set[str]:
    rules = catalog.by_name(slo).alert_rules
    return {format_duration(ms) for rule in rules for ms in (rule.long_ms, rule.short_ms)}


def test_recording_rules_follow_the_slo_file_and_promtool_accepts_them() -> None:
    promtool("check", "rules", str(RULES))
    promtool("check", "config", str(CONFIG))
    catalog = load_catalog(DEFAULT_SLOS)
    rules = [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]
    found: dict[tuple[str, str], Fraction] = {}
    for rule in rules:
        assert rule["record"] == RECORD
        labels, expr = rule["labels"], rule["expr"]
        assert labels["kind"] == "count"
        # One SLO and one range per rule, both those of its labels: a rule copied for another
        # window or SLO and only half edited shows up here.
        assert set(re.findall(r'slo="([^"]+)"', expr)) == {labels["slo"]}, expr
        assert set(re.findall(r"\[([^\]]+)\]", expr)) == {labels["window"]}, expr
        target = re.search(r"/ \(1 - ([0-9.]+)\)\s*$", expr)
        assert target is not None, expr
        key = (labels["slo"], labels["window"])
        assert key not in found, f"two rules for {key}"
        found[key] = Fraction(target.group(1))
    assert found == {
        (slo.name, window): slo.target
        for slo in catalog.slos
        for window in alert_windows(catalog, slo.name)
    }


# The live flow


def revleak_command() -> str:
    return str(Path(sys.executable).with_name("revleak"))


@dataclass
class Flow:
    process: subprocess.Popen[bytes]
    log: Path
    target: str  # host:port of /metrics

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def scrape(self) -> FlowMetrics:
        code = self.process.poll()
        assert code is None, f"the flow stopped ({code}):\n{self.tail()}"
        return scrape(f"http://{self.target}/metrics")


@contextlib.contextmanager
def live_flow(brokers: str, topics: tuple[str, str, str], workdir: Path) -> Iterator[Flow]:
    """``revleak run crm`` serving /metrics; stopped by SIGTERM, and it must exit 0."""
    changes, alerts, dlq = topics
    port = services.free_port()
    workdir.mkdir(parents=True)
    log = workdir / "flow.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                revleak_command(),
                "run",
                "crm",
                "--brokers",
                brokers,
                "--changes-topic",
                changes,
                "--alerts-topic",
                alerts,
                "--dlq-topic",
                dlq,
                "--slos",
                str(DEFAULT_SLOS),
                "--format",
                "generic",
                # Without this the watermark, and so every SLI event and gauge, would trail the
                # newest change by a minute and miss most of a 36 s run.
                "--allowed-lateness",
                LATENESS,
                "--idle-timeout-s",
                "1",
                "--metrics-port",
                str(port),
                "--metrics-host",
                "127.0.0.1",
            ],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    flow = Flow(process, log, f"127.0.0.1:{port}")
    try:
        yield flow
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise
    assert code == 0, f"the flow exited {code}:\n{flow.tail()}"


def eventually(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float) -> T:
    """The first value ``read`` gives that is ``done``, or its last one after the timeout
    (for the caller's assertion to report)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.HTTPError):
            value = read()
            if done(value) or time.monotonic() > deadline:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no answer within {timeout_s} s")
        time.sleep(0.25)


@dataclass(frozen=True)
class FlowMetrics:
    events: dict[tuple[str, str], float]  # (slo, outcome) → revleak_sli_events_total
    weights: dict[tuple[str, str], float]  # (slo, outcome) → revleak_sli_weight_usd_total
    burn: dict[tuple[str, str, str], float]  # (slo, kind, window) → revleak_slo_burn_rate


def scrape(url: str) -> FlowMetrics:
    response = httpx.get(url, timeout=2.0)
    response.raise_for_status()
    events: dict[tuple[str, str], float] = {}
    weights: dict[tuple[str, str], float] = {}
    burn: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "revleak_sli_events_total":
                events[(labels["slo"], labels["outcome"])] = sample.value
            elif sample.name == "revleak_sli_weight_usd_total":
                weights[(labels["slo"], labels["outcome"])] = sample.value
            elif sample.name == "revleak_slo_burn_rate":
                burn[(labels["slo"], labels["kind"], labels["window"])] = sample.value
    return FlowMetrics(events, weights, burn)


# Traffic


@dataclass(frozen=True)
class Traffic:
    lines: list[bytes]
    boundary_ms: int  # the minute boundary the run straddles
    started_s: float
    ended_s: float


def straddle_a_minute() -> int:
    """Wait, if needed, until a run of TRAFFIC_S starting now has a minute boundary at least
    MIN_SIDE_S from either end; the boundary in ms.

    A window that wrongly held only the current minute would then miss the first part of the
    run, which burns at another rate.
    """
    now = time.time()
    boundary = (math.floor(now / 60) + 1) * 60
    if boundary - now < MIN_SIDE_S:
        boundary += 60
    wait = boundary - now - (TRAFFIC_S - MIN_SIDE_S)
    if wait > 0:
        time.sleep(wait)
    return boundary * 1000


class ChangeMaker:
    """Generic JSON changes of leads and opportunities: creates, touches, owner and region
    changes, some of them leaving a field empty, and a few closing opportunities."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._open: list[tuple[str, str]] = []
        self._count = 0

    def _name_or_blank(self, choices: tuple[str, ...], messy: float) -> str:
        return "" if self._rng.random() < messy else self._rng.choice(choices)

    def change(self, ts_ms: int, messy: float) -> bytes:
        rng = self._rng
        self._count += 1
        at = format_timestamp(ts_ms)
        event: dict[str, Any] = {"event_id": f"e{self._count}", "ts": at}
        if not self._open or rng.random() < 0.55:
            obj = rng.choice(("lead", "opportunity"))
            record = f"{obj[0].upper()}{self._count}"
            fields: dict[str, Any] = {
                "owner": self._name_or_blank(OWNERS, messy),
                "region": self._name_or_blank(REGIONS, messy),
                "created_at": at,
                "value_usd": rng.randrange(1, 60) * 1000,
            }
            if obj == "opportunity":
                fields |= {"stage": "Qualified", "next_step": "send the proposal"}
            self._open.append((obj, record))
            event |= {"object": obj, "op": "create", "record_id": record, "fields": fields}
            return orjson.dumps(event)
        obj, record = rng.choice(self._open)
        fields = {"last_touch_at": at}
        if obj == "opportunity" and rng.random() < 0.05:
            fields["stage"] = "Closed Won"
            self._open.remove((obj, record))
        elif rng.random() < 0.5:
            field, choices = rng.choice((("owner", OWNERS), ("region", REGIONS)))
            fields[field] = self._name_or_blank(choices, messy)
        event |= {"object": obj, "op": "update", "record_id": record, "fields": fields}
        return orjson.dumps(event)


def produce_traffic(brokers: str, topic: str, boundary_ms: int) -> Traffic:
    """Changes stamped with the wall-clock time of their production, at a steady rate."""
    producer = kafka.producer(brokers)
    failures: list[Any] = []
    maker = ChangeMaker(seed=boundary_ms)
    lines: list[bytes] = []
    started = time.monotonic()
    started_s = time.time()
    last_ms = 0
    for index in range(int(TRAFFIC_S * CHANGES_PER_S)):
        time.sleep(max(0.0, started + index / CHANGES_PER_S - time.monotonic()))
        # The clock may step back; event times of one partition must not.
        last_ms = max(last_ms, int(time.time() * 1000))
        line = maker.change(last_ms, MESSY_BEFORE if last_ms < boundary_ms else MESSY_AFTER)
        producer.produce(
            topic, line, on_delivery=lambda error, _: failures.append(error) if error else None
        )
        producer.poll(0)
        lines.append(line)
    assert producer.flush(30) == 0
    assert not failures
    return Traffic(lines, boundary_ms, started_s, time.time())


@dataclass(frozen=True)
class Expected:
    good: int
    bad: int
    bad_usd: float
    last_minute_burn: float  # what a window of only the newest bucket would report

    def burn(self, target: Fraction) -> float:
        return float(Fraction(self.bad, self.good + self.bad) / (1 - target))


def expected_quality(lines: list[bytes], target: Fraction) -> Expected:
    """data_quality's SLI events that the flow has applied once the traffic is over: those
    before its watermark, the newest event time minus the allowed lateness."""
    newest = max(orjson.loads(line)["ts"] for line in lines)
    result = oracle_replay([line.decode() for line in lines], allowed_lateness_ms=LATENESS_MS)
    assert result.late_events == 0
    watermark = parse_timestamp(newest) - LATENESS_MS
    events = [e for e in result.sli_events if e[0] == SLO and e[1] < watermark]
    bad = [e for e in events if not e[2]]
    last_bucket = max(e[1] for e in events) // MINUTE_MS
    recent = [e for e in events if e[1] // MINUTE_MS == last_bucket]
    recent_bad = sum(1 for e in recent if not e[2])
    return Expected(
        good=len(events) - len(bad),
        bad=len(bad),
        bad_usd=sum(e[3] for e in bad),
        last_minute_burn=float(Fraction(recent_bad, len(recent)) / (1 - target)),
    )


# Prometheus


def scrape_config(target: str) -> str:
    """The repository's configuration, scraping the test's flow every second."""
    config = yaml.safe_load(CONFIG.read_text())
    config["global"] |= {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    (job,) = (job for job in config["scrape_configs"] if job["job_name"] == JOB)
    for override in ("scrape_interval", "scrape_timeout"):
        job.pop(override, None)
    assert job["static_configs"], "the revleak job scrapes nothing"
    job["static_configs"] = [{"targets": [target]}]
    assert "rules/revleak-burn.yml" in config["rule_files"]
    config["rule_files"] = ["rules/revleak-burn.yml"]  # the rules this test compares
    config.pop("alerting", None)  # nothing here pages
    return yaml.safe_dump(config, sort_keys=False)


def query(url: str, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5.0)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def value(url: str, promql: str) -> float | None:
    """The single sample of an instant query, None when there is none."""
    result = query(url, promql)
    assert len(result) <= 1, (promql, result)
    return float(result[0]["value"][1]) if result else None


def close(actual: float | None, expected: float) -> bool:
    return actual is not None and math.isclose(actual, expected, rel_tol=REL, abs_tol=1e-12)


def events_selector(slo: str, outcome: str | None = None) -> str:
    matchers = f'slo="{slo}"' + (f',outcome="{outcome}"' if outcome else "")
    return f"revleak_sli_events_total{{{matchers}}}"


def test_promql_over_the_counters_reproduces_the_flows_burn_rates(
    kafka_brokers: str, tmp_path: Path
) -> None:
    catalog = load_catalog(DEFAULT_SLOS)
    target = catalog.by_name(SLO).target
    slo = catalog.by_name(SLO)
    windows = sorted(alert_windows(catalog, SLO), key=parse_duration)
    suffix = uuid.uuid4().hex[:8]
    topics = (f"crm.changes.{suffix}", f"alerts.{suffix}", f"dlq.{suffix}")
    kafka.ensure_topics(kafka_brokers, dict.fromkeys(topics, 1))
    began = time.monotonic()

    with live_flow(kafka_brokers, topics, tmp_path / "flow") as flow:
        zero = eventually(flow.scrape, lambda m: bool(m.events), 30)
        assert zero.events[(SLO, "good")] == zero.events[(SLO, "bad")] == 0, flow.tail()

        folder = tmp_path / "prometheus"
        (folder / "rules").mkdir(parents=True)
        shutil.copy(RULES, folder / "rules" / RULES.name)
        config = scrape_config(flow.target)
        (folder / "prometheus.yml").write_text(config)
        promtool("check", "config", str(folder / "prometheus.yml"))

        with services.prometheus(folder, config) as prometheus:
            # Prometheus must hold a sample of every counter at 0 before the first change: then
            # increase() starts from 0 and does not extrapolate towards the start of its range.
            first = eventually(
                lambda: value(prometheus, f"sum({events_selector(SLO)})"),
                lambda v: v is not None,
                30,
            )
            assert first == 0
            ready = time.monotonic()

            boundary_ms = straddle_a_minute()
            waited = time.monotonic() - ready
            traffic = produce_traffic(kafka_brokers, topics[0], boundary_ms)
            expected = expected_quality(traffic.lines, target)
            burn = expected.burn(target)

            # The flow: counters as the oracle counts, and the same a moment later (nothing
            # counted twice on the way through the stages).
            def counted(m: FlowMetrics) -> bool:
                return (
                    m.events.get((SLO, "bad")) == expected.bad
                    and m.events.get((SLO, "good")) == expected.good
                )

            def quality_counts(m: FlowMetrics) -> str:
                good, bad = m.events.get((SLO, "good")), m.events.get((SLO, "bad"))
                return f"flow counted good={good} bad={bad}, expected {expected}"

            final = eventually(flow.scrape, counted, 30)
            settled = time.monotonic()
            settled_after_s = time.time() - traffic.ended_s
            assert counted(final), f"{quality_counts(final)}\n{flow.tail()}"
            time.sleep(2)
            final = flow.scrape()
            assert counted(final), quality_counts(final)
            assert math.isclose(final.weights[(SLO, "bad")], expected.bad_usd, rel_tol=REL)

            # Its gauges: every count window, the period included, holds the whole run.
            for window in [*windows, format_duration(slo.period_ms)]:
                assert close(final.burn[(SLO, "count", window)], burn), (window, final.burn)
            usd_5m = float(
                Fraction(expected.bad_usd)
                / catalog.budget_usd(slo)
                * Fraction(slo.period_ms, parse_duration("5m"))
            )
            assert close(final.burn[(SLO, "usd", "5m")], usd_5m), final.burn
            # The data can tell a window of the whole run from one of its last minute only.
            assert abs(expected.last_minute_burn - burn) > 0.2 * burn, expected

            # Prometheus: wait until it has scraped the final counters and gauge and evaluated
            # the rules over them, then compare.
            flow_5m = final.burn[(SLO, "count", "5m")]
            gauge_in_prometheus = f'revleak_slo_burn_rate{{slo="{SLO}",kind="count",window="5m"}}'
            recorded_5m = f'{RECORD}{{slo="{SLO}",kind="count",window="5m"}}'

            def caught_up(values: tuple[float | None, ...]) -> bool:
                total, gauge, recorded = values
                return (
                    total == expected.good + expected.bad
                    and close(gauge, flow_5m)
                    and close(recorded, flow_5m)
                )

            caught = eventually(
                lambda: (
                    value(prometheus, f"sum({events_selector(SLO)})"),
                    value(prometheus, gauge_in_prometheus),
                    value(prometheus, recorded_5m),
                ),
                caught_up,
                20,
            )
            assert caught_up(caught), (caught, flow_5m)
            compared = time.monotonic()

            # The raw counters at the last scrape: every event is inside every window.
            raw = value(
                prometheus,
                f"sum({events_selector(SLO, 'bad')}) / sum({events_selector(SLO)})"
                f" / (1 - {float(target)})",
            )
            assert close(raw, flow_5m), (raw, flow_5m)

            # increase() over windows that hold the whole run. Both counters come from one
            # target, so their samples share timestamps, and both start at 0: increase()
            # stretches good and bad by the same factor, which cancels out of bad / total.
            promql_burn: dict[str, float | None] = {}
            for window in ("5m", "1h"):
                bad = f"sum(increase({events_selector(SLO, 'bad')}[{window}]))"
                total = f"sum(increase({events_selector(SLO)}[{window}]))"
                promql_burn[window] = value(prometheus, f"{bad} / {total} / (1 - {float(target)})")
                assert close(promql_burn[window], final.burn[(SLO, "count", window)]), (
                    window,
                    promql_burn[window],
                    final.burn,
                )
                increased = value(prometheus, total)
                assert increased is not None
                events = expected.good + expected.bad
                assert events <= increased <= events * EXTRAPOLATION, (window, increased, events)

            # The recording rules, for every SLO and window, against the flow's gauges. The
            # other SLOs' bad events all wait for deadlines of 30 minutes or more, so they burn
            # at 0 here: lead_response and deal_velocity with good events (touches), through the
            # division, next_step_hygiene without any (opportunities have a next step), through
            # the rules' `or … * 0`.
            assert final.events[("lead_response", "good")] > 0
            assert final.events[("deal_velocity", "good")] > 0
            assert final.events[("next_step_hygiene", "good")] == 0
            recorded = {
                (s["metric"]["slo"], s["metric"]["window"]): float(s["value"][1])
                for s in query(prometheus, RECORD)
            }
            assert set(recorded) == {
                (each.name, window)
                for each in catalog.slos
                for window in alert_windows(catalog, each.name)
            }
            for (name, window), recorded_burn in sorted(recorded.items()):
                assert close(recorded_burn, final.burn[(name, "count", window)]), (
                    name,
                    window,
                    recorded_burn,
                    final.burn[(name, "count", window)],
                )

    print(
        f"\n{len(traffic.lines)} changes over {traffic.ended_s - traffic.started_s:.1f} s, "
        f"straddling {format_timestamp(traffic.boundary_ms)}; data_quality "
        f"good={expected.good} bad={expected.bad}: flow burn {flow_5m!r} (5m), PromQL increase "
        f"5m {promql_burn['5m']!r}, 1h {promql_burn['1h']!r}, raw counters {raw!r}, recorded "
        f"{caught[2]!r}, gauge in Prometheus {caught[1]!r}; a last-minute window would say "
        f"{expected.last_minute_burn!r}. Set-up {ready - began:.1f} s, waited {waited:.1f} s "
        f"for a minute to straddle, flow settled {settled_after_s:.1f} s after the last change, "
        f"Prometheus caught up {compared - settled:.1f} s later, total "
        f"{time.monotonic() - began:.1f} s"
    )
