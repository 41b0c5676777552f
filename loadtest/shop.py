"""A simulated shop — cart, checkout, payment, inventory — instrumented with the OpenTelemetry SDK.

The shop runs on a virtual clock: :meth:`Shop.minute` simulates the next minute of user
journeys and resource metrics and returns them as OTLP requests, exactly as the SDK's
exporters would send them. Nothing reads the wall clock or the global ``random``, so a seed
and a start time give the same bytes every time.

What runs is whatever the shop's GitOps repository says (services/<name>.yaml, flags.yaml;
see docs/chaos.md), read again at the start of every minute, as a deployment controller
would. Faults belong to releases and flags, not to the simulator: payment 2.5.0 is slow,
inventory 3.1.0 leaks memory, the new_reservation flag breaks reservations and the
checkout_redesign flag puts users off checking out. A commit that rolls the version back,
raises the limit or switches the flag off therefore really ends the fault.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
import subprocess
import uuid
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import yaml
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    INVALID_SPAN_ID,
    INVALID_TRACE_ID,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    set_span_in_context,
)
from opentelemetry.trace import Span as SdkSpan
from pydantic import BaseModel, Field, StrictBool, ValidationError, field_validator

from revleak.timefmt import MINUTE_MS

SERVICES = ("cart", "checkout", "payment", "inventory")
FLAGS_PATH = "flags.yaml"
BRANCH = "main"
ENVIRONMENT = "chaos"
SCOPE = InstrumentationScope("revleak.loadtest.shop", "1.0.0")
GIT_TIMEOUT_S = 30.0

KI = 1024
MI = 1024 * KI
GI = 1024 * MI
NS_PER_MS = 1_000_000

METRIC_INTERVAL_MS = 15_000
MEMORY_USAGE = "process.memory.usage"
MEMORY_LIMIT = "process.memory.limit"
OOM_KILLS = "process.oom_kills"

USERS = 50_000
CHECKOUT_PROBABILITY = 0.7
# Any server span fails on its own this often: the shop's background error rate.
BASELINE_ERROR_RATE = 0.00002
# An enabled flag reaches this share of users.
ROLLOUT_SHARE = 0.5
NEW_RESERVATION = "new_reservation"
NEW_RESERVATION_FAILURE_RATE = 0.4
CHECKOUT_REDESIGN = "checkout_redesign"
REDESIGN_CHECKOUT_PROBABILITY = 0.2
# Self-times are log-normal around a service's median, capped so that p99 stays realistic.
SELF_TIME_SIGMA = 0.35
SELF_TIME_CAP = 3.0
# Share of a caller's self-time spent before its downstream calls (the rest is after).
SELF_TIME_BEFORE_CALLS = 0.7
NETWORK_MS = (0.5, 3.0)
# A container killed for memory serves 503s this long while it starts again.
RESTART_MS = 20_000
RESTART_REPLY_MS = (1.0, 4.0)
# A leak grows this fast per instance, give or take LEAK_JITTER of it.
LEAK_BYTES_PER_MINUTE = 160 * MI
LEAK_JITTER = 0.25
MEMORY_NOISE_BYTES = 4 * MI


class RepositoryError(RuntimeError):
    """The deployment repository cannot be read, or holds something the shop cannot run."""


# -- the deployment repository ---------------------------------------------------------------


def run_git(
    repository: Path,
    *args: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """``git --git-dir repository args``, in the C locale so that messages can be matched."""
    environment = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    try:
        return subprocess.run(
            ["git", "--git-dir", str(repository), *args],
            input=stdin,
            capture_output=True,
            env=environment,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RepositoryError(f"git {args[0]} in {repository}: {error}") from None


def git(
    repository: Path,
    *args: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """What git printed; :class:`RepositoryError` when it failed."""
    done = run_git(repository, *args, stdin=stdin, env=env)
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip()
        raise RepositoryError(f"git {args[0]} in {repository} failed: {said}")
    return done.stdout.decode("utf-8")


def revision(repository: Path) -> str:
    """The commit the default branch points at."""
    return git(repository, "rev-parse", "--verify", f"refs/heads/{BRANCH}^{{commit}}").strip()


def parse_memory(quantity: str | int) -> int:
    """Bytes in a Kubernetes-style quantity: ``512Mi``, ``1Gi``, ``64Ki`` or plain bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*(Ki|Mi|Gi)?\s*", str(quantity))
    if match is None or isinstance(quantity, bool):
        raise ValueError(
            f"{quantity!r} is not a memory quantity (bytes, or a number with Ki/Mi/Gi)"
        )
    unit = {"Ki": KI, "Mi": MI, "Gi": GI}.get(match.group(2) or "", 1)
    return int(match.group(1)) * unit


