"""The chaos shop: deterministic OTLP, a healthy baseline, each scenario's fault in the raw
protos, and health again once the fix is committed to its GitOps repository."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import pytest
from gitkit import git
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from revleak.loadtest.chaos import SCENARIOS, ChaosRun, Scenario, commit_files, seed_repository
from revleak.loadtest.shop import (
    MI,
    RepositoryError,
    Shop,
    ShopMinute,
    format_memory,
    parse_memory,
    read_deployment,
)
from revleak.remediation.executors.gitops import GitOps
from revleak.remediation.model import GitChange
from revleak.remediation.templating import set_yaml_value

START_MS = 1_772_445_600_000  # 2026-03-02T10:00:00Z
SERVER = ProtoSpan.SpanKind.SPAN_KIND_SERVER


class SpanRow(NamedTuple):
    trace_id: bytes
    span_id: bytes
    parent: bytes
    service: str
    version: str
    name: str
    kind: int
    duration_ms: float
    error: bool
    http_status: int
    variant: str | None
    user: str | None


class PointRow(NamedTuple):
    service: str
    instance: str
    metric: str
    time_ns: int
    value: float


def _text(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    return str(getattr(value, kind)) if kind else ""


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, str]:
    return {pair.key: _text(pair.value) for pair in pairs}


def spans_of(minutes: Iterable[ShopMinute]) -> list[SpanRow]:
    rows = []
    for minute in minutes:
        for resource in minute.traces.resource_spans:
            owner = _attributes(resource.resource.attributes)
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = _attributes(span.attributes)
                    rows.append(
                        SpanRow(
                            trace_id=span.trace_id,
                            span_id=span.span_id,
                            parent=span.parent_span_id,
                            service=owner["service.name"],
                            version=owner["service.version"],
                            name=span.name,
                            kind=span.kind,
                            duration_ms=(span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
                            error=span.status.code == Status.STATUS_CODE_ERROR,
                            http_status=int(attributes["http.response.status_code"]),
                            variant=attributes.get("feature_flag.result.variant"),
                            user=attributes.get("enduser.id"),
                        )
                    )
    return rows


def points_of(minutes: Iterable[ShopMinute]) -> list[PointRow]:
    rows = []
    for minute in minutes:
        for resource in minute.metrics.resource_metrics:
            owner = _attributes(resource.resource.attributes)
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    data = metric.gauge if metric.HasField("gauge") else metric.sum
                    rows.extend(
                        PointRow(
                            owner["service.name"],
                            owner["service.instance.id"],
                            metric.name,
                            point.time_unix_nano,
                            point.as_int,
                        )
                        for point in data.data_points
                    )
    return rows


def servers(rows: Iterable[SpanRow], service: str | None = None) -> list[SpanRow]:
    return [r for r in rows if r.kind == SERVER and service in (None, r.service)]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.99 * (len(ordered) - 1))]


def error_ratio(rows: list[SpanRow]) -> float:
    return sum(r.error for r in rows) / len(rows)


def conversion(rows: list[SpanRow], variant: str | None = None) -> float:
    """Successful checkouts ÷ carts started (optionally of the users with one variant)."""
    carts = {r.trace_id for r in servers(rows, "cart") if variant in (None, r.variant)}
    done = {r.trace_id for r in servers(rows, "checkout") if not r.error}
    return len(carts & done) / len(carts)


def memory_ratios(points: list[PointRow], service: str) -> list[float]:
    limits = {(p.instance, p.time_ns): p.value for p in points if p.metric.endswith(".limit")}
    return [
        p.value / limits[p.instance, p.time_ns]
        for p in points
        if p.service == service and p.metric == "process.memory.usage"
    ]


def oom_increases(points: list[PointRow], service: str) -> int:
    series: dict[str, list[float]] = defaultdict(list)
    for p in sorted(points, key=lambda p: p.time_ns):
        if p.service == service and p.metric == "process.oom_kills":
            series[p.instance].append(p.value)
    return sum(int(values[-1] - values[0]) for values in series.values())


def assert_healthy(minutes: list[ShopMinute]) -> None:
    rows = spans_of(minutes)
    # Background failures are 500s, each failing its callers too (502); faults answer 503.
    assert sum(r.http_status == 500 for r in servers(rows)) / len(servers(rows)) < 0.01
    assert error_ratio(servers(rows)) < 0.03
    assert not any(r.http_status == 503 for r in rows)
    assert p99([r.duration_ms for r in servers(rows)]) < 300
    assert 0.55 < conversion(rows) < 0.85
    points = points_of(minutes)
    for service in ("cart", "checkout", "payment", "inventory"):
        assert max(memory_ratios(points, service)) < 0.9
        assert oom_increases(points, service) == 0


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    bare = tmp_path / "deploy.git"
    seed_repository(bare, at_ms=START_MS)
    return bare


def fix_as_the_pack_does(scenario: Scenario, bare: Path, workdir: Path) -> None:
    """The fix pack's GitOps step: the value set in place, committed, merged, pushed."""
    before = git("--git-dir", str(bare), "show", f"main:{scenario.fix.path}") + "\n"
    after = set_yaml_value(before, scenario.fix.key, scenario.fix.value)
    assert after != before
    GitOps({"deploy": str(bare)}, workdir=workdir).apply(
        GitChange(
            command_id=f"INC-1:{scenario.name}",
            repository="deploy",
            path=scenario.fix.path,
            before=before,
            after=after,
            branch=f"revleak/INC-1/{scenario.name}",
            message=scenario.fix.message,
        )
    )


