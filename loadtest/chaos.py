"""Chaos scenarios for the simulated shop: a fault deployed through its GitOps repository.

A scenario starts healthy, then commits a change to the repository the way a deploy would
(a new release, a feature flag switched on). The shop runs whatever the repository says,
so the fault lasts until another commit — revleak's fix pack — takes it back. Each scenario
states the root cause a correct analysis names and the commit that fixes it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from revleak.loadtest.shop import (
    BRANCH,
    CHECKOUT_REDESIGN,
    FLAGS_PATH,
    NEW_RESERVATION,
    RepositoryError,
    Shop,
    ShopMinute,
    format_memory,
    git,
    parse_memory,
    run_git,
)
from revleak.remediation.templating import Scalar, set_yaml_value
from revleak.timefmt import MINUTE_MS

COMMIT_ATTEMPTS = 3
AUTHOR = ("chaos", "chaos@revleak.localhost")
HEALTHY_MEMORY_LIMIT = "512Mi"
RAISED_MEMORY_LIMIT = "1Gi"
HEALTHY_VERSIONS: Mapping[str, str] = {
    "cart": "1.8.2",
    "checkout": "3.2.0",
    "payment": "2.4.0",
    "inventory": "3.0.4",
}
HEALTHY_REPLICAS = 3

CauseKind = Literal["version", "flag", "memory"]


def service_manifest(name: str, version: str) -> str:
    return (
        "apiVersion: revleak/v1\n"
        "kind: Service\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        f"  version: {version}\n"
        f"  replicas: {HEALTHY_REPLICAS}\n"
        "  resources:\n"
        f"    memory: {HEALTHY_MEMORY_LIMIT}\n"
    )


def flags_file() -> str:
    return (
        "# A flag set to true is rolled out to half of the users.\n"
        "flags:\n"
        f"  {NEW_RESERVATION}: false\n"
        f"  {CHECKOUT_REDESIGN}: false\n"
    )


def healthy_files() -> dict[str, str]:
    """The repository of a healthy shop: path → text."""
    files = {
        f"services/{name}.yaml": service_manifest(name, version)
        for name, version in HEALTHY_VERSIONS.items()
    }
    files[FLAGS_PATH] = flags_file()
    return files


def seed_repository(bare: Path, *, at_ms: int) -> str:
    """Create the bare repository ``bare`` holding a healthy shop; the commit's sha."""
    if bare.exists() and any(bare.iterdir()):
        raise FileExistsError(f"{bare} exists and is not empty")
    bare.mkdir(parents=True, exist_ok=True)
    git(bare, "init", "--quiet", "--bare", f"--initial-branch={BRANCH}")
    return commit_files(bare, healthy_files(), "Deploy the shop", at_ms=at_ms)