def format_memory(size: int) -> str:
    """The shortest exact quantity for ``size`` bytes (``1Gi``, ``620Mi``, ``1000``)."""
    for unit, factor in (("Gi", GI), ("Mi", MI), ("Ki", KI)):
        if size % factor == 0 and size >= factor:
            return f"{size // factor}{unit}"
    return str(size)


class _Metadata(BaseModel):
    name: str


class _Resources(BaseModel):
    memory: int = Field(gt=0)

    @field_validator("memory", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> int:
        if not isinstance(value, str | int):
            raise ValueError(f"{value!r} is not a memory quantity")
        return parse_memory(value)


class _ServiceSpec(BaseModel):
    version: str
    replicas: int = Field(ge=1, le=50)
    resources: _Resources

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        # YAML reads an unquoted 2.5 as a number; it is still a version.
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )


class _ServiceManifest(BaseModel):
    api_version: Literal["revleak/v1"] = Field(alias="apiVersion")
    kind: Literal["Service"]
    metadata: _Metadata
    spec: _ServiceSpec


class _FlagsFile(BaseModel):
    flags: dict[str, StrictBool] = Field(default_factory=dict)


_Model = TypeVar("_Model", bound=BaseModel)


class ServiceSpec(NamedTuple):
    version: str
    replicas: int
    memory_limit: int  # bytes


@dataclass(frozen=True, slots=True)
class Deployment:
    """What the repository says at one commit."""

    revision: str
    services: Mapping[str, ServiceSpec]
    flags: Mapping[str, bool]

    def enabled(self, flag: str) -> bool:
        return self.flags.get(flag, False)


def read_deployment(repository: Path, at: str | None = None) -> Deployment:
    """The services and flags at commit ``at`` (the default branch's head when None)."""
    commit = at or revision(repository)
    services = {name: _read_service(repository, commit, name) for name in SERVICES}
    flags = _validated(_FlagsFile, _load_yaml(repository, commit, FLAGS_PATH), FLAGS_PATH)
    return Deployment(revision=commit, services=services, flags=flags.flags)


def _read_service(repository: Path, commit: str, name: str) -> ServiceSpec:
    path = f"services/{name}.yaml"
    manifest = _validated(_ServiceManifest, _load_yaml(repository, commit, path), path)
    if manifest.metadata.name != name:
        raise RepositoryError(f"{path}: metadata.name is {manifest.metadata.name!r}, not {name!r}")
    spec = manifest.spec
    return ServiceSpec(spec.version, spec.replicas, spec.resources.memory)


def _load_yaml(repository: Path, commit: str, path: str) -> Any:
    text = git(repository, "show", f"{commit}:{path}")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RepositoryError(f"{path} is not valid YAML: {error}") from None


def _validated(model: type[_Model], document: Any, path: str) -> _Model:
    try:
        return model.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, problem['loc'])) or 'document'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise RepositoryError(f"{path}: {problems}") from None


# -- how each service and release behaves ----------------------------------------------------


class Profile(NamedTuple):
    route: str
    self_time_ms: float  # median
    memory: int  # resident bytes of a healthy process


PROFILES: Mapping[str, Profile] = {
    "cart": Profile("/cart", 22.0, 190 * MI),
    "checkout": Profile("/checkout", 18.0, 230 * MI),
    "payment": Profile("/pay", 45.0, 260 * MI),
    "inventory": Profile("/reserve", 25.0, 280 * MI),
}