def run_scenario(
    name: str, bare: Path, tmp_path: Path, *, journeys: int, fault: int, after: int
) -> tuple[list[ShopMinute], list[ShopMinute], list[ShopMinute]]:
    """One healthy minute, ``fault`` minutes of the fault, the fix, ``after`` minutes."""
    run = ChaosRun(
        SCENARIOS[name],
        bare,
        seed=7,
        start_ms=START_MS,
        baseline_minutes=1,
        journeys_per_minute=journeys,
    )
    minutes = run.minutes(1 + fault)
    baseline = [next(minutes)]
    faulty = list(minutes)
    assert run.injected_at_ms == START_MS + 60_000
    fix_as_the_pack_does(SCENARIOS[name], bare, tmp_path / "work")
    fixed = list(run.minutes(after))
    return baseline, faulty, fixed


def test_the_same_seed_gives_the_same_bytes_and_another_seed_others(tmp_path: Path) -> None:
    def output(folder: str, seed: int) -> list[tuple[bytes, bytes]]:
        bare = tmp_path / folder
        seed_repository(bare, at_ms=START_MS)
        run = ChaosRun(SCENARIOS["errors"], bare, seed=seed, start_ms=START_MS, baseline_minutes=1)
        return [
            (m.traces.SerializeToString(), m.metrics.SerializeToString()) for m in run.minutes(2)
        ]

    first = output("a.git", seed=11)
    assert output("b.git", seed=11) == first
    other = output("c.git", seed=12)
    assert all(
        ours[0] != theirs[0] and ours[1] != theirs[1]
        for ours, theirs in zip(first, other, strict=True)
    )


def test_a_healthy_shop_has_the_baseline_errors_latency_and_conversion(repository: Path) -> None:
    shop = Shop(repository, seed=3, start_ms=START_MS, journeys_per_minute=600)
    minutes = [shop.minute(), shop.minute()]
    assert_healthy(minutes)
    rows = spans_of(minutes)
    assert sum(m.spans for m in minutes) == len(rows)
    assert error_ratio(servers(rows)) < 0.001  # background failures are rare (BASELINE_ERROR_RATE)
    # One trace a journey, rooted in the cart: "cart started".
    roots = [r for r in rows if not r.parent]
    assert len(roots) == 1200 == len({r.trace_id for r in rows})
    assert {(r.service, r.name, r.kind) for r in roots} == {("cart", "POST /cart", SERVER)}
    by_id = {r.span_id: r for r in rows}
    assert {
        (by_id[r.parent].service, by_id[r.parent].kind, r.service)
        for r in servers(rows)
        if r.parent
    } == {
        ("cart", ProtoSpan.SpanKind.SPAN_KIND_CLIENT, "checkout"),
        ("checkout", ProtoSpan.SpanKind.SPAN_KIND_CLIENT, "inventory"),
        ("checkout", ProtoSpan.SpanKind.SPAN_KIND_CLIENT, "payment"),
    }
    resource = minutes[0].traces.resource_spans[0].resource
    attributes = _attributes(resource.attributes)
    assert attributes["deployment.environment"] == "chaos"
    assert attributes["host.name"].startswith(attributes["service.name"] + "-")
    points = points_of(minutes)
    assert sum(m.metric_points for m in minutes) == len(points)
    assert {p.time_ns % 15_000_000_000 for p in points} == {0}
    assert {p.value for p in points if p.metric == "process.memory.limit"} == {512 * MI}