def commit_files(bare: Path, files: Mapping[str, str], message: str, *, at_ms: int) -> str:
    """Commit ``files`` (path → text) on the default branch of ``bare``; the new sha.

    Written straight into the bare repository through a private index, with ``at_ms`` as
    the commit's date; the branch moves only if nobody else moved it meanwhile.
    """
    parent = _head(bare)
    with tempfile.TemporaryDirectory(prefix="revleak-chaos-index-") as scratch:
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        if parent is not None:
            git(bare, "read-tree", parent, env=index)
        for path, text in files.items():
            blob = git(bare, "hash-object", "-w", "--stdin", stdin=text.encode()).strip()
            git(bare, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
        tree = git(bare, "write-tree", env=index).strip()
    parents = ["-p", parent] if parent is not None else []
    stamp = f"@{at_ms // 1000} +0000"
    identity = {
        "GIT_AUTHOR_NAME": AUTHOR[0],
        "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_COMMITTER_NAME": AUTHOR[0],
        "GIT_COMMITTER_EMAIL": AUTHOR[1],
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
    }
    commit = git(bare, "commit-tree", tree, *parents, "-m", message, env=identity).strip()
    # The expected old value makes the update a compare-and-swap ("" = must not exist yet).
    git(bare, "update-ref", f"refs/heads/{BRANCH}", commit, parent or "")
    return commit


def _head(bare: Path) -> str | None:
    done = run_git(bare, "rev-parse", "--verify", "--quiet", f"refs/heads/{BRANCH}^{{commit}}")
    return done.stdout.decode().strip() if done.returncode == 0 else None


@dataclass(frozen=True, slots=True)
class RepositoryEdit:
    """One value set in one file of the repository, as a deploy or a fix pack commits it."""

    path: str
    key: str
    value: Scalar
    message: str

    def apply(self, bare: Path, *, at_ms: int) -> str | None:
        """Commit the edit; the new sha, or None when the file already says so."""
        for _ in range(COMMIT_ATTEMPTS):
            head = _head(bare)
            before = git(bare, "show", f"{head}:{self.path}")
            after = set_yaml_value(before, self.key, self.value)
            if after == before:
                return None
            try:
                return commit_files(bare, {self.path: after}, self.message, at_ms=at_ms)
            except RepositoryError:
                if _head(bare) == head:
                    raise
        raise RuntimeError(f"{bare}: the default branch kept moving; {self.message!r} not made")


class RootCause(NamedTuple):
    """What a correct analysis of the scenario's page names, and what its fix pack needs.

    A flag reads as the attribute ``feature_flag.<name>`` with the variant as its value (the
    span carries ``feature_flag.key`` and ``feature_flag.result.variant``); a memory cause
    names no attribute: its value is the current limit in bytes.
    """

    cause: CauseKind
    service: str
    operation: str | None
    attribute: str | None
    value: str
    previous_value: str | None = None
    flag: str | None = None
    memory_limit_target: str | None = None

    def annotations(self) -> dict[str, str]:
        """The page annotations that choose and fill the fix pack."""
        fields = {
            "cause": self.cause,
            "cause_service": self.service,
            "cause_operation": self.operation,
            "cause_attribute": self.attribute,
            "cause_value": self.value,
            "previous_version": self.previous_value if self.cause == "version" else None,
            "flag": self.flag,
            "memory_limit_target": self.memory_limit_target,
        }
        return {name: text for name, text in fields.items() if text is not None}


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    fault: RepositoryEdit
    fix: RepositoryEdit
    expected: RootCause

    def inject(self, repository: Path, *, at_ms: int) -> str | None:
        """Deploy the fault; the commit's sha (None when the repository already has it)."""
        return self.fault.apply(repository, at_ms=at_ms)


def _flag_edit(flag: str, on: bool) -> RepositoryEdit:
    verb = "Enable" if on else "Disable"
    return RepositoryEdit(FLAGS_PATH, f"flags.{flag}", on, f"{verb} feature flag {flag}")


def _version_edit(service: str, version: str, verb: str) -> RepositoryEdit:
    return RepositoryEdit(
        f"services/{service}.yaml", "spec.version", version, f"{verb} {service} {version}"
    )


SCENARIOS: Mapping[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            name="latency",
            description="payment 2.5.0 spends 0.8–1.5 s more in POST /pay",
            fault=_version_edit("payment", "2.5.0", "Deploy"),
            fix=_version_edit("payment", HEALTHY_VERSIONS["payment"], "Roll back"),
            expected=RootCause(
                cause="version",
                service="payment",
                operation="POST /pay",
                attribute="service.version",
                value="2.5.0",
                previous_value=HEALTHY_VERSIONS["payment"],
            ),
        ),
        Scenario(
            name="errors",
            description="new_reservation on: 40 % of its users' reservations fail with 503",
            fault=_flag_edit(NEW_RESERVATION, True),
            fix=_flag_edit(NEW_RESERVATION, False),
            expected=RootCause(
                cause="flag",
                service="inventory",
                operation="POST /reserve",
                attribute=f"feature_flag.{NEW_RESERVATION}",
                value="on",
                previous_value="off",
                flag=NEW_RESERVATION,
            ),
        ),
        Scenario(
            name="oom",
            description="inventory 3.1.0 leaks to ~620Mi: OOM kills under a 512Mi limit",
            fault=_version_edit("inventory", "3.1.0", "Deploy"),
            fix=RepositoryEdit(
                "services/inventory.yaml",
                "spec.resources.memory",
                RAISED_MEMORY_LIMIT,
                f"Raise the memory limit of inventory to {RAISED_MEMORY_LIMIT}",
            ),
            expected=RootCause(
                cause="memory",
                service="inventory",
                operation=None,
                attribute=None,
                value=str(parse_memory(HEALTHY_MEMORY_LIMIT)),
                memory_limit_target=format_memory(parse_memory(RAISED_MEMORY_LIMIT)),
            ),
        ),
        Scenario(
            name="conversion",
            description="checkout_redesign on: its users check out 20 % of the time, not 70 %",
            fault=_flag_edit(CHECKOUT_REDESIGN, True),
            fix=_flag_edit(CHECKOUT_REDESIGN, False),
            expected=RootCause(
                cause="flag",
                service="cart",
                operation="POST /cart",
                attribute=f"feature_flag.{CHECKOUT_REDESIGN}",
                value="on",
                previous_value="off",
                flag=CHECKOUT_REDESIGN,
            ),
        ),
    )
}


class ChaosRun:
    """A scenario on the shop: ``baseline_minutes`` healthy, then the fault, minute by minute."""

    def __init__(
        self,
        scenario: Scenario,
        repository: Path,
        *,
        seed: int,
        start_ms: int,
        baseline_minutes: int = 30,
        journeys_per_minute: int = 60,
    ) -> None:
        if baseline_minutes < 0:
            raise ValueError("baseline_minutes must not be negative")
        self.scenario = scenario
        self.repository = repository
        self.baseline_minutes = baseline_minutes
        self.shop = Shop(
            repository, seed=seed, start_ms=start_ms, journeys_per_minute=journeys_per_minute
        )
        self._start_ms = start_ms
        self.injected_at_ms: int | None = None

    @property
    def inject_at_ms(self) -> int:
        return self._start_ms + self.baseline_minutes * MINUTE_MS

    def minutes(self, count: int) -> Iterator[ShopMinute]:
        """The next ``count`` minutes, deploying the fault when the baseline is over."""
        for _ in range(count):
            if self.injected_at_ms is None and self.shop.now_ms >= self.inject_at_ms:
                self.scenario.inject(self.repository, at_ms=self.shop.now_ms)
                self.injected_at_ms = self.shop.now_ms
            yield self.shop.minute()
