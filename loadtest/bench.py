"""The benchmark harness: throughput and memory of the CRM flow, written to docs/BENCHMARKS.md.

``python -P -m revleak.loadtest.bench`` (what ``make bench`` runs; full sizes, a few
minutes on 2 cores) or ``... --quick`` (small sizes, ~30 s). Every measurement runs in
a fresh subprocess so that its peak RSS is its own:

a) end to end, 1 worker: a generated stream (:mod:`revleak.loadtest.crm_stream`) replayed
   with :func:`revleak.dataflows.replay.replay`; events/s = events ÷ replay seconds
   (generating the file is not counted), peak RSS, records open at the end;
b) the same file with 2 workers: events/s in total and per worker, and whether the alert
   log is byte-identical to the 1-worker one;
c) state per open record: one :class:`~revleak.crm.records.RecordShard` fed N creates and a
   touch each (then the same again with a :class:`~revleak.crm.domains.DomainIndex` fed
   the shard's quality checks); (RSS after − RSS before) ÷ N;
d) Kafka → flow → Alertmanager (:mod:`revleak.loadtest.kafka_bench`): the same stream
   replayed from a Kafka topic, and event → page latency of the live flow at steady rates;
e) the API (:mod:`revleak.loadtest.api_bench`): latency of fix-pack applies at a steady rate;
f) telemetry (:mod:`revleak.loadtest.telemetry_bench`): spans/s per worker through decode,
   SLIs and root-cause analysis, and the time to analyse a window of 100k spans;
g) head to head (:mod:`revleak.loadtest.head_to_head`): time to page of the flow's direct
   pages against Prometheus evaluating the exported rules, on the same traffic.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.metadata
import importlib.resources
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revleak.crm import domains, records
from revleak.crm.events import ChangeEvent, CrmObject, Op
from revleak.loadtest import (
    api_bench,
    crm_stream,
    head_to_head,
    kafka_bench,
    telemetry_bench,
)
from revleak.loadtest.figures import met, whole
from revleak.slo.loader import load_catalog

if TYPE_CHECKING:
    from revleak.dataflows.replay import KafkaInput

SHARDS = 8

# The targets each measurement is reported against.
TARGET_EVENTS_PER_SECOND = 100_000  # per worker, end to end
TARGET_BYTES_PER_RECORD = 300  # state per open record
TARGET_MILLION_RSS_MB = 500  # 1 M open records, one process

FULL = {"records": 200_000, "events": 300_000, "state_records": 1_000_000}
QUICK = {"records": 20_000, "events": 30_000, "state_records": 100_000}
CHILD_TIMEOUT_S = 1_200


@dataclass(frozen=True, slots=True)
class Sizes:
    records: int
    events: int
    days: float
    seed: int
    state_records: int


# -- measurements in the child process --------------------------------------------------------


def rss_bytes() -> int:
    """The current resident set size of this process."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def child_replay(
    source: Path | KafkaInput, alerts_out: Path, workers: int, catalog_path: str
) -> dict[str, Any]:
    """One replay of an events file, or of a Kafka topic (a ``KafkaInput``), summarised."""
    # Imported here, where it is needed: only a replay process loads Bytewax.
    from revleak.dataflows.replay import replay  # noqa: PLC0415

    catalog = load_catalog(catalog_path)
    report = replay(
        catalog=catalog,
        events=[source] if isinstance(source, Path) else [],
        kafka=None if isinstance(source, Path) else source,
        alerts_out=alerts_out,
        workers=workers,
        shards=SHARDS,
    )
    return {
        "workers": workers,
        "events": report.events,
        "accepted": report.accepted,
        "late": report.late,
        "dead_letters": report.dead_letters,
        "seconds": report.seconds,
        "open_records": report.open_records,
        "closed_records": report.closed_records,
        "shards": SHARDS,
        "timeline_entries": len(report.timeline),
        "peak_rss_kib": peak_rss_kib(),
    }