def test_latency_payment_2_5_0_is_slow_until_rolled_back(repository: Path, tmp_path: Path) -> None:
    baseline, faulty, fixed = run_scenario(
        "latency", repository, tmp_path, journeys=150, fault=1, after=1
    )
    assert_healthy(baseline)
    payments = servers(spans_of(faulty), "payment")
    assert {r.version for r in payments} == {"2.5.0"}
    assert min(r.duration_ms for r in payments) > 800
    checkouts = servers(spans_of(faulty), "checkout")
    assert min(r.duration_ms for r in checkouts if not r.error) > 800
    assert {r.version for r in servers(spans_of(fixed), "payment")} == {"2.4.0"}
    assert_healthy(fixed)


def test_errors_new_reservation_fails_its_users_reservations_until_switched_off(
    repository: Path, tmp_path: Path
) -> None:
    baseline, faulty, fixed = run_scenario(
        "errors", repository, tmp_path, journeys=250, fault=2, after=1
    )
    assert_healthy(baseline)
    rows = spans_of(faulty)
    reservations = servers(rows, "inventory")
    on = [r for r in reservations if r.variant == "on"]
    off = [r for r in reservations if r.variant == "off"]
    assert 0.3 < error_ratio(on) < 0.5
    assert error_ratio(off) < 0.01
    assert {r.http_status for r in on if r.error} == {503}
    failed_reservations = {r.trace_id for r in on if r.error}
    failed_checkouts = {
        r.trace_id for r in servers(rows, "checkout") if r.error and r.http_status == 502
    }
    assert failed_reservations <= failed_checkouts
    assert {r.variant for r in servers(rows, "cart")} == {"off"}  # another flag, off
    assert {r.variant for r in servers(spans_of(fixed), "inventory")} == {"off"}
    assert_healthy(fixed)


def test_oom_inventory_3_1_0_is_killed_until_its_limit_is_raised(
    repository: Path, tmp_path: Path
) -> None:
    baseline, faulty, fixed = run_scenario(
        "oom", repository, tmp_path, journeys=120, fault=3, after=3
    )
    assert_healthy(baseline)
    points = points_of(faulty)
    assert max(memory_ratios(points, "inventory")) > 0.9
    assert oom_increases(points, "inventory") >= 2
    assert max(memory_ratios(points, "payment")) < 0.9
    reservations = servers(spans_of(faulty), "inventory")
    assert {r.http_status for r in reservations if r.error} >= {503}
    after = points_of(fixed)
    assert {p.value for p in after if p.service == "inventory" and "limit" in p.metric} == {
        1024 * MI
    }
    # The leak is bounded: on 1Gi it levels off at ~620Mi.
    assert 0.55 < max(memory_ratios(after, "inventory")) < 0.65
    assert {r.version for r in servers(spans_of(fixed), "inventory")} == {"3.1.0"}
    assert_healthy(fixed)


def test_conversion_the_redesign_puts_its_users_off_until_switched_off(
    repository: Path, tmp_path: Path
) -> None:
    baseline, faulty, fixed = run_scenario(
        "conversion", repository, tmp_path, journeys=300, fault=2, after=1
    )
    assert_healthy(baseline)
    rows = spans_of(faulty)
    assert 0.1 < conversion(rows, "on") < 0.3
    assert 0.6 < conversion(rows, "off") < 0.8
    assert error_ratio(servers(rows)) < 0.01
    assert_healthy(fixed)


