"""The Grafana dashboards: the committed JSON is what grafana/build.py writes and is sound,
and every panel's query runs on a real Prometheus that scrapes both live flows and the API
while a CRM story and a chaos run go through Kafka, and every one of them shows data; the
same Prometheus is drawn into PNGs by grafana/render.py.

The replay is stamped with the wall clock, so that Prometheus' rate() windows, which slide
over wall time, hold what the flows counted.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import orjson
import pytest
import yaml
from harness import ROOT

from revleak.connectors import kafka
from revleak.loadtest import services
from revleak.loadtest.chaos import SCENARIOS, ChaosRun, seed_repository
from revleak.loadtest.chaos_kafka import produce
from revleak.timefmt import MINUTE_MS, format_timestamp, parse_timestamp

GRAFANA = ROOT / "grafana"
DOCS = ROOT / "docs" / "dashboards.md"
PROVISIONING = GRAFANA / "provisioning"
Json = dict[str, Any]


def _load(name: str) -> ModuleType:
    """A script of grafana/ as a module (grafana/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"grafana_{name}", GRAFANA / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


build = _load("build")
render = _load("render")


def boards() -> dict[str, Json]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((GRAFANA / "dashboards").glob("*.json"))
    }


def provisioned_datasource() -> Json:
    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())
    (source,) = config["datasources"]
    assert isinstance(source, dict)
    return source


# Structure


def test_committed_dashboards_are_what_the_builder_writes() -> None:
    built = build.dashboards()
    assert set(boards()) == set(built), "run `python -P grafana/build.py`"
    for name, board in built.items():
        committed = (GRAFANA / "dashboards" / name).read_text(encoding="utf-8")
        assert committed == build.serialise(board), f"{name} is stale: run grafana/build.py"


def _cells(grid: Mapping[str, int]) -> set[tuple[int, int]]:
    return {
        (x, y)
        for x in range(grid["x"], grid["x"] + grid["w"])
        for y in range(grid["y"], grid["y"] + grid["h"])
    }


def _check_panel(panel: Json, uid: str, variables: set[str]) -> None:
    where = f"{uid} / {panel.get('title')!r}"
    assert panel["type"] in render.DRAW, where
    assert panel["datasource"]["uid"] == uid, where
    targets = panel["targets"]
    assert targets, where
    assert len({t["refId"] for t in targets}) == len(targets), where
    for target in targets:
        assert target["datasource"]["uid"] == uid, where
        assert target["expr"].strip(), where
        unknown = render.used_variables(target["expr"]) - variables
        assert not unknown, f"{where} uses undefined {unknown}"


def test_every_dashboard_is_well_formed() -> None:
    uid = provisioned_datasource()["uid"]
    builtins = {"__rate_interval", "__interval", "__range"}
    seen_uids: set[str] = set()
    for name, board in boards().items():
        assert board["schemaVersion"] >= 39, name
        assert board["title"], name
        assert board["uid"] not in seen_uids, name
        seen_uids.add(board["uid"])
        variables = builtins | {v["name"] for v in board["templating"]["list"]}
        for template in board["templating"]["list"]:
            assert template["datasource"]["uid"] == uid, name
            render.label_values_query(template)
        for annotation in board["annotations"]["list"]:
            assert annotation["datasource"]["uid"] == uid, name
            assert not render.used_variables(annotation["expr"]) - variables, name
        assert len({p["id"] for p in board["panels"]}) == len(board["panels"]), name
        taken: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            _check_panel(panel, uid, variables)
            grid = panel["gridPos"]
            assert all(isinstance(grid[k], int) for k in "xywh"), (name, panel["title"])
            assert min(grid["x"], grid["y"]) >= 0, grid
            assert min(grid["w"], grid["h"]) > 0, grid
            assert grid["x"] + grid["w"] <= 24, grid
            cells = _cells(grid)
            assert not cells & taken, f"{name}: {panel['title']!r} overlaps another panel"
            taken |= cells