def state_events(
    count: int, *, seed: int, spacing_ms: int = 100, chunk: int = 2_000, first_index: int = 0
) -> Iterator[tuple[list[Any], int]]:
    """Chunks of (sorted ChangeEvents, watermark): ``count`` creates, each touched 5 min later.

    Records are created ``spacing_ms`` apart, ≈30 % opportunities, with the fields of
    :class:`~revleak.loadtest.crm_stream.RecordFactory`. Events are made lazily, a chunk
    at a time, so the inputs never pile up in memory.
    """
    rng = random.Random(seed)
    factory = crm_stream.RecordFactory(random.Random(seed + 1))
    t0 = crm_stream.parse_time("2026-03-02T00:00:00Z")
    touch_delay = 5 * crm_stream.MINUTE_MS
    touches: deque[tuple[int, CrmObject, str]] = deque()
    offset = 0
    for first in range(first_index, first_index + count, chunk):
        last = min(first_index + count, first + chunk)
        watermark = t0 + last * spacing_ms  # the next create's time; every event is before it
        timed: list[tuple[int, int, Any]] = []
        for index in range(first, last):
            opportunity = rng.random() < 0.3
            fields: dict[str, Any] = factory.fields(opportunity=opportunity)
            created = t0 + index * spacing_ms
            fields["created_at"] = created
            obj = CrmObject.OPPORTUNITY if opportunity else CrmObject.LEAD
            rid = crm_stream.record_id(index, opportunity=opportunity)
            timed.append((created, 0, (obj, Op.CREATE, rid, fields)))
            touches.append((created + touch_delay, obj, rid))
        while touches and touches[0][0] < watermark:
            ts, obj, rid = touches.popleft()
            timed.append((ts, 1, (obj, Op.UPDATE, rid, {"last_touch_at": ts})))
        if last == first_index + count:  # the end: touch the rest too
            while touches:
                ts, obj, rid = touches.popleft()
                timed.append((ts, 1, (obj, Op.UPDATE, rid, {"last_touch_at": ts})))
                watermark = max(watermark, ts + 1)
        timed.sort(key=lambda item: (item[0], item[1]))
        events = []
        for ts, _, (obj, op, rid, fields) in timed:
            offset += 1
            events.append(
                ChangeEvent(
                    event_id=f"ev-{offset}",
                    ts=ts,
                    object=obj,
                    op=op,
                    record_id=rid,
                    fields=fields,
                    partition=0,
                    offset=offset,
                )
            )
        del timed
        yield events, watermark


