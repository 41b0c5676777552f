"""docker-compose.yml, the Dockerfile and otel-collector/config.yaml, checked against the
code and against the configuration files the rest of the suite runs.

There is no Docker engine here, so nothing is started: every reference the stack makes (a
service, a port, a mounted file, a setting, a topic, a route) is resolved the way compose
and the programs in it would resolve it, and must lead somewhere real.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from fnmatch import fnmatch
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from pydantic_settings import BaseSettings

from revleak import cli
from revleak.api.config import ApiSettings
from revleak.api.routes import fixpacks, health, runbooks, webhook
from revleak.connectors.self_telemetry import SelfTelemetrySettings
from revleak.settings import LiveSettings
from revleak.slo.loader import load_catalog

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
COLLECTOR_CONFIG = ROOT / "otel-collector" / "config.yaml"
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "prometheus" / "alertmanager.yml"

CRM_FLOW, TELEMETRY_FLOW, API = "revleak-crm-flow", "revleak-telemetry-flow", "revleak-api"
FLOWS = {CRM_FLOW: "run crm", TELEMETRY_FLOW: "run telemetry"}
REVLEAK_SERVICES = {**FLOWS, API: "api"}
INFRASTRUCTURE = ("kafka", "redis", "prometheus", "alertmanager", "grafana")
# What an operator exports before `docker compose up` (the file's header).
SHELL = {"WEBHOOK_TOKEN": "w" * 48, "APPROVER_TOKEN": "a" * 48}

INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
LOCAL_URL = re.compile(r"http://127\.0\.0\.1:(\d+)/")


# -- compose, read as compose reads it -----------------------------------------------------


def interpolate(text: str, shell: Mapping[str, str]) -> str:
    """``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}`` as compose substitutes them."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if shell.get(name):
            return shell[name]
        if op is not None and op.endswith("?"):
            raise ValueError(f"compose refuses to start: {arg}")
        return arg or ""

    return INTERPOLATION.sub(value, text)


def environment(service: str, shell: Mapping[str, str] = SHELL) -> dict[str, str]:
    """The container's environment; a variable without a value comes from the shell, and an
    unset shell variable leaves it out."""
    declared: dict[str, Any] = SERVICES[service].get("environment", {})
    resolved = {}
    for name, value in declared.items():
        if value is not None:
            resolved[name] = interpolate(str(value), shell)
        elif shell.get(name):
            resolved[name] = shell[name]
    return resolved


def mounts(service: str) -> list[tuple[str, str]]:
    """(source, container path) of every volume, in compose's short syntax."""
    found = []
    for volume in SERVICES[service].get("volumes", []):
        source, target, *_ = volume.split(":")
        found.append((source, target))
    return found


def resolve(service: str, container_path: str) -> tuple[str, str] | None:
    """(source, path inside the source) of the mount that holds ``container_path``."""
    path = PurePosixPath(container_path)
    for source, target in sorted(mounts(service), key=lambda m: -len(m[1])):
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source, str(path.relative_to(target))
    return None


def repository_file(service: str, container_path: str) -> Path:
    """The repository file or folder a container path is bind-mounted from."""
    held = resolve(service, container_path)
    assert held is not None, f"{service}: nothing is mounted at {container_path}"
    assert held[0].startswith("./"), f"{service}: {container_path} is not a repository file"
    return (ROOT / held[0] / held[1]).resolve()


def named_volume(service: str, container_path: str) -> str | None:
    held = resolve(service, container_path)
    return held[0] if held is not None and not held[0].startswith(("./", "/")) else None


def published(service: str) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of every published port."""
    triples = []
    for port in SERVICES[service].get("ports", []):
        address, host_port, container_port = str(port).split(":")
        triples.append((address, int(host_port), int(container_port)))
    return triples


def container_ports(service: str) -> set[int]:
    exposed = {int(port) for port in SERVICES[service].get("expose", [])}
    return exposed | {container for _, _, container in published(service)}


def option(arguments: list[str], name: str) -> str:
    """The value of ``--name=value`` among a program's arguments."""
    (value,) = [arg.split("=", 1)[1] for arg in arguments if arg.startswith(f"--{name}=")]
    return value