class Release(NamedTuple):
    """How one version of a service differs from a healthy one."""

    extra_self_time_ms: tuple[float, float] = (0.0, 0.0)
    leak_ceiling: int | None = None  # bytes a memory leak grows to


HEALTHY = Release()
RELEASES: Mapping[tuple[str, str], Release] = {
    ("payment", "2.5.0"): Release(extra_self_time_ms=(800.0, 1500.0)),
    ("inventory", "3.1.0"): Release(leak_ceiling=620 * MI),
}


# -- OpenTelemetry plumbing ------------------------------------------------------------------


class SeededIdGenerator(IdGenerator):
    """Trace and span ids from a seeded generator (the SDK's default uses the global one)."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(f"ids/{seed}")

    def generate_span_id(self) -> int:
        span_id = INVALID_SPAN_ID
        while span_id == INVALID_SPAN_ID:
            span_id = self._random.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = INVALID_TRACE_ID
        while trace_id == INVALID_TRACE_ID:
            trace_id = self._random.getrandbits(128)
        return trace_id

    def is_trace_id_random(self) -> bool:
        return True


class MinuteExporter(SpanExporter):
    """Keeps the finished spans until the minute is over and they are encoded."""

    def __init__(self) -> None:
        self._spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._spans.extend(spans)
        return SpanExportResult.SUCCESS

    def drain(self) -> list[ReadableSpan]:
        spans, self._spans = self._spans, []
        return spans


class Instance:
    """One replica of a service at one version and memory limit (a pod, in Kubernetes).

    Its memory follows from time alone: a healthy process sits at its profile's size; a
    leaking one grows from there until its ceiling, and when that ceiling is above the
    limit the container is killed on reaching it, restarts for RESTART_MS and grows again.
    """

    def __init__(
        self,
        *,
        service: str,
        index: int,
        spec: ServiceSpec,
        created_ms: int,
        instance_id: str,
        leak_bytes_per_ms: float,
        exporter: SpanExporter,
        id_generator: IdGenerator,
    ) -> None:
        self.service = service
        self.version = spec.version
        self.memory_limit = spec.memory_limit
        self.created_ms = created_ms
        self.release = RELEASES.get((service, spec.version), HEALTHY)
        self.resource = Resource(
            {
                "service.name": service,
                "service.version": spec.version,
                "service.instance.id": instance_id,
                "host.name": f"{service}-{index}",
                "deployment.environment": ENVIRONMENT,
            }
        )
        provider = TracerProvider(
            sampler=ALWAYS_ON,
            resource=self.resource,
            shutdown_on_exit=False,
            id_generator=id_generator,
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.tracer: Tracer = provider.get_tracer(SCOPE.name, SCOPE.version)
        self._healthy_memory = PROFILES[service].memory
        self._peak_memory = self.release.leak_ceiling or self._healthy_memory
        self._leak_bytes_per_ms = leak_bytes_per_ms if self.release.leak_ceiling else 0.0
        self._kills: list[int] = []
        self._container_started_ms = created_ms

    def runs(self, spec: ServiceSpec) -> bool:
        """Whether this replica still matches ``spec`` (otherwise a rollout replaces it)."""
        return (self.version, self.memory_limit) == (spec.version, spec.memory_limit)

    def restarting(self, at_ms: int) -> bool:
        killed = self._last_kill(at_ms)
        return killed is not None and at_ms < killed + RESTART_MS

    def memory(self, at_ms: int) -> int:
        killed = self._last_kill(at_ms)
        if killed is None:
            started = self.created_ms
        elif at_ms < killed + RESTART_MS:
            return self._healthy_memory
        else:
            started = killed + RESTART_MS
        grown = self._healthy_memory + self._leak_bytes_per_ms * (at_ms - started)
        return int(min(grown, self._peak_memory))

    def oom_kills(self, at_ms: int) -> int:
        self._schedule_kills(at_ms)
        return bisect_right(self._kills, at_ms)

    def _last_kill(self, at_ms: int) -> int | None:
        self._schedule_kills(at_ms)
        killed = bisect_right(self._kills, at_ms)
        return self._kills[killed - 1] if killed else None

    def _schedule_kills(self, until_ms: int) -> None:
        """Work out the kills up to ``until_ms`` (each container lives RESTART_MS or more)."""
        if self._peak_memory < self.memory_limit:
            return
        headroom = self.memory_limit - self._healthy_memory
        growth_ms = 0 if headroom <= 0 else math.ceil(headroom / self._leak_bytes_per_ms)
        while self._container_started_ms + growth_ms <= until_ms:
            killed = self._container_started_ms + growth_ms
            self._kills.append(killed)
            self._container_started_ms = killed + RESTART_MS


class Reply(NamedTuple):
    end_ns: int
    status: int

    @property
    def failed(self) -> bool:
        return self.status >= 500


class ShopMinute(NamedTuple):
    """One simulated minute: its start, the deployment it ran, and its OTLP requests."""

    start_ms: int
    deployment: Deployment
    traces: ExportTraceServiceRequest
    metrics: ExportMetricsServiceRequest
    spans: int
    metric_points: int
    # Why the repository's newest commit was not applied (the previous one kept running).
    sync_error: str | None


# -- the shop --------------------------------------------------------------------------------


class Shop:
    """The shop, one simulated minute at a time from ``start_ms``; deterministic for a seed."""

    def __init__(
        self,
        repository: Path,
        *,
        seed: int,
        start_ms: int,
        journeys_per_minute: int = 60,
    ) -> None:
        if journeys_per_minute < 0:
            raise ValueError("journeys_per_minute must not be negative")
        self._repository = repository
        self._seed = seed
        self._random = random.Random(f"shop/{seed}")
        self._ids = SeededIdGenerator(seed)
        self._exporter = MinuteExporter()
        self._journeys_per_minute = journeys_per_minute
        self._now_ms = start_ms
        self._deployment: Deployment | None = None
        self._instances: dict[str, list[Instance]] = {}

    @property
    def now_ms(self) -> int:
        """Where the next minute starts."""
        return self._now_ms

    def minute(self) -> ShopMinute:
        """Read the repository, then simulate the next minute."""
        start_ms = self._now_ms
        deployment, sync_error = self._sync(start_ms)
        for offset_ms in sorted(
            self._random.randrange(MINUTE_MS) for _ in range(self._journeys_per_minute)
        ):
            self._journey(start_ms + offset_ms)
        spans = self._exporter.drain()
        metrics, points = self._metrics(start_ms)
        self._now_ms = start_ms + MINUTE_MS
        return ShopMinute(
            start_ms=start_ms,
            deployment=deployment,
            traces=encode_spans(spans),
            metrics=encode_metrics(metrics),
            spans=len(spans),
            metric_points=points,
            sync_error=sync_error,
        )

    # -- deployment ---------------------------------------------------------------------------

    def _sync(self, at_ms: int) -> tuple[Deployment, str | None]:
        """The deployment to run: the repository's newest commit, rolled out at ``at_ms``.

        Like a deployment controller, the shop keeps running the last good commit when a
        newer one is broken (and says why); only a repository never readable stops it.
        """
        running = self._deployment
        try:
            head = revision(self._repository)
            if running is None or head != running.revision:
                running = read_deployment(self._repository, head)
        except RepositoryError as error:
            if running is None:
                raise
            return running, str(error)
        self._deployment = running
        for service, spec in running.services.items():
            self._instances[service] = self._rolled_out(service, spec, at_ms)
        return running, None

    def _rolled_out(self, service: str, spec: ServiceSpec, at_ms: int) -> list[Instance]:
        running = self._instances.get(service, [])
        return [
            running[index]
            if index < len(running) and running[index].runs(spec)
            else self._new_instance(service, index, spec, at_ms)
            for index in range(spec.replicas)
        ]

    def _new_instance(self, service: str, index: int, spec: ServiceSpec, at_ms: int) -> Instance:
        jitter = self._random.uniform(1 - LEAK_JITTER, 1 + LEAK_JITTER)
        return Instance(
            service=service,
            index=index,
            spec=spec,
            created_ms=at_ms,
            instance_id=str(uuid.UUID(int=self._random.getrandbits(128), version=4)),
            leak_bytes_per_ms=LEAK_BYTES_PER_MINUTE * jitter / MINUTE_MS,
            exporter=self._exporter,
            id_generator=self._ids,
        )

    # -- traces -------------------------------------------------------------------------------

    def _journey(self, at_ms: int) -> None:
        """One user: a cart (the trace's root) and, often, a checkout inside it."""
        user = f"user-{self._random.randrange(USERS):05d}"
        self._serve("cart", user, at_ms * NS_PER_MS, None)

    def _serve(self, service: str, user: str, start_ns: int, parent: Context | None) -> Reply:
        instance = self._random.choice(self._instances[service])
        route = PROFILES[service].route
        span = instance.tracer.start_span(
            f"POST {route}",
            context=parent,
            kind=SpanKind.SERVER,
            start_time=start_ns,
            attributes={"http.request.method": "POST", "http.route": route},
        )
        if instance.restarting(start_ns // NS_PER_MS):
            reply = Reply(start_ns + self._milliseconds_ns(*RESTART_REPLY_MS), 503)
        elif service == "cart":
            reply = self._cart(instance, span, user, start_ns)
        elif service == "checkout":
            reply = self._checkout(instance, span, user, start_ns)
        elif service == "inventory":
            reply = self._reserve(instance, span, user, start_ns)
        else:
            reply = self._leaf(instance, start_ns)
        _finish(span, reply)
        return reply

    def _cart(self, instance: Instance, span: SdkSpan, user: str, start_ns: int) -> Reply:
        span.set_attribute("enduser.id", user)
        redesigned = self._evaluate(span, CHECKOUT_REDESIGN, user)
        before, after = self._split(self._self_time_ns(instance))
        if self._fails():
            return Reply(start_ns + before + after, 500)
        checkout = REDESIGN_CHECKOUT_PROBABILITY if redesigned else CHECKOUT_PROBABILITY
        if self._random.random() >= checkout:
            return Reply(start_ns + before + after, 200)
        checked_out = self._call(instance, "checkout", span, user, start_ns + before)
        return Reply(checked_out.end_ns + after, 502 if checked_out.failed else 200)

    def _checkout(self, instance: Instance, span: SdkSpan, user: str, start_ns: int) -> Reply:
        before, after = self._split(self._self_time_ns(instance))
        if self._fails():
            return Reply(start_ns + before + after, 500)
        reserved = self._call(instance, "inventory", span, user, start_ns + before)
        if reserved.failed:
            return Reply(reserved.end_ns + after, 502)
        paid = self._call(instance, "payment", span, user, reserved.end_ns)
        return Reply(paid.end_ns + after, 502 if paid.failed else 200)

    def _reserve(self, instance: Instance, span: SdkSpan, user: str, start_ns: int) -> Reply:
        new_reservation = self._evaluate(span, NEW_RESERVATION, user)
        end_ns = start_ns + self._self_time_ns(instance)
        if new_reservation and self._random.random() < NEW_RESERVATION_FAILURE_RATE:
            return Reply(end_ns, 503)
        return Reply(end_ns, 500 if self._fails() else 200)

    def _leaf(self, instance: Instance, start_ns: int) -> Reply:
        end_ns = start_ns + self._self_time_ns(instance)
        return Reply(end_ns, 500 if self._fails() else 200)

    def _call(
        self, caller: Instance, service: str, parent: SdkSpan, user: str, start_ns: int
    ) -> Reply:
        """An HTTP call from ``caller``: a CLIENT span around the callee's SERVER span."""
        route = PROFILES[service].route
        client = caller.tracer.start_span(
            f"POST {route}",
            context=set_span_in_context(parent),
            kind=SpanKind.CLIENT,
            start_time=start_ns,
            attributes={
                "http.request.method": "POST",
                "server.address": service,
                "url.template": route,
            },
        )
        there = self._milliseconds_ns(*NETWORK_MS)
        served = self._serve(service, user, start_ns + there, set_span_in_context(client))
        reply = Reply(served.end_ns + self._milliseconds_ns(*NETWORK_MS), served.status)
        _finish(client, reply)
        return reply

    def _evaluate(self, span: SdkSpan, flag: str, user: str) -> bool:
        """The flag's variant for ``user``, recorded on the span of the evaluating service."""
        deployment = self._deployment
        on = deployment is not None and deployment.enabled(flag) and self._in_rollout(flag, user)
        span.set_attribute("feature_flag.key", flag)
        span.set_attribute("feature_flag.result.variant", "on" if on else "off")
        return on

    def _in_rollout(self, flag: str, user: str) -> bool:
        digest = hashlib.blake2b(f"{self._seed}/{flag}/{user}".encode(), digest_size=8).digest()
        return int.from_bytes(digest) < ROLLOUT_SHARE * 2**64

    def _self_time_ns(self, instance: Instance) -> int:
        median = PROFILES[instance.service].self_time_ms
        milliseconds = min(
            median * self._random.lognormvariate(0.0, SELF_TIME_SIGMA), median * SELF_TIME_CAP
        )
        low, high = instance.release.extra_self_time_ms
        if high > 0:
            milliseconds += self._random.uniform(low, high)
        return round(milliseconds * NS_PER_MS)

    def _milliseconds_ns(self, low: float, high: float) -> int:
        return round(self._random.uniform(low, high) * NS_PER_MS)

    def _fails(self) -> bool:
        return self._random.random() < BASELINE_ERROR_RATE

    @staticmethod
    def _split(self_time_ns: int) -> tuple[int, int]:
        before = round(self_time_ns * SELF_TIME_BEFORE_CALLS)
        return before, self_time_ns - before

    # -- metrics ------------------------------------------------------------------------------

    def _metrics(self, start_ms: int) -> tuple[MetricsData, int]:
        """Every instance's memory, limit and OOM kills, every METRIC_INTERVAL_MS."""
        times = range(start_ms, start_ms + MINUTE_MS, METRIC_INTERVAL_MS)
        resources = [
            ResourceMetrics(
                resource=instance.resource,
                scope_metrics=[
                    ScopeMetrics(
                        scope=SCOPE, metrics=self._instance_metrics(instance, times), schema_url=""
                    )
                ],
                schema_url="",
            )
            for service in SERVICES
            for instance in self._instances[service]
        ]
        return MetricsData(resource_metrics=resources), 3 * len(times) * len(resources)

    def _instance_metrics(self, instance: Instance, times: Sequence[int]) -> list[Metric]:
        usage = [
            _point(at_ms, self._noisy(instance.memory(at_ms), instance.memory_limit))
            for at_ms in times
        ]
        limit = [_point(at_ms, instance.memory_limit) for at_ms in times]
        kills = [
            _point(at_ms, instance.oom_kills(at_ms), since_ms=instance.created_ms)
            for at_ms in times
        ]
        return [
            Metric(MEMORY_USAGE, "Resident memory of the process", "By", Gauge(usage)),
            Metric(MEMORY_LIMIT, "Memory limit of the container", "By", Gauge(limit)),
            Metric(
                OOM_KILLS,
                "Times the container was killed for exceeding its memory limit",
                "{kill}",
                Sum(kills, AggregationTemporality.CUMULATIVE, is_monotonic=True),
            ),
        ]

    def _noisy(self, memory: int, limit: int) -> int:
        noise = self._random.randint(-MEMORY_NOISE_BYTES, MEMORY_NOISE_BYTES)
        return max(0, min(memory + noise, limit))


def _point(at_ms: int, value: int, *, since_ms: int = 0) -> NumberDataPoint:
    return NumberDataPoint(
        attributes={},
        start_time_unix_nano=since_ms * NS_PER_MS,
        time_unix_nano=at_ms * NS_PER_MS,
        value=value,
    )


def _finish(span: SdkSpan, reply: Reply) -> None:
    span.set_attribute("http.response.status_code", reply.status)
    if reply.failed:
        span.set_attribute("error.type", str(reply.status))
        span.set_status(Status(StatusCode.ERROR, f"HTTP {reply.status}"))
    span.end(end_time=reply.end_ns)
