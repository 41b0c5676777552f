"""Crash-recovery soak of the live CRM flow (``make soak``), and the driver its tests share.

Every run feeds the same CRM changes, at a steady pace, into a one-partition topic of
its own and runs ``revleak run crm`` over it with a recovery folder (SQLite snapshots
every ``SNAPSHOT_INTERVAL_S``) and paging on. The **baseline** runs uninterrupted; each
**trial** is SIGKILLed at seeded random moments while the changes flow and restarted
at once on the same recovery folder. Once the input is consumed and the pages have
settled, every trial must equal the baseline:

- the alert log topic, record for record (exactly once);
- the dead-letter topic's keys (dead letters are delivered at least once);
- what Alertmanager was told: for every page (its labels and ``startsAt``), the states
  it went through — fired, resolved — with repeats collapsed. A restored flow
  re-sends the pages it knows, which repeats a state and changes nothing; a page that
  never fired, or fired again after its resolve, would be a missing or a second
  notification;
- the alerts Alertmanager lists as active (labels, ``startsAt``, state). Its API hides
  resolved alerts, which is why the states above are recorded on the way in.

The baseline must also equal a file replay of the changes cut at the live watermark
(the newest event time − the allowed lateness). The pages of each run pass through a
:class:`PageRecorder`, which adds the run's name as a label so that all runs share one
Alertmanager.

``python -P -m revleak.loadtest.soak --trials 20 --kills 3`` starts its own Tansu broker
and Alertmanager; ``tests/live/test_recovery.py`` runs the same trials, fewer of them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer

from revleak.connectors import kafka
from revleak.connectors.alertmanager import ALERTS_PATH
from revleak.dataflows.live_sinks import AlertmanagerPages
from revleak.dataflows.replay import replay
from revleak.loadtest import crm_stream, services
from revleak.slo.loader import load_catalog
from revleak.timefmt import parse_timestamp

ALERTMANAGER_CONFIG = "route:\n  receiver: sink\nreceivers:\n  - name: sink\n"
RUN_LABEL = "soak_run"
ALLOWED_LATENESS_MS = 60_000
SNAPSHOT_INTERVAL_S = 0.5
# One partition: going idle never moves the watermark past anything, so only the
# end of the log waits for it.
IDLE_TIMEOUT_S = 1.0
RATE = 30.0  # changes per second: the story of 287 changes flows for ~10 s
PARALLEL = 6  # flows at once, the baseline's included
SOAK_TRIALS = 20
SOAK_KILLS = 3
# A complete live log stops growing; this long unchanged, it is taken as final.
LOG_QUIET_S = 2.0
LOG_TIMEOUT_S = 120.0
# The sender holds a resolve until its fire was accepted `min_firing_s` earlier, and a
# page's next state waits for the previous one: pages settle only that long after the
# last change Alertmanager was told.
MIN_FIRING_S = AlertmanagerPages("").min_firing_s
PAGES_QUIET_S = MIN_FIRING_S + 3.0
PAGES_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 30.0

Labels = tuple[tuple[str, str], ...]
PageId = tuple[Labels, str]  # labels, startsAt
ActiveAlert = tuple[Labels, str, str]  # labels, startsAt, state


# -- the changes ---------------------------------------------------------------------------


def story_lines() -> list[bytes]:
    """The Nakatomi story (287 changes): many pages, each firing at most three times."""
    text = (resources.files("revleak.data") / "nakatomi.jsonl").read_bytes()
    return [line for line in text.splitlines() if line.strip()]


def generated_lines(*, records: int, events: int, days: float, seed: int) -> list[bytes]:
    """A generated stream with out-of-order and late changes (dead letters).

    It starts in the past: the sender stamps a resolve that lies in the wall clock's
    future with the wall clock, which would differ from run to run.
    """
    return list(
        crm_stream.generate(
            records=records,
            events=events,
            days=days,
            seed=seed,
            out_of_order=0.03,
            late=0.01,
            start="2025-06-02T00:00:00Z",
        )
    )


def record_partition(line: bytes, partitions: int) -> int:
    """All changes of one record go to one partition, as a CRM producer keys them."""
    return zlib.crc32(json.loads(line)["record_id"].encode()) % partitions


def expected_log(lines: Sequence[bytes], folder: Path) -> list[dict[str, Any]]:
    """A file replay's alert log cut where a live run's watermark stops once idle."""
    folder.mkdir(parents=True, exist_ok=True)
    events, out = folder / "changes.jsonl", folder / "replay.alerts.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    replay(catalog=load_catalog(bundled_slos()), events=[events], alerts_out=out)
    watermark = max(parse_timestamp(json.loads(line)["ts"]) for line in lines)
    watermark -= ALLOWED_LATENESS_MS
    log = [json.loads(line) for line in out.read_bytes().splitlines()]
    return [alert for alert in log if parse_timestamp(alert["at"]) < watermark]


def bundled_slos() -> Path:
    return Path(str(resources.files("revleak.slos") / "crm.yaml"))


def feed(
    brokers: str,
    topics: Sequence[str],
    lines: Sequence[bytes],
    *,
    partitions: int = 1,
    rate: float | None = None,
) -> None:
    """Produce ``lines`` to every topic in step, ``rate`` a second (None: at once)."""
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
    failures: list[Any] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(error)

    start = time.monotonic()
    for index, line in enumerate(lines):
        if rate is not None:
            pause = start + index / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        partition = record_partition(line, partitions)
        for topic in topics:
            producer.produce(topic, line, partition=partition, on_delivery=delivered)
        producer.poll(0)
    if producer.flush(30.0) or failures:
        raise RuntimeError(f"changes not produced: {failures[:3]}")


# -- the flow ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Topics:
    changes: str
    alerts: str
    dlq: str

    @classmethod
    def fresh(cls, name: str) -> Topics:
        tag = f"{name}.{uuid.uuid4().hex[:8]}"
        return cls(f"crm.changes.{tag}", f"revleak.alerts.{tag}", f"revleak.dlq.{tag}")

    def create(self, brokers: str, partitions: int = 1) -> None:
        kafka.ensure_topics(brokers, {self.changes: partitions, self.alerts: 1, self.dlq: 1})


def revleak_command() -> str:
    """The installed console script next to this interpreter."""
    return str(Path(sys.executable).with_name("revleak"))


def live_args(
    brokers: str,
    topics: Topics,
    *,
    recovery_dir: Path | None = None,
    alertmanager_url: str | None = None,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    snapshot_interval_s: float = SNAPSHOT_INTERVAL_S,
) -> list[str]:
    args = [
        revleak_command(), "run", "crm",
        "--brokers", brokers,
        "--changes-topic", topics.changes,
        "--alerts-topic", topics.alerts,
        "--dlq-topic", topics.dlq,
        "--slos", str(bundled_slos()),
        "--idle-timeout-s", str(idle_timeout_s),
        "--snapshot-interval-s", str(snapshot_interval_s),
    ]  # fmt: skip
    if recovery_dir is not None:
        args += ["--recovery-dir", str(recovery_dir)]
    if alertmanager_url is not None:
        args += ["--alertmanager-url", alertmanager_url]
    return args


class LiveFlow:
    """``revleak run crm`` as a child process, started again after each kill.

    A process that ends without being told to (a crash, say on restore) is noted in
    ``crashes``, so that a restart after it cannot hide it.
    """

    def __init__(self, name: str, args: Sequence[str], folder: Path) -> None:
        self.name = name
        self._args = list(args)
        # Started outside the repository, whose root would shadow the installed layout.
        self._folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.crashes: list[int] = []

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"--- start {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            self._process = subprocess.Popen(
                self._args, cwd=self._folder, stdout=out, stderr=subprocess.STDOUT
            )

    def running(self) -> bool:
        """False once the process ended on its own (and then noted as a crash)."""
        process = self._process
        if process is None:
            return False
        code = process.poll()
        if code is None:
            return True
        self.crashes.append(code)
        self._process = None
        return False

    def kill(self) -> None:
        if not self.running():
            return
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(STOP_TIMEOUT_S)
        self._process = None
        self.kills += 1

    def terminate(self) -> None:
        """SIGTERM, as a deployment stops it; ``wait`` for the exit code."""
        if self.running():
            assert self._process is not None
            self._process.send_signal(signal.SIGTERM)

    def wait(self) -> int | None:
        """The exit code after ``terminate``, None if it had ended before; SIGKILL at
        the deadline."""
        process, self._process = self._process, None
        if process is None:
            return None
        try:
            return process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)
            return -signal.SIGKILL

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def stop_all(flows: Sequence[LiveFlow]) -> dict[str, int | None]:
    """Stop the flows together: a cluster process waits for its peers to stop."""
    for flow in flows:
        flow.terminate()
    return {flow.name: flow.wait() for flow in flows}


def read_log(brokers: str, topic: str) -> list[dict[str, Any]]:
    return [json.loads(message.value) for message in kafka.read_topic(brokers, topic)]


def dead_letters(brokers: str, topic: str) -> frozenset[tuple[int, int, str]]:
    """Partition, offset and reason of each dead letter, repeats dropped (each run
    reads a topic of its own, whose name the message key carries)."""
    records = (json.loads(message.value) for message in kafka.read_topic(brokers, topic))
    return frozenset((r["partition"], r["offset"], r["reason"]) for r in records)


def wait_for_logs(
    brokers: str,
    logs: Mapping[str, tuple[str, Sequence[LiveFlow]]],
    count: int,
    timeout_s: float = LOG_TIMEOUT_S,
) -> dict[str, list[dict[str, Any]]]:
    """Each alert log (name → topic and its flow's processes) once it holds ``count``
    records and has not changed for ``LOG_QUIET_S``; at the deadline, or once a process
    of the flow ended, as it is then."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, list[dict[str, Any]]] = {}
    since: dict[str, float] = {}
    done: dict[str, list[dict[str, Any]]] = {}
    while len(done) < len(logs) and time.monotonic() < deadline:
        for name, (topic, flows) in logs.items():
            if name in done:
                continue
            log = read_log(brokers, topic)
            now = time.monotonic()
            if log != seen.get(name):
                seen[name], since[name] = log, now
            quiet = now - since[name] >= LOG_QUIET_S
            if (len(log) >= count and quiet) or not all(flow.running() for flow in flows):
                done[name] = log
        time.sleep(0.3)
    return {name: done.get(name, seen.get(name, [])) for name in logs}


# -- pages ---------------------------------------------------------------------------------


class PageRecorder:
    """An HTTP front of Alertmanager that remembers each page's states as accepted.

    Posts are forwarded one at a time, so the order recorded is the order Alertmanager
    applied them in. Each alert gets the label ``soak_run=<run>``, which keeps the runs
    apart in a shared Alertmanager without changing how one run's alerts are keyed.
    """

    def __init__(self, alertmanager_url: str, run: str, journal: Path) -> None:
        self.run = run
        self._journal = journal
        self._target = alertmanager_url.rstrip("/") + ALERTS_PATH
        self._lock = threading.Lock()
        self._history: dict[PageId, list[str]] = {}
        self._firing: set[Labels] = set()  # label sets whose latest post was a fire
        self.last_change = time.monotonic()
        self._server = _Front(("127.0.0.1", 0), _Handler)
        self._server.recorder = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"pages-{run}", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def history(self) -> dict[PageId, tuple[str, ...]]:
        with self._lock:
            return {page: tuple(states) for page, states in self._history.items()}

    @property
    def firing(self) -> frozenset[Labels]:
        with self._lock:
            return frozenset(self._firing)

    def forward(self, path: str, body: bytes) -> tuple[int, bytes]:
        if path != ALERTS_PATH:
            return 404, b"not found"
        received_ms = int(time.time() * 1000)
        alerts: list[dict[str, Any]] = json.loads(body)
        tagged = [{**alert, "labels": {**alert["labels"], RUN_LABEL: self.run}} for alert in alerts]
        with self._lock:
            try:
                response = httpx.post(self._target, json=tagged, timeout=10.0)
            except httpx.HTTPError as error:
                return 502, str(error).encode()
            if response.is_success:
                with self._journal.open("a") as journal:
                    for alert in alerts:
                        state = self._record(alert, received_ms)
                        entry = {"received_ms": received_ms, "state": state, **alert}
                        journal.write(json.dumps(entry, sort_keys=True) + "\n")
            return response.status_code, response.content

    def _record(self, alert: dict[str, Any], received_ms: int) -> str:
        # A firing alert ends a margin after the sender's clock, a resolved one at the
        # latest then: what has already ended when it arrives is a resolve.
        # The time a resolve reports is the early evaluation's or the log's, whichever
        # reached the pager first, and a restart changes which lane is ahead: the state
        # sequence is compared, the resolve time only kept in the journal.
        ends_at = alert["endsAt"]
        state = "resolved" if parse_timestamp(ends_at) <= received_ms else "firing"
        labels: Labels = tuple(sorted(alert["labels"].items()))
        if state == "firing":
            self._firing.add(labels)
        else:
            self._firing.discard(labels)
        states = self._history.setdefault((labels, alert["startsAt"]), [])
        if not states or states[-1] != state:
            states.append(state)
            self.last_change = time.monotonic()
        return state

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


class _Front(ThreadingHTTPServer):
    daemon_threads = True
    recorder: PageRecorder


class _Handler(BaseHTTPRequestHandler):
    server: _Front

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status, answer = self.server.recorder.forward(self.path, body)
        # A flow killed while posting has gone: Alertmanager holds its alerts all the same.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the recorder's history says what was posted."""


def active_alerts(alertmanager_url: str, run: str) -> frozenset[ActiveAlert]:
    response = httpx.get(
        alertmanager_url.rstrip("/") + ALERTS_PATH,
        params={"filter": f'{RUN_LABEL}="{run}"'},
        timeout=10.0,
    )
    response.raise_for_status()
    return frozenset(
        (
            tuple(sorted((k, v) for k, v in alert["labels"].items() if k != RUN_LABEL)),
            alert["startsAt"],
            alert["status"]["state"],
        )
        for alert in response.json()
    )


def describe_page(page: PageId) -> str:
    labels = dict(page[0])
    return (
        f"{labels.get('slo')}/{labels.get('kind')}/{labels.get('severity')} "
        f"{labels.get('long_window')}/{labels.get('short_window')} from {page[1]}"
    )


# -- trials --------------------------------------------------------------------------------


@dataclass(slots=True)
class RunOutcome:
    """What one run left behind, and what went wrong on the way."""

    name: str
    kill_times: tuple[float, ...]  # seconds after the flows started, with the feed
    kills: int = 0
    seconds: float = 0.0
    log: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: frozenset[tuple[int, int, str]] = frozenset()
    pages: dict[PageId, tuple[str, ...]] = field(default_factory=dict)
    active: frozenset[ActiveAlert] = frozenset()
    problems: list[str] = field(default_factory=list)
    flow_log: Path | None = None


@dataclass(slots=True)
class SoakReport:
    expected_log: list[dict[str, Any]]
    baseline: RunOutcome
    trials: list[RunOutcome]

    def baseline_problems(self) -> list[str]:
        """What is wrong with the uninterrupted run itself."""
        problems = list(self.baseline.problems)
        if self.baseline.log != self.expected_log:
            problems.append(
                "alert log differs from the file replay cut at the watermark: "
                + log_difference(self.expected_log, self.baseline.log)
            )
        return problems

    def trial_problems(self, trial: RunOutcome) -> list[str]:
        """How a killed and restarted run differs from the uninterrupted one."""
        return [
            *trial.problems,
            *log_differences(self.baseline, trial),
            *page_differences(self.baseline, trial),
        ]

    @property
    def ok(self) -> bool:
        return not self.baseline_problems() and not any(map(self.trial_problems, self.trials))

    def summary(self) -> str:
        lines = [
            f"baseline: {len(self.baseline.log)} alert records, {len(self.baseline.pages)} "
            f"pages, {len(self.baseline.active)} active, "
            f"{len(self.baseline.dead_letters)} dead letters, {self.baseline.seconds:.0f} s",
            *(f"  {problem}" for problem in self.baseline_problems()),
        ]
        for trial in self.trials:
            problems = self.trial_problems(trial)
            times = ", ".join(f"{moment:.1f}" for moment in trial.kill_times) or "never"
            lines.append(
                f"{trial.name}: {trial.kills} SIGKILLs (at {times} s), {trial.seconds:.0f} s, "
                + ("FAILED" if problems else "same as the baseline")
            )
            lines.extend(f"  {problem}" for problem in problems)
            if problems and trial.flow_log is not None:
                lines.append(f"  flow log and pages posted: {trial.flow_log.parent}")
        return "\n".join(lines)


def log_difference(expected: list[dict[str, Any]], got: list[dict[str, Any]]) -> str:
    index = next(
        (i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b),
        min(len(expected), len(got)),
    )
    return (
        f"{len(got)} records instead of {len(expected)}; first difference at #{index}: "
        f"{got[index] if index < len(got) else 'nothing'} instead of "
        f"{expected[index] if index < len(expected) else 'nothing'}"
    )


def log_differences(baseline: RunOutcome, trial: RunOutcome) -> list[str]:
    """The alert log must be the same, the dead letters the same once repeats are dropped."""
    problems: list[str] = []
    if trial.log != baseline.log:
        problems.append("alert log: " + log_difference(baseline.log, trial.log))
    if trial.dead_letters != baseline.dead_letters:
        problems.append(
            f"dead letters: {len(trial.dead_letters - baseline.dead_letters)} more, "
            f"{len(baseline.dead_letters - trial.dead_letters)} missing"
        )
    return problems


def page_differences(baseline: RunOutcome, trial: RunOutcome) -> list[str]:
    """Every page told the same states, and Alertmanager left holding the same alerts."""
    problems: list[str] = []
    for page in sorted(baseline.pages.keys() | trial.pages.keys()):
        told, expected = trial.pages.get(page, ()), baseline.pages.get(page, ())
        if told != expected:
            problems.append(
                f"page {describe_page(page)}: Alertmanager was told {list(told)} "
                f"instead of {list(expected)}"
            )
    if trial.active != baseline.active:
        extra = sorted(trial.active - baseline.active)
        missing = sorted(baseline.active - trial.active)
        problems.append(f"active alerts: {extra} more, {missing} missing")
    return problems


@dataclass(slots=True)
class _Run:
    outcome: RunOutcome
    topics: Topics
    flow: LiveFlow
    recorder: PageRecorder


def recovery_soak(
    brokers: str,
    alertmanager_url: str,
    folder: Path,
    lines: Sequence[bytes],
    *,
    trials: int,
    kills: int,
    parallel: int = PARALLEL,
    rate: float = RATE,
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
) -> SoakReport:
    """The baseline and ``trials`` killed runs, ``parallel`` flows at a time."""
    feed_s = len(lines) / rate
    expected = expected_log(lines, folder / "replay")
    names = ["baseline", *(f"trial-{n}" for n in range(1, trials + 1))]
    outcomes: list[RunOutcome] = []
    for first in range(0, len(names), parallel):
        batch = []
        for name in names[first : first + parallel]:
            # Seeded per trial: a failing trial is rerun with the same kill moments.
            chance = random.Random(f"{seed}/{name}")
            moments = (
                ()
                if name == "baseline"
                else tuple(sorted(round(chance.uniform(0.0, feed_s), 2) for _ in range(kills)))
            )
            batch.append(RunOutcome(name, moments))
        outcomes += _run_batch(brokers, alertmanager_url, folder, lines, batch, rate, len(expected))
        if progress is not None:
            for outcome in outcomes[first:]:
                progress(f"{outcome.name} done in {outcome.seconds:.0f} s")
    return SoakReport(expected, outcomes[0], outcomes[1:])


def _run_batch(
    brokers: str,
    alertmanager_url: str,
    folder: Path,
    lines: Sequence[bytes],
    outcomes: list[RunOutcome],
    rate: float,
    count: int,
) -> list[RunOutcome]:
    runs: list[_Run] = []
    try:
        for outcome in outcomes:
            topics = Topics.fresh(outcome.name)
            topics.create(brokers)
            run_folder = folder / outcome.name
            run_folder.mkdir(parents=True, exist_ok=True)
            recorder = PageRecorder(
                alertmanager_url,
                f"{outcome.name}-{uuid.uuid4().hex[:6]}",
                run_folder / "pages.jsonl",
            )
            args = live_args(
                brokers,
                topics,
                recovery_dir=run_folder / "recovery",
                alertmanager_url=recorder.url,
            )
            flow = LiveFlow(outcome.name, args, run_folder)
            outcome.flow_log = flow.log
            runs.append(_Run(outcome, topics, flow, recorder))
        started = time.monotonic()
        for run in runs:
            run.flow.start()
        killers = [
            threading.Thread(target=_kill_at, args=(run, started), name=f"kill-{run.flow.name}")
            for run in runs
            if run.outcome.kill_times
        ]
        for killer in killers:
            killer.start()
        feed(brokers, [run.topics.changes for run in runs], lines, rate=rate)
        for killer in killers:
            killer.join()
        logs = wait_for_logs(
            brokers, {run.outcome.name: (run.topics.alerts, [run.flow]) for run in runs}, count
        )
        _wait_for_pages(runs)
        for run in runs:
            outcome = run.outcome
            outcome.log = logs[outcome.name]
            outcome.pages = run.recorder.history()
            outcome.active = active_alerts(alertmanager_url, run.recorder.run)
            outcome.kills = run.flow.kills
            outcome.seconds = time.monotonic() - started
            # Alertmanager keys alerts by labels alone: it must list as active exactly
            # the label sets whose latest post was a fire.
            held = {labels for labels, _, _ in outcome.active}
            if held != run.recorder.firing:
                outcome.problems.append(
                    f"Alertmanager lists {sorted(held ^ run.recorder.firing)} against its posts"
                )
    finally:
        codes = stop_all([run.flow for run in runs])
        for run in runs:
            code = codes[run.flow.name]
            if code not in (0, None):
                run.outcome.problems.append(f"stopped by SIGTERM with exit code {code}")
            run.outcome.problems += [
                f"the flow ended by itself with exit code {code}" for code in run.flow.crashes
            ]
            run.recorder.close()
    for run in runs:
        run.outcome.dead_letters = dead_letters(brokers, run.topics.dlq)
    return outcomes


def _kill_at(run: _Run, started: float) -> None:
    for moment in run.outcome.kill_times:
        time.sleep(max(0.0, started + moment - time.monotonic()))
        run.flow.kill()
        run.flow.start()


def _wait_for_pages(runs: Sequence[_Run]) -> None:
    """Until no run told Alertmanager anything new for ``PAGES_QUIET_S`` (bounded)."""
    deadline = time.monotonic() + PAGES_TIMEOUT_S
    while time.monotonic() < deadline:
        latest = max(run.recorder.last_change for run in runs)
        if time.monotonic() - latest >= PAGES_QUIET_S:
            return
        time.sleep(0.5)
    for run in runs:
        run.outcome.problems.append(f"pages still changing after {PAGES_TIMEOUT_S:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -P -m revleak.loadtest.soak",
        description="SIGKILL the live CRM flow at random moments; compare with a clean run.",
    )
    parser.add_argument("--trials", type=int, default=SOAK_TRIALS)
    parser.add_argument("--kills", type=int, default=SOAK_KILLS, help="SIGKILLs per trial")
    parser.add_argument("--parallel", type=int, default=PARALLEL, help="flows at once")
    parser.add_argument("--rate", type=float, default=RATE, help="changes per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--records",
        type=int,
        help="a generated stream instead of the story (its pages flap more: a batch of "
        "runs lasts ~15 s per fire of its busiest page)",
    )
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--folder", type=Path, help="keep flow logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    lines = (
        story_lines()
        if args.records is None
        else generated_lines(
            records=args.records, events=args.events, days=args.days, seed=args.seed
        )
    )
    with contextlib.ExitStack() as stack:
        folder = args.folder or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        brokers = stack.enter_context(services.tansu(folder / "tansu"))
        alertmanager_url = stack.enter_context(
            services.alertmanager(folder / "alertmanager", ALERTMANAGER_CONFIG)
        )
        started = time.monotonic()
        report = recovery_soak(
            brokers,
            alertmanager_url,
            folder,
            lines,
            trials=args.trials,
            kills=args.kills,
            parallel=args.parallel,
            rate=args.rate,
            seed=args.seed,
            progress=lambda text: print(text, file=sys.stderr, flush=True),
        )
        print(report.summary())
        print(
            f"{args.trials} trials × {args.kills} SIGKILLs over {len(lines)} changes in "
            f"{time.monotonic() - started:.0f} s: {'OK' if report.ok else 'FAILED'}"
        )
        if not report.ok and args.folder is None:
            kept = Path(tempfile.mkdtemp(prefix="revleak-soak-"))
            for run in [report.baseline, *report.trials]:
                if run.flow_log is not None:
                    shutil.copytree(run.flow_log.parent, kept / run.name, dirs_exist_ok=True)
            print(f"flow logs and pages posted kept in {kept}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