@cache
def invocation(service: str) -> tuple[str, dict[str, Any]]:
    """The revleak command a service runs and its options, parsed by the real CLI."""
    program, *arguments = SERVICES[service]["command"]
    assert program == "revleak", service
    command = typer.main.get_command(cli.app)
    path: list[str] = []
    while isinstance(command, typer.core.TyperGroup):
        name, *arguments = arguments
        assert name in command.commands, f"{service}: no `revleak {' '.join([*path, name])}`"
        path.append(name)
        command = command.commands[name]
    context = command.make_context(" ".join(["revleak", *path]), arguments)
    return " ".join(path), context.params


def setting_names(*settings: type[BaseSettings]) -> set[str]:
    return {
        (model.model_config.get("env_prefix", "") + field).upper()
        for model in settings
        for field in model.model_fields
    }


Enter = Callable[[str], None]


@pytest.fixture
def in_container(monkeypatch: pytest.MonkeyPatch) -> Enter:
    """Puts this process in a service's environment, so settings read it as they would."""

    def enter(service: str) -> None:
        for name in list(os.environ):
            if name.startswith(("REVLEAK_", "OTEL_")):
                monkeypatch.delenv(name)
        for name, value in environment(service).items():
            monkeypatch.setenv(name, value)

    return enter


def flow_settings(service: str) -> LiveSettings:
    """What ``revleak run`` builds from the service's flags and environment."""
    _, params = invocation(service)
    flags = {
        name: value
        for name, value in params.items()
        if value is not None and name in LiveSettings.model_fields
    }
    return LiveSettings(**flags)


def served_port(service: str) -> int:
    _, params = invocation(service)
    port = params["port"] if service == API else params["metrics_port"]
    assert isinstance(port, int)
    return port


def routes(*modules: Any) -> set[str]:
    return {route.path for module in modules for route in module.router.routes}


# -- services --------------------------------------------------------------------------------


def test_every_service_runs_a_pinned_image_or_the_revleak_build() -> None:
    for name, service in SERVICES.items():
        if name in REVLEAK_SERVICES:
            assert service["build"] == ".", name
            assert (ROOT / "Dockerfile").is_file()
            continue
        image = service["image"]
        assert ":" in image, f"{name}: pin {image}"
        assert image.rpartition(":")[2] != "latest", f"{name}: pin {image}"


def test_revleak_services_run_real_commands_that_serve_on_their_published_ports() -> None:
    for service, expected in REVLEAK_SERVICES.items():
        command, params = invocation(service)
        assert command == expected, service
        host = params["host"] if service == API else params["metrics_host"]
        assert host == "0.0.0.0", f"{service} must listen beyond its own loopback"
        assert served_port(service) in container_ports(service), service
    assert served_port(CRM_FLOW) != served_port(TELEMETRY_FLOW)


def test_ports_are_published_on_the_hosts_loopback_only() -> None:
    for name in SERVICES:
        assert published(name), f"{name} publishes no port"
        for address, host_port, container_port in published(name):
            assert address == "127.0.0.1", f"{name}: {host_port} is open beyond this host"
            assert host_port == container_port, name


def test_dependencies_exist_and_wait_for_health_where_there_is_a_check() -> None:
    for name in INFRASTRUCTURE + tuple(REVLEAK_SERVICES):
        assert SERVICES[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    for name, service in SERVICES.items():
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            healthy = "healthcheck" in SERVICES[dependency]
            expected = "service_healthy" if healthy else "service_started"
            assert how["condition"] == expected, f"{name} → {dependency}"
    for flow in FLOWS:
        assert set(SERVICES[flow]["depends_on"]) == {"kafka", "redis", "alertmanager"}


def test_revleak_healthchecks_ask_the_port_the_service_serves() -> None:
    for service in REVLEAK_SERVICES:
        test = " ".join(SERVICES[service]["healthcheck"]["test"])
        assert [int(port) for port in LOCAL_URL.findall(test)] == [served_port(service)], service
    api_check = " ".join(SERVICES[API]["healthcheck"]["test"])
    (path,) = re.findall(r"127\.0\.0\.1:\d+(/\w+)", api_check)
    assert path in routes(health)


# -- volumes and mounted files ---------------------------------------------------------------


def test_every_bind_mounted_host_path_exists_in_the_repository() -> None:
    for name in SERVICES:
        for source, target in mounts(name):
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source} at {target}"
            else:
                assert not source.startswith("/"), f"{name}: {source} is outside the repository"