def test_each_scenario_names_the_cause_its_fix_pack_needs() -> None:
    assert SCENARIOS["latency"].expected.annotations() == {
        "cause": "version",
        "cause_service": "payment",
        "cause_operation": "POST /pay",
        "cause_attribute": "service.version",
        "cause_value": "2.5.0",
        "previous_version": "2.4.0",
    }
    assert SCENARIOS["errors"].expected.annotations()["flag"] == "new_reservation"
    assert SCENARIOS["conversion"].expected.annotations()["cause_service"] == "cart"
    oom = SCENARIOS["oom"].expected.annotations()
    assert (oom["cause"], oom["cause_value"], oom["memory_limit_target"]) == (
        "memory",
        str(512 * MI),
        "1Gi",
    )


def test_the_fault_is_a_deploy_commit(repository: Path) -> None:
    sha = SCENARIOS["latency"].inject(repository, at_ms=START_MS + 60_000)
    bare = str(repository)
    assert git("--git-dir", bare, "rev-parse", "main") == sha
    assert git("--git-dir", bare, "log", "-1", "--format=%s|%at", "main") == (
        f"Deploy payment 2.5.0|{(START_MS + 60_000) // 1000}"
    )
    assert git("--git-dir", bare, "diff", "--stat", "main~1", "main").startswith(
        "services/payment.yaml | 2 +-"
    )
    assert read_deployment(repository).services["payment"].version == "2.5.0"
    assert SCENARIOS["latency"].inject(repository, at_ms=START_MS) is None  # already deployed


def test_a_broken_commit_is_not_applied_and_the_last_good_one_keeps_running(
    repository: Path,
) -> None:
    shop = Shop(repository, seed=1, start_ms=START_MS, journeys_per_minute=5)
    assert shop.minute().sync_error is None
    commit_files(
        repository,
        {"services/payment.yaml": "apiVersion: revleak/v1\nkind: Service\nspec: {}\n"},
        "Break payment",
        at_ms=START_MS,
    )
    broken = shop.minute()
    assert broken.sync_error is not None
    assert "services/payment.yaml" in broken.sync_error
    assert broken.deployment.services["payment"].version == "2.4.0"
    assert broken.spans > 0
    with pytest.raises(RepositoryError, match=r"services/payment\.yaml"):
        Shop(repository, seed=1, start_ms=START_MS).minute()


@pytest.mark.parametrize(
    ("quantity", "size"),
    [("512Mi", 512 * MI), ("1Gi", 1024 * MI), ("64Ki", 65536), ("1000", 1000), (2048, 2048)],
)
def test_memory_quantities(quantity: str | int, size: int) -> None:
    assert parse_memory(quantity) == size
    assert parse_memory(format_memory(size)) == size


@pytest.mark.parametrize("quantity", ["1.5Gi", "512MB", "", "-1Mi", True])
def test_memory_quantities_that_are_not(quantity: str | bool) -> None:
    with pytest.raises(ValueError, match="memory quantity"):
        parse_memory(quantity)


def test_flag_rollout_is_half_the_users_and_stable_for_a_seed(tmp_path: Path) -> None:
    bare = tmp_path / "flagged.git"
    seed_repository(bare, at_ms=START_MS)
    SCENARIOS["conversion"].inject(bare, at_ms=START_MS)

    def variants(seed: int) -> dict[str, str]:
        shop = Shop(bare, seed=seed, start_ms=START_MS, journeys_per_minute=250)
        seen = {(r.user, r.variant) for r in servers(spans_of([shop.minute()]), "cart")}
        by_user = dict(seen)
        assert len(by_user) == len(seen)  # one variant a user
        return {user: variant for user, variant in by_user.items() if variant}

    first = variants(5)
    shares = Counter(first.values())
    assert 0.4 < shares["on"] / len(first) < 0.6
    again = variants(5)
    assert again == first
    other = variants(6)
    common = first.keys() & other.keys()
    assert any(first[user] != other[user] for user in common)