def _child_state(count: int, seed: int, with_domains: bool, catalog_path: str) -> dict[str, Any]:
    catalog = load_catalog(catalog_path)

    def feed(
        shard: records.RecordShard, index: domains.DomainIndex | None, chunks: Any
    ) -> tuple[int, int]:
        fed = watermark = 0
        for events, watermark in chunks:
            fed += len(events)
            output = shard.advance(events, watermark)
            if index is not None:
                requests = [
                    (check, half) for check in output.checks for _, half in domains.routes(check)
                ]
                index.advance(requests)
                del requests
            del events, output
        shard.advance([], watermark)  # drops the last output the shard keeps
        return fed, watermark

    # Warm up outside the measurement: the code paths' one-off allocations and the
    # allocator's room for one chunk of inputs and outputs (which a running flow also has).
    warm_up = 10_000
    feed(
        records.RecordShard(catalog),
        domains.DomainIndex() if with_domains else None,
        state_events(warm_up, seed=seed + 7, first_index=9_000_000),
    )
    gc.collect()
    shard = records.RecordShard(catalog)
    index = domains.DomainIndex() if with_domains else None
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    fed, _ = feed(shard, index, state_events(count, seed=seed))
    seconds = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    return {
        "records": count,
        "events": fed,
        "with_domains": with_domains,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_record": (after - before) / count if count else 0.0,
        "open_records": shard.open_records,
        "index_members": index.members if index is not None else 0,
        "seconds": seconds,
        "peak_rss_kib": max(peak_rss_kib(), after // 1024),
    }


# -- the parent ----------------------------------------------------------------------------


def _run_child(arguments: Sequence[str], scratch: Path, name: str) -> dict[str, Any]:
    result = scratch / f"{name}.json"
    command = [
        sys.executable,
        "-P",
        "-m",
        "revleak.loadtest.bench",
        *arguments,
        "--result",
        str(result),
    ]
    subprocess.run(command, check=True, timeout=CHILD_TIMEOUT_S, stdout=subprocess.DEVNULL)
    data: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
    return data


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return {
        "cpu": cpu,
        "cores": f"{usable}" if usable == cores else f"{usable} usable of {cores}",
        "memory": memory,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "bytewax": importlib.metadata.version("bytewax"),
        "os": f"{platform.system()} {platform.release()}",
    }


def run(
    sizes: Sizes,
    *,
    catalog: str,
    scratch: Path,
    kafka: kafka_bench.Plan | None = None,
    api: api_bench.Plan | None = None,
    telemetry: telemetry_bench.Plan | None = None,
    race: head_to_head.Plan | None = None,
) -> dict[str, Any]:
    events_file = scratch / "events.jsonl"
    _say(f"generating {sizes.events:,} events about {sizes.records:,} records")
    started = time.perf_counter()
    lines = crm_stream.write(
        events_file, records=sizes.records, events=sizes.events, days=sizes.days, seed=sizes.seed
    )
    generation = time.perf_counter() - started
    common = ["--catalog", catalog]
    replays: dict[int, dict[str, Any]] = {}
    alerts: dict[int, Path] = {}
    for workers in (1, 2):
        alerts[workers] = scratch / f"alerts-{workers}w.jsonl"
        _say(f"replaying with {workers} worker(s)")
        replays[workers] = _run_child(
            [
                "--child", "replay", "--events-file", str(events_file),
                "--alerts-out", str(alerts[workers]), "--workers", str(workers), *common,
            ],
            scratch,
            f"replay-{workers}",
        )  # fmt: skip
    identical = alerts[1].read_bytes() == alerts[2].read_bytes()
    states: dict[bool, dict[str, Any]] = {}
    for with_domains in (False, True):
        _say(
            f"state of {sizes.state_records:,} open records"
            + (" with the domain index" if with_domains else "")
        )
        states[with_domains] = _run_child(
            [
                "--child", "state", "--state-records", str(sizes.state_records),
                "--seed", str(sizes.seed), *(["--domains"] if with_domains else []), *common,
            ],
            scratch,
            f"state-{'domains' if with_domains else 'records'}",
        )  # fmt: skip
    optional: dict[str, Any] = {}
    if kafka is not None:
        optional["kafka"] = kafka_bench.run(
            scratch / "kafka",
            plan=kafka,
            catalog=catalog,
            events_file=events_file,
            file_replay=replays[1],
            file_alerts=alerts[1],
        )
    if api is not None:
        optional["api"] = api_bench.run(scratch / "api", plan=api)
    if telemetry is not None:
        _say("telemetry: generating the chaos shop's spans, then decoding and replaying them")
        folder = scratch / "telemetry"
        folder.mkdir(parents=True, exist_ok=True)
        optional["telemetry"] = telemetry_bench.run(folder, plan=telemetry)
    if race is not None:
        _say("head to head: the flow's pages against Prometheus' rules")
        folder = scratch / "head-to-head"
        folder.mkdir(parents=True, exist_ok=True)
        optional["race"] = head_to_head.run(folder, plan=race)
    return {
        **optional,
        "lines": lines,
        "file_bytes": events_file.stat().st_size,
        "generation_seconds": generation,
        "replays": replays,
        "alerts_identical": identical,
        "alert_lines": sum(1 for _ in alerts[1].open("rb")),
        "alerts_sha256": _sha256(alerts[1]),
        "states": states,
    }


def _ceil1(value: float) -> str:
    """One decimal, rounded up (memory is never reported smaller than measured)."""
    return f"{math.ceil(value * 10) / 10:,.1f}"


def _mib(byte_count: float) -> str:
    return _ceil1(byte_count / (1 << 20))


def render(results: dict[str, Any], sizes: Sizes, *, command: str) -> str:
    info = machine()
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    one, two = results["replays"][1], results["replays"][2]
    records_only, with_domains = results["states"][False], results["states"][True]
    rate1 = one["events"] / one["seconds"]
    rate2 = two["events"] / two["seconds"]
    r_state = records_only["bytes_per_record"]
    total = with_domains["bytes_per_record"]
    domain_state = total - r_state
    n_state = sizes.state_records
    million_rss = with_domains["rss_after"]
    million_peak = with_domains["peak_rss_kib"] * 1024
    million_label = "1 M" if n_state == 1_000_000 else f"{n_state:,}"
    scaled = n_state != 1_000_000
    # RSS of 1 M open records: measured when N is 1 M, else the process base plus N-scaled state.
    million_estimate = million_rss if not scaled else with_domains["rss_before"] + total * 1_000_000
    rows = [
        (
            "a) end to end, 1 worker: events/s",
            whole(rate1),
            f"≥ {TARGET_EVENTS_PER_SECOND:,} per worker",
            met(rate1 >= TARGET_EVENTS_PER_SECOND),
        ),
        ("a) replay time (s)", f"{one['seconds']:.2f}", "", ""),
        ("a) peak RSS (MiB)", _mib(one["peak_rss_kib"] * 1024), "", ""),
        ("a) open records at the end", f"{one['open_records']:,}", "", ""),
        (
            "b) 2 workers: events/s in total",
            whole(rate2),
            "",
            "",
        ),
        (
            "b) 2 workers: events/s per worker",
            whole(rate2 / 2),
            f"≥ {TARGET_EVENTS_PER_SECOND:,} per worker",
            met(rate2 / 2 >= TARGET_EVENTS_PER_SECOND),
        ),
        ("b) peak RSS (MiB)", _mib(two["peak_rss_kib"] * 1024), "", ""),
        (
            "b) alert log byte-identical to 1 worker",
            "yes" if results["alerts_identical"] else "**no**",
            "yes",
            met(results["alerts_identical"]),
        ),
        ("c) record state (RecordShard), B/open record", _ceil1(r_state), "", ""),
        ("c) domain index (DomainIndex), B/open record", _ceil1(domain_state), "", ""),
        (
            "c) total state, B/open record",
            _ceil1(total),
            f"≤ {TARGET_BYTES_PER_RECORD}",
            met(total <= TARGET_BYTES_PER_RECORD),
        ),
        (
            f"c) {million_label} open records, RSS of the process (MiB)",
            _mib(million_rss),
            "",
            "",
        ),
        (
            f"c) {million_label} open records, peak RSS while loading (MiB)",
            _mib(million_peak),
            "",
            "",
        ),
        (
            "c) 1 M open records RSS (MB = 10⁶ B)"
            + (" — extrapolated, see note" if scaled else ""),
            f"{_ceil1(million_estimate / 1e6)} ({_mib(million_estimate)} MiB)",
            f"< {TARGET_MILLION_RSS_MB} MB",
            met(million_estimate < TARGET_MILLION_RSS_MB * 1_000_000)
            + (
                f" (met if the target meant {TARGET_MILLION_RSS_MB} MiB)"
                if TARGET_MILLION_RSS_MB * 1_000_000
                <= million_estimate
                < TARGET_MILLION_RSS_MB * (1 << 20)
                else ""
            ),
        ),
    ]
    table = ["| measurement | result | target | met |", "|---|---:|---|---|"]
    table += [f"| {name} | {value} | {target} | {met} |" for name, value, target, met in rows]

    def replay_line(run: dict[str, Any]) -> str:
        return (
            f"{run['events']:,} events ({run['accepted']:,} accepted, {run['late']:,} late, "
            f"{run['dead_letters']:,} dead letters) in {run['seconds']:.2f} s; "
            f"{run['open_records']:,} records open and {run['closed_records']:,} closed at the end "
            f"over {run['shards']} shards; {run['timeline_entries']:,} timeline entries"
        )

    def state_line(run: dict[str, Any]) -> str:
        return (
            f"{run['events']:,} events into {run['open_records']:,} open records"
            + (f" ({run['index_members']:,} in the domain index)" if run["with_domains"] else "")
            + f" in {run['seconds']:.1f} s; RSS {_mib(run['rss_before'])} → "
            f"{_mib(run['rss_after'])} MiB, peak {_mib(run['peak_rss_kib'] * 1024)} MiB"
        )

    note = (
        "\n*Quick run (`--quick`): sizes are small and the 1 M figure is extrapolated as the "
        "process's RSS before loading plus 1 M × the measured bytes per record.*\n"
        if scaled
        else ""
    )
    return "\n".join(
        [
            "# Benchmarks",
            "",
            "Written by `revleak.loadtest.bench` (run `make bench` to refresh it); every "
            "measurement runs in its own fresh process.",
            "",
            "## Machine",
            "",
            f"- CPU: {info['cpu']}, {info['cores']} cores",
            f"- RAM: {info['memory']}",
            f"- OS: {info['os']}",
            f"- Python {info['python']}, Bytewax {info['bytewax']}",
            f"- Date (UTC): {today}",
            "",
            "## Command",
            "",
            "```sh",
            command,
            "```",
            "",
            f"Stream: {results['lines']:,} generic-JSON change events about "
            f"{sizes.records:,} records over {sizes.days:g} days (seed {sizes.seed}; "
            f"`revleak.loadtest.crm_stream`, 1 % out of order within the 60 s lateness), "
            f"{_mib(results['file_bytes'])} MiB, generated in "
            f"{results['generation_seconds']:.1f} s (not counted). Catalog: `slos/crm.yaml`, "
            f"8 record shards, batches of 2,000 lines. State: {n_state:,} records created and "
            f"touched 5 minutes later, fed straight into one `RecordShard` (and one "
            f"`DomainIndex`).",
            "",
            "## Results",
            "",
            *table,
            note,
            "Targets: ≥ 100,000 events/s per worker end to end; ≤ 300 B of state "
            "per open record; 1 M open records under 500 MB RSS. Events/s are rounded down, "
            "memory is rounded up; MiB = 2²⁰ bytes, the 500 MB target is 500 × 10⁶ bytes.",
            "",
            "### Details",
            "",
            f"- 1 worker: {replay_line(one)}.",
            f"- 2 workers: {replay_line(two)}.",
            f"- Alert log: {results['alert_lines']:,} transitions, sha256 "
            f"`{results['alerts_sha256'][:16]}…` "
            + (
                "(identical with 2 workers)."
                if results["alerts_identical"]
                else "(2 workers: differs)."
            ),
            f"- Record state only: {state_line(records_only)}.",
            f"- With the domain index: {state_line(with_domains)}.",
            "- End to end: events/s = events ÷ the replay's own seconds (flow build to end of "
            "input, all deadlines fired); peak RSS is `ru_maxrss` of the replay process. "
            "State: (RSS after − RSS before) ÷ records, after `gc.collect()`, with the inputs "
            "already freed; the domain-index figure is the difference between the two runs.",
            "",
            *(kafka_bench.render_section(results["kafka"]) if "kafka" in results else []),
            *(api_bench.render_section(results["api"]) if "api" in results else []),
            *(
                telemetry_bench.render_section(results["telemetry"])
                if "telemetry" in results
                else []
            ),
            *(head_to_head.render_section(results["race"]) if "race" in results else []),
            "## What bounds it",
            "",
            "Where the time and the memory go on this workload, measured with py-spy, and "
            "what would move the numbers: [performance.md](performance.md).",
            "",
        ]
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -P -m revleak.loadtest.bench",
        description="Benchmark the CRM flow and write docs/BENCHMARKS.md.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (~30 s)")
    parser.add_argument("--records", type=int, help="records in the stream (200,000)")
    parser.add_argument("--events", type=int, help="events in the stream (300,000)")
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--state-records", type=int, help="open records for state (1,000,000)")
    parser.add_argument("--output", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument("--catalog", help="SLO file (default: the bundled slos/crm.yaml)")
    parser.add_argument("--workdir", type=Path, help="keep the stream and alert logs here")
    parser.add_argument(
        "--no-kafka", action="store_true", help="skip Kafka → flow → Alertmanager (d)"
    )
    parser.add_argument("--no-api", action="store_true", help="skip the API's applies (e)")
    parser.add_argument(
        "--no-telemetry", action="store_true", help="skip the telemetry flow and analysis (f)"
    )
    parser.add_argument(
        "--no-head-to-head", action="store_true", help="skip direct pages vs Prometheus (g)"
    )
    # Internal: one measurement in this (fresh) process.
    parser.add_argument("--child", choices=["replay", "state"], help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--events-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--alerts-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--domains", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    catalog = args.catalog or str(importlib.resources.files("revleak.slos").joinpath("crm.yaml"))
    defaults = QUICK if args.quick else FULL
    sizes = Sizes(
        records=args.records or defaults["records"],
        events=args.events or defaults["events"],
        days=args.days,
        seed=args.seed,
        state_records=args.state_records or defaults["state_records"],
    )

    if args.child is not None:
        if args.result is None:
            parser.error("--child needs --result")
        if args.child == "replay":
            if args.events_file is None or args.alerts_out is None:
                parser.error("--child replay needs --events-file and --alerts-out")
            data = child_replay(args.events_file, args.alerts_out, args.workers, catalog)
        else:
            data = _child_state(sizes.state_records, sizes.seed, args.domains, catalog)
        args.result.write_text(json.dumps(data), encoding="utf-8")
        return 0

    command = "python -P -m revleak.loadtest.bench" + "".join(
        f" {arg}" for arg in (argv if argv is not None else sys.argv[1:])
    )
    started = time.perf_counter()
    kafka = None if args.no_kafka else kafka_bench.QUICK if args.quick else kafka_bench.FULL
    api = None if args.no_api else api_bench.QUICK if args.quick else api_bench.FULL
    telemetry = (
        None
        if args.no_telemetry
        else telemetry_bench.QUICK
        if args.quick
        else telemetry_bench.FULL
    )
    race = None if args.no_head_to_head else head_to_head.FULL
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        results = run(
            sizes, catalog=catalog, scratch=args.workdir, kafka=kafka, api=api,
            telemetry=telemetry, race=race,
        )  # fmt: skip
    else:
        with tempfile.TemporaryDirectory(prefix="revleak-bench-") as scratch:
            results = run(
                sizes, catalog=catalog, scratch=Path(scratch), kafka=kafka, api=api,
                telemetry=telemetry, race=race,
            )  # fmt: skip
    text = render(results, sizes, command=command)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    _say(f"done in {time.perf_counter() - started:.0f} s; wrote {args.output}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