def test_named_volumes_are_declared_used_and_hold_every_piece_of_state() -> None:
    declared = set(COMPOSE["volumes"])
    used = {
        source for name in SERVICES for source, _ in mounts(name) if not source.startswith("./")
    }
    assert used == declared
    prometheus, alertmanager = SERVICES["prometheus"], SERVICES["alertmanager"]
    state = {
        "kafka": SERVICES["kafka"]["environment"]["KAFKA_LOG_DIRS"],
        "prometheus": option(prometheus["command"], "storage.tsdb.path"),
        "alertmanager": option(alertmanager["command"], "storage.path"),
        "grafana": "/var/lib/grafana",
        CRM_FLOW: environment(CRM_FLOW)["REVLEAK_RECOVERY_DIR"],
        TELEMETRY_FLOW: environment(TELEMETRY_FLOW)["REVLEAK_RECOVERY_DIR"],
        API: environment(API)["REVLEAK_DATABASE_URL"].removeprefix("sqlite:///"),
    }
    volumes = {service: named_volume(service, path) for service, path in state.items()}
    assert None not in volumes.values(), volumes
    assert len(set(volumes.values())) == len(volumes), "two services share a state volume"
    gitops = environment(API)["REVLEAK_GITOPS_WORKDIR"]
    assert named_volume(API, gitops) == volumes[API]


def test_mounted_configuration_is_the_very_files_the_suite_checks() -> None:
    def config_flag(service: str, name: str) -> Path:
        return repository_file(service, option(SERVICES[service]["command"], name))

    assert config_flag("prometheus", "config.file") == PROMETHEUS_CONFIG
    assert config_flag("alertmanager", "config.file") == ALERTMANAGER_CONFIG
    assert config_flag("otel-collector", "config") == COLLECTOR_CONFIG
    # Prometheus resolves rule files next to its configuration file.
    config_folder = PurePosixPath(option(SERVICES["prometheus"]["command"], "config.file")).parent
    rule_files = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))["rule_files"]
    assert rule_files
    for rule_file in rule_files:
        found = repository_file("prometheus", str(config_folder / rule_file))
        assert found.parent == ROOT / "prometheus" / "rules", rule_file
        assert found.is_file(), rule_file
    # Grafana reads provisioning from /etc/grafana/provisioning, and its dashboards' file
    # provider points into the dashboards mount.
    assert repository_file("grafana", "/etc/grafana/provisioning") == ROOT / "grafana/provisioning"
    providers = sorted((ROOT / "grafana" / "provisioning" / "dashboards").glob("*.y*ml"))
    assert providers, "no dashboard provider in grafana/provisioning/dashboards"
    for file in providers:
        for provider in yaml.safe_load(file.read_text(encoding="utf-8"))["providers"]:
            folder = repository_file("grafana", provider["options"]["path"])
            assert folder == ROOT / "grafana" / "dashboards", file
    sources = sorted((ROOT / "grafana" / "provisioning" / "datasources").glob("*.y*ml"))
    for file in sources:
        for source in yaml.safe_load(file.read_text(encoding="utf-8"))["datasources"]:
            url = urlsplit(source["url"])
            assert url.hostname in SERVICES, file
            assert url.port in container_ports(url.hostname), file


def test_the_flows_read_the_repositorys_slo_files() -> None:
    for flow, name in ((CRM_FLOW, "crm.yaml"), (TELEMETRY_FLOW, "telemetry.yaml")):
        file = repository_file(flow, environment(flow)["REVLEAK_SLOS"])
        assert file == ROOT / "slos" / name
        catalog = load_catalog(file)
        own = catalog.telemetry_slos if flow == TELEMETRY_FLOW else catalog.crm_slos
        assert own == catalog.slos, f"{flow} reads SLOs of the other flow"