def test_provisioning_points_grafana_at_prometheus_and_the_dashboards() -> None:
    source = provisioned_datasource()
    assert (source["uid"], source["type"], source["url"]) == (
        "prometheus",
        "prometheus",
        "http://prometheus:9090",
    )
    config = yaml.safe_load((PROVISIONING / "dashboards" / "revleak.yaml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_documentation_shows_every_dashboard_panel_and_query() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for board in boards().values():
        assert board["title"] in text, board["title"]
        picture = f"dashboards/{board['uid']}.png"
        assert picture in text, picture
        assert (ROOT / "docs" / picture).is_file(), picture
        for panel in board["panels"]:
            assert f"**{panel['title']}**" in text, (board["title"], panel["title"])
            for target in panel["targets"]:
                assert f"`{target['expr']}`" in text, (panel["title"], target["expr"])


# The live stack

JOURNEYS_PER_MINUTE = 60
BASELINE_MINUTES = 10
FAST_MINUTES = 13  # healthy baseline, then the fault, as fast as Kafka takes them
PACED_MINUTES = 3  # then a minute every PACE_S: counters rise across many scrapes
PACE_S = 2.5
BURST_S = 8.0  # CRM changes stamped with the wall clock, for this long
CHANGES_PER_S = 10
UNASSIGNED = 0.3  # share of burst leads without an owner: data_quality pages
WAIT_S = 60.0
# Soon after the replay stops its partitions count as idle and the watermark catches up.
IDLE_TIMEOUT_S = "1"
OPERATOR_TOKEN = "grafana-operator-token-0123456789"
# Each template variable takes these values in turn; one CRM and one telemetry SLO.
VALUES = {"slo": ("data_quality", "availability"), "service": ("checkout",)}
INSTANT = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}


@dataclass(frozen=True)
class Replayed:
    prometheus: str
    started_s: float  # wall time the paced part of the replay began


def prometheus_config(targets: Mapping[str, str]) -> str:
    """Every revleak process scraped each second, one job each (job → host:port)."""
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


class Processes:
    """revleak subprocesses, stopped together: each flow takes seconds to wind down."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str], **env: str) -> None:
        with (self._folder / f"{name}.log").open("wb") as log:
            self._running.append(
                subprocess.Popen(
                    [str(Path(sys.executable).with_name("revleak")), *args],
                    cwd=self._folder,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **env},
                )
            )

    def stop(self) -> None:
        for process in self._running:
            process.terminate()
        for process in self._running:
            services.stop(process)


def story_lines(end_ms: int) -> list[bytes]:
    """The Nakatomi story (data/nakatomi.jsonl) moved to end at ``end_ms``, whole minutes."""
    lines = (ROOT / "data" / "nakatomi.jsonl").read_bytes().splitlines()
    events = [orjson.loads(line) for line in lines if line.strip()]
    last = max(parse_timestamp(event["ts"]) for event in events)
    shift = (end_ms - last) // MINUTE_MS * MINUTE_MS

    def moved(stamp: str) -> str:
        return format_timestamp(parse_timestamp(stamp) + shift)

    for event in events:
        event["ts"] = moved(event["ts"])
        fields = event.get("fields") or {}
        for name in ("created_at", "last_touch_at"):
            if fields.get(name):
                fields[name] = moved(fields[name])
    return [orjson.dumps(event) for event in events]


def burst_change(rng: random.Random, number: int, ts_ms: int, leads: list[str]) -> bytes:
    """A new lead (some without an owner), or a touch of an earlier one."""
    at = format_timestamp(ts_ms)
    event: Json = {"event_id": f"burst-{number}", "ts": at, "object": "lead"}
    if leads and rng.random() < 0.4:
        fields: Json = {"last_touch_at": at}
        event |= {"op": "update", "record_id": rng.choice(leads), "fields": fields}
    else:
        record = f"L-BURST-{number}"
        leads.append(record)
        owner = "" if rng.random() < UNASSIGNED else rng.choice(("ana", "bo", "chen"))
        fields = {"owner": owner, "region": "EMEA", "created_at": at, "value_usd": 2_000}
        event |= {"op": "create", "record_id": record, "fields": fields}
    return orjson.dumps(event)


def late_change(ts_ms: int) -> bytes:
    an_hour_ago = format_timestamp(ts_ms - 60 * MINUTE_MS)
    return orjson.dumps(
        {"event_id": "late", "ts": an_hour_ago, "object": "lead", "op": "update",
         "record_id": "L-BURST-0", "fields": {"last_touch_at": an_hour_ago}}
    )  # fmt: skip


def feed_burst(brokers: str, topic: str) -> None:
    """Changes stamped with the wall clock at a steady pace, with one malformed line and one
    change an hour late among them."""
    producer = kafka.producer(brokers)
    rng = random.Random(7)
    leads: list[str] = []
    began = time.monotonic()
    count = int(BURST_S * CHANGES_PER_S)
    last_ms = 0
    for number in range(count):
        time.sleep(max(0.0, began + number / CHANGES_PER_S - time.monotonic()))
        last_ms = max(last_ms, int(time.time() * 1000))  # the clock may step back
        producer.produce(topic, burst_change(rng, number, last_ms, leads))
        if number == count // 2:
            producer.produce(topic, b"{not json")
            producer.produce(topic, late_change(last_ms))
        producer.poll(0)
    assert producer.flush(30) == 0


def produce_lines(brokers: str, topic: str, lines: list[bytes]) -> None:
    producer = kafka.producer(brokers)
    for line in lines:
        producer.produce(topic, line)
    assert producer.flush(30) == 0


@dataclass(frozen=True)
class Shop:
    """The chaos shop's `errors` scenario on its topics, ending a few minutes past now."""

    run: ChaosRun
    brokers: str
    topics: Mapping[str, str]

    def send(self, minutes: int, speed: float | None = None) -> None:
        produce(self.run, minutes, brokers=self.brokers, spans_topic=self.topics["spans"],
                metrics_topic=self.topics["metrics"], speed=speed)  # fmt: skip

    def history(self) -> None:
        self.send(FAST_MINUTES)
        produce_lines(self.brokers, self.topics["spans"], [b"not OTLP at all"])

    def paced(self) -> None:
        self.send(PACED_MINUTES, 1 / PACE_S)


def in_parallel(*jobs: Callable[[], None]) -> None:
    failures: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as error:  # re-raised below, in the test's thread
            failures.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def instant(prometheus: str, expr: str) -> list[Json]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200, (expr, body)
    assert body["status"] == "success", (expr, body)
    result: list[Json] = body["data"]["result"]
    return result


def wait_for(prometheus: str, expr: str, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not instant(prometheus, expr):
        assert time.monotonic() < deadline, f"no {what} after {WAIT_S:.0f} s ({expr})"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def replayed(kafka_brokers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    """Alertmanager notifying the API, both flows paging it, a Prometheus scraping all three:
    the story and the chaos shop's history go in while they start, the paced part once
    Prometheus scrapes them all."""
    folder = tmp_path_factory.mktemp("grafana")
    run = uuid.uuid4().hex[:8]
    names = ("changes", "alerts", "dlq", "spans", "metrics", "telemetry-alerts",
             "telemetry-dlq", "causes")  # fmt: skip
    topics = {name: f"grafana-{name}-{run}" for name in names}
    kafka.ensure_topics(kafka_brokers, dict.fromkeys(topics.values(), 1))
    now_ms = int(time.time() * 1000)
    repository = folder / "deploy.git"
    seed_repository(repository, at_ms=now_ms - 60 * MINUTE_MS)
    start_ms = (now_ms // MINUTE_MS - FAST_MINUTES) * MINUTE_MS
    shop = Shop(ChaosRun(SCENARIOS["errors"], repository, seed=5, start_ms=start_ms,
                         baseline_minutes=BASELINE_MINUTES,
                         journeys_per_minute=JOURNEYS_PER_MINUTE),
                kafka_brokers, topics)  # fmt: skip
    ports = {job: services.free_port() for job in ("crm", "telemetry", "api")}
    api = f"http://127.0.0.1:{ports['api']}"
    common = ["--brokers", kafka_brokers, "--idle-timeout-s", IDLE_TIMEOUT_S,
              "--resend-interval-s", "1",
              "--metrics-host", "127.0.0.1"]  # fmt: skip
    processes = Processes(folder)
    with contextlib.ExitStack() as stack:
        alertmanager = stack.enter_context(
            services.alertmanager(
                folder / "alertmanager", services.webhook_config(api, OPERATOR_TOKEN)
            )
        )
        stack.callback(processes.stop)
        processes.start(
            "api",
            ["api", "--port", str(ports["api"])],
            REVLEAK_DATABASE_URL=f"sqlite:///{folder / 'revleak.db'}",
            REVLEAK_API_TOKENS=json.dumps(
                {OPERATOR_TOKEN: {"actor": "alertmanager", "role": "operator"}}
            ),
        )
        processes.start("crm", ["run", "crm", *common, "--changes-topic", topics["changes"],
                                "--alerts-topic", topics["alerts"], "--dlq-topic", topics["dlq"],
                                "--format", "generic", "--allowed-lateness", "1s",
                                "--alertmanager-url", alertmanager,
                                "--metrics-port", str(ports["crm"])])  # fmt: skip
        processes.start("telemetry", ["run", "telemetry", *common,
                                      "--spans-topic", topics["spans"],
                                      "--metrics-topic", topics["metrics"],
                                      "--alerts-topic", topics["telemetry-alerts"],
                                      "--dlq-topic", topics["telemetry-dlq"],
                                      "--root-causes-topic", topics["causes"],
                                      "--alertmanager-url", alertmanager,
                                      "--metrics-port", str(ports["telemetry"])])  # fmt: skip
        targets = {f"revleak-{job}": f"127.0.0.1:{port}" for job, port in ports.items()}
        prometheus = stack.enter_context(
            services.prometheus(folder / "prometheus", prometheus_config(targets))
        )
        in_parallel(
            lambda: produce_lines(
                kafka_brokers, topics["changes"], story_lines(now_ms - MINUTE_MS)
            ),
            shop.history,
            lambda: wait_for(prometheus, f"count(up == 1) == {len(targets)}", "target up"),
        )
        started_s = time.time()
        in_parallel(lambda: feed_burst(kafka_brokers, topics["changes"]), shop.paced)
        for expr, what in (
            ("revleak_root_causes_total", "root cause"),
            ('revleak_api_changes_total{type="incident"}', "incident in the API"),
            ("sum by (job) (revleak_event_to_page_seconds_count) > 0", "page delivered"),
        ):
            wait_for(prometheus, expr, what)
        yield Replayed(prometheus, started_s)


@dataclass(frozen=True)
class PanelQuery:
    board: str
    panel: str
    expr: str  # expanded

    def has_data(self, result: list[Json]) -> bool:
        return any(math.isfinite(float(item["value"][1])) for item in result)


def panel_queries(board: Json) -> Iterator[PanelQuery]:
    """Every target of every panel, once for each combination of variable values."""
    names = [template["name"] for template in board["templating"]["list"]]
    for combination in itertools.product(*(VALUES[name] for name in names)):
        variables = {**INSTANT, **dict(zip(names, combination, strict=True))}
        for panel in board["panels"]:
            for target in panel["targets"]:
                expr = render.expand(target["expr"], variables)
                yield PanelQuery(board["uid"], panel["title"], expr)
        for annotation in board["annotations"]["list"]:
            yield PanelQuery(board["uid"], annotation["name"], render.expand(
                annotation["expr"], variables))  # fmt: skip


@pytest.mark.services
@pytest.mark.slow
def test_every_panel_query_runs_and_shows_the_replay(replayed: Replayed) -> None:
    for board in boards().values():
        for template in board["templating"]["list"]:
            metric, label = render.label_values_query(template)
            response = httpx.get(f"{replayed.prometheus}/api/v1/label/{label}/values",
                                 params={"match[]": metric}, timeout=10)  # fmt: skip
            offered = set(response.json()["data"])
            assert set(VALUES[template["name"]]) <= offered, (template["name"], offered)
    queries = [query for board in boards().values() for query in panel_queries(board)]
    # Each expression must parse and run; the slowest to appear (a rate over the replay's
    # last minute) get a few seconds more.
    empty = [q for q in queries if not q.has_data(instant(replayed.prometheus, q.expr))]
    deadline = time.monotonic() + 15
    while empty and time.monotonic() < deadline:
        time.sleep(1)
        empty = [q for q in empty if not q.has_data(instant(replayed.prometheus, q.expr))]
    assert not empty, "\n".join(f"{q.board} / {q.panel}: {q.expr}" for q in empty)
    print(f"\n{len(queries)} queries, replay began {time.time() - replayed.started_s:.0f} s ago")


@pytest.mark.services
@pytest.mark.slow
def test_render_draws_every_dashboard_from_prometheus(replayed: Replayed, tmp_path: Path) -> None:
    window = render.TimeRange(replayed.started_s - 60, time.time())
    drawn = render.render_all(replayed.prometheus, tmp_path, window, {"slo": "data_quality"})
    assert sorted(path.name for path in drawn) == sorted(
        f"{board['uid']}.png" for board in boards().values()
    )
    for path in drawn:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 20_000