# -- settings --------------------------------------------------------------------------------


def test_revleak_environment_names_are_real_settings() -> None:
    known = {
        CRM_FLOW: setting_names(LiveSettings, SelfTelemetrySettings),
        TELEMETRY_FLOW: setting_names(LiveSettings, SelfTelemetrySettings),
        API: setting_names(ApiSettings, SelfTelemetrySettings),
    }
    for service, names in known.items():
        declared = set(SERVICES[service]["environment"])
        assert declared - names == set(), f"{service}: not settings of its process"


def test_the_flows_environment_gives_valid_settings(in_container: Enter) -> None:
    for flow in FLOWS:
        in_container(flow)
        settings = flow_settings(flow)
        assert settings.recovery_dir is not None, flow
        assert settings.alertmanager_url, flow
        assert settings.redis_url, flow
        telemetry = SelfTelemetrySettings()
        assert not telemetry.enabled, f"{flow}: self-telemetry is opt-in"


def test_the_api_environment_gives_production_settings_with_both_tokens(
    in_container: Enter,
) -> None:
    in_container(API)
    settings = ApiSettings()
    assert settings.environment == "production"
    grants = {token: (grant.actor, grant.role) for token, grant in settings.api_tokens.items()}
    assert grants == {
        SHELL["WEBHOOK_TOKEN"]: ("alertmanager", "operator"),
        SHELL["APPROVER_TOKEN"]: ("approver", "approver"),
    }
    raw = SERVICES[API]["environment"]["REVLEAK_API_TOKENS"]
    with pytest.raises(ValueError, match="WEBHOOK_TOKEN"):
        interpolate(raw, {})


def test_each_flow_is_the_single_writer_of_its_alert_log_and_live_state(
    in_container: Enter,
) -> None:
    flows = {}
    for flow in FLOWS:
        in_container(flow)
        flows[flow] = flow_settings(flow)
    crm, telemetry = flows[CRM_FLOW], flows[TELEMETRY_FLOW]
    assert crm.alerts_topic != telemetry.telemetry_alerts_topic
    assert crm.redis_prefix != telemetry.telemetry_redis_prefix
    in_container(API)
    api = ApiSettings()
    # Plans and verification read the CRM flow's blast radius, and the telemetry flow's
    # root causes.
    assert (api.redis_url, api.redis_prefix) == (crm.redis_url, crm.redis_prefix)
    assert api.telemetry_redis_prefix == telemetry.telemetry_redis_prefix
    assert (api.otlp_spans_topic, api.otlp_metrics_topic) == (
        telemetry.spans_topic,
        telemetry.metrics_topic,
    )


def test_addresses_in_the_environment_name_services_and_their_ports() -> None:
    for service in REVLEAK_SERVICES:
        for name, value in environment(service).items():
            for url in re.findall(r"[a-z]+://[^\s\"']+", value):
                parts = urlsplit(url)
                if parts.hostname in (None, "localhost"):
                    continue
                assert parts.hostname in SERVICES, f"{service} {name}: {url}"
                assert parts.port in container_ports(parts.hostname), f"{service} {name}: {url}"
    advertised = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
    for service in REVLEAK_SERVICES:
        brokers = environment(service)["REVLEAK_BROKERS"]
        assert any(listener.endswith(f"://{brokers}") for listener in advertised), service
    host_listener = next(listener for listener in advertised if "localhost" in listener)
    assert int(host_listener.rsplit(":", 1)[1]) in {host for _, host, _ in published("kafka")}


def test_links_in_pages_lead_to_the_apis_runbook_and_fix_pack_routes() -> None:
    api_ports = {host for _, host, _ in published(API)}
    for flow in FLOWS:
        env = environment(flow)
        runbook = urlsplit(env["REVLEAK_RUNBOOK_BASE_URL"] + "lead_response")
        fixpack = urlsplit(env["REVLEAK_FIXPACK_BASE_URL"])
        assert runbook.port in api_ports, flow
        assert fixpack.port in api_ports, flow
        assert re.sub(r"[^/]+$", "{slo}", runbook.path) in routes(runbooks)
        assert fixpack.path in routes(fixpacks)


# -- the collector, Prometheus and Alertmanager ----------------------------------------------


def test_the_collector_writes_otlp_proto_to_the_topics_the_telemetry_flow_reads(
    in_container: Enter,
) -> None:
    config = yaml.safe_load(COLLECTOR_CONFIG.read_text(encoding="utf-8"))
    in_container(TELEMETRY_FLOW)
    flow = flow_settings(TELEMETRY_FLOW)
    defaults = LiveSettings.model_fields
    pipelines = config["service"]["pipelines"]
    for signal, topic in (("traces", "spans_topic"), ("metrics", "metrics_topic")):
        pipeline = pipelines[signal]
        assert pipeline["receivers"] == ["otlp"]
        assert pipeline["processors"][-1] == "batch"
        (exporter,) = pipeline["exporters"]
        assert exporter.split("/")[0] == "kafka"
        kafka = config["exporters"][exporter]
        assert kafka[signal]["encoding"] == "otlp_proto"
        assert kafka[signal]["topic"] == defaults[topic].default == getattr(flow, topic)
        assert kafka["brokers"] == [flow.brokers]
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline[kind]) <= set(config[kind]), f"{signal}: undefined {kind}"
    assert set(config["service"]["extensions"]) <= set(config["extensions"])
    protocols = config["receivers"]["otlp"]["protocols"]
    endpoints = {int(protocol["endpoint"].rsplit(":", 1)[1]) for protocol in protocols.values()}
    (reader,) = config["service"]["telemetry"]["metrics"]["readers"]
    own_metrics = reader["pull"]["exporter"]["prometheus"]["port"]
    assert endpoints | {own_metrics} <= container_ports("otel-collector")


def test_prometheus_scrapes_compose_services_on_ports_they_serve() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    scraped: dict[str, int] = {}
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                assert host in SERVICES, f"{job['job_name']}: no service {host}"
                assert int(port) in container_ports(host), f"{job['job_name']}: {target}"
                scraped[host] = int(port)
    for service in REVLEAK_SERVICES:
        assert scraped.get(service) == served_port(service), service


def test_alertmanager_posts_to_the_api_webhook_with_the_token_it_grants(
    in_container: Enter,
) -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    secrets = {
        f"/run/secrets/{name}": COMPOSE["secrets"][name]["environment"]
        for name in SERVICES["alertmanager"]["secrets"]
    }
    in_container(API)
    grants = ApiSettings().api_tokens
    for receiver in config["receivers"]:
        # A receiver without integrations (Prometheus' cross-check, the operators' until
        # they add theirs) posts nowhere.
        for hook in receiver.get("webhook_configs", []):
            url = urlsplit(hook["url"])
            assert (url.hostname, url.port) == (API, served_port(API)), receiver["name"]
            assert url.path in routes(webhook)
            token_file = hook["http_config"]["authorization"]["credentials_file"]
            token = SHELL[secrets[token_file]]
            assert grants[token].role == "operator", receiver["name"]


# -- the image -------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (keyword.upper(), rest.strip())
        for keyword, _, rest in (line.partition(" ") for line in lines)
        if keyword and not keyword.startswith("#")
    ]


def test_the_dockerfile_copies_the_project_and_installs_it_for_a_user_with_git() -> None:
    instructions = dockerfile_instructions()
    bases = [rest.split()[0] for keyword, rest in instructions if keyword == "FROM"]
    assert bases
    assert set(bases) == {"python:3.11-slim"}
    copied = {
        source
        for keyword, rest in instructions
        if keyword == "COPY" and not rest.startswith("--from")
        for source in rest.split()[:-1]
    }
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_dirs = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    assert package_dirs | {"pyproject.toml", "README.md"} <= copied
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    assert any(re.search(r"\bpip install \.$", run) for run in runs)
    assert any("apt-get install" in run and re.search(r"\bgit\b", run) for run in runs)
    last_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    users = [rest for keyword, rest in last_stage if keyword == "USER"]
    assert users, "the image runs as root"
    assert users[-1] not in {"root", "0"}
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in copied:
        assert not any(fnmatch(source, pattern) for pattern in ignored), source
