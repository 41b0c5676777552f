"""`revleak slo import-sloth`: Sloth specs (prometheus/v1 and the Kubernetes form) become
revleak SLO files that `revleak slo validate` accepts."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from revleak.cli import app
from revleak.slo.catalog import Indicator, SloCatalog
from revleak.slo.loader import load_catalog, parse_catalog
from revleak.slo.sloth_import import (
    SlothImportError,
    import_sloth,
    parse_indicator_option,
)
from revleak.timefmt import parse_duration

SPECS = Path(__file__).parent / "sloth"
SLOTH_DEFAULT_RULES = [
    ("page", "1h", "5m", Fraction(72, 5)),
    ("page", "6h", "30m", Fraction(6)),
    ("ticket", "1d", "2h", Fraction(3)),
    ("ticket", "3d", "6h", Fraction(1)),
]


def revleak(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["slo", *map(str, args)], env={"NO_COLOR": "1"})


def imported(spec: str, tmp_path: Path, *options: str) -> tuple[SloCatalog, str]:
    output = tmp_path / "imported.yaml"
    done = revleak("import-sloth", SPECS / spec, "--output", output, *options)
    assert done.exit_code == 0, done.output
    validated = revleak("validate", output)
    assert validated.exit_code == 0, validated.output
    return load_catalog(output), output.read_text()


def rules(catalog: SloCatalog, name: str) -> list[tuple[str, str, str, Fraction]]:
    return [
        (rule.severity, rule.long_window, rule.short_window, rule.factor)
        for rule in catalog.by_name(name).alert_rules
    ]


def test_sloths_getting_started_spec_becomes_an_availability_slo(tmp_path: Path) -> None:
    catalog, text = imported("getting-started.yml", tmp_path)
    (slo,) = catalog.slos
    assert (slo.name, slo.service, slo.indicator, slo.target) == (
        "requests-availability",
        "myservice",
        Indicator.AVAILABILITY,
        Fraction(999, 1000),
    )
    assert slo.description == "Common SLO based on availability for HTTP request responses."
    assert slo.period_ms == parse_duration("30d")
    assert rules(catalog, slo.name) == SLOTH_DEFAULT_RULES
    assert slo.telemetry is not None
    assert slo.telemetry.watches("myservice")
    assert not slo.telemetry.watches("otherservice")
    # Sloth's queries, labels and alert routing stay as comments.
    assert (
        '#         error_query: sum(rate(http_request_duration_seconds_count{job="myservice",'
        'code=~"(5..|429)"}[{{.window}}]))' in text
    )
    assert "#           routing_key: myteam" in text
    assert "# Sloth SLO myservice-requests-availability: otel.availability, its name" in text


def test_kubernetes_form_with_a_latency_slo_and_a_disabled_ticket(tmp_path: Path) -> None:
    catalog, text = imported("k8s-apiserver.yml", tmp_path)
    assert [(slo.name, slo.indicator) for slo in catalog.slos] == [
        ("requests-availability", Indicator.AVAILABILITY),
        ("requests-latency", Indicator.LATENCY),
    ]
    latency = catalog.by_name("requests-latency")
    assert latency.threshold_ms == 400  # le="0.4" in its error query
    assert latency.target == Fraction(99, 100)
    assert rules(catalog, "requests-availability") == SLOTH_DEFAULT_RULES
    assert rules(catalog, "requests-latency") == SLOTH_DEFAULT_RULES[:2]  # ticket disabled
    assert '#             sum(rate(apiserver_request_duration_seconds_bucket{le="0.4"' in text


def test_slos_that_say_nothing_of_their_kind_are_listed_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    output = tmp_path / "wifi.yaml"
    done = revleak("import-sloth", SPECS / "home-wifi.yml", "--output", output)
    assert done.exit_code == 1
    assert "SLO home-wifi-good-wifi-client-satisfaction cannot be mapped" in done.stderr
    assert "SLO home-wifi-wifi-client-satisfaction cannot be mapped" in done.stderr
    assert "--indicator wifi-client-satisfaction=otel.availability" in done.stderr
    assert "2 error(s), nothing written" in done.stderr
    assert not output.exists()


def test_indicator_options_map_them(tmp_path: Path) -> None:
    catalog, text = imported(
        "home-wifi.yml",
        tmp_path,
        "--indicator",
        "good-wifi-client-satisfaction=otel.availability",
        "--indicator",
        "home-wifi-wifi-client-satisfaction=saturation",  # by Sloth id, short type
    )
    assert [(slo.name, slo.indicator) for slo in catalog.slos] == [
        ("good-wifi-client-satisfaction", Indicator.AVAILABILITY),
        ("wifi-client-satisfaction", Indicator.SATURATION),
    ]
    assert "otel.saturation, given with --indicator" in text
    assert "#         error_ratio_query: |\n#           1 - (" in text


def test_indicator_option_wins_over_the_name_and_a_latency_needs_a_threshold() -> None:
    spec = (SPECS / "getting-started.yml").read_text()
    result = import_sloth(spec, indicators={"requests-availability": Indicator.LATENCY})
    (slo,) = parse_catalog(result.text).slos
    assert slo.indicator is Indicator.LATENCY
    assert slo.threshold_ms == 500
    assert result.warnings == (
        'SLO myservice-requests-availability: no le="…" bucket in its queries, so its latency '
        "threshold is revleak's default 500ms: check it",
    )


SERVER_ERRORS = 'sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))'
MEMORY = "sum(rate(container_memory_working_set_bytes[{{.window}}]))"
SLOW_OR_FAILED = 'sum(rate(http_request_duration_seconds_count{code=~"5.."}[{{.window}}]))'


@pytest.mark.parametrize(
    ("name", "description", "error_query", "indicator"),
    [
        ("api-errors", "", "sum(x)", Indicator.AVAILABILITY),
        ("api", "Requests that are too slow", "sum(x)", Indicator.LATENCY),
        ("api", "", SERVER_ERRORS, Indicator.AVAILABILITY),
        ("api", "", MEMORY, Indicator.SATURATION),
        # The name decides before the queries, which mention a duration metric and 5xx codes.
        ("requests-latency", "", SLOW_OR_FAILED, Indicator.LATENCY),
    ],
)
def test_indicator_is_recognised_from_name_description_then_queries(
    name: str, description: str, error_query: str, indicator: Indicator
) -> None:
    spec = f"""
version: prometheus/v1
service: shop
slos:
  - name: {name}
    objective: 99.5
    description: "{description}"
    sli: {{events: {{error_query: '{error_query}', total_query: 'sum(y)'}}}}
    alerting: {{name: ShopAlert}}
"""
    (slo,) = parse_catalog(import_sloth(spec).text).slos
    assert slo.indicator is indicator


def test_queries_that_point_two_ways_are_not_guessed() -> None:
    spec = f"""
version: prometheus/v1
service: shop
slos:
  - name: checkout
    objective: 99
    sli:
      events:
        error_query: {SLOW_OR_FAILED}
        total_query: sum(rate(http_request_duration_seconds_count[{{{{.window}}}}]))
"""
    with pytest.raises(SlothImportError) as caught:
        import_sloth(spec, source="shop.yml")
    (problem,) = caught.value.problems
    assert problem.startswith(
        "shop.yml: SLO shop-checkout cannot be mapped: its queries mention '5..' and "
        "'http_request_duration_seconds_count'"
    )


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("apiVersion: revleak/v1\nkind: SLO\n", "is not a Sloth spec"),
        ("apiVersion: openslo/v1\nkind: SLO\n", "is an OpenSLO document"),
        ("version: prometheus/v2\nservice: a\nslos: []\n", "version: Input should be"),
        (
            "version: prometheus/v1\nservice: a\nslos:\n  - {name: x, objective: 100, "
            "sli: {raw: {error_ratio_query: 'q'}}}\n",
            "slos.0.objective: objective 100 % leaves no error budget",
        ),
        (
            "version: prometheus/v1\nservice: a\nslos:\n  - {name: x, objective: 99, sli: {}}\n",
            "give exactly one of events, raw or plugin",
        ),
    ],
)
def test_what_is_not_a_usable_sloth_spec_is_explained(spec: str, problem: str) -> None:
    with pytest.raises(SlothImportError) as caught:
        import_sloth(spec, source="in.yml")
    assert any(problem in each for each in caught.value.problems), caught.value.problems


def test_indicator_options_are_checked() -> None:
    assert parse_indicator_option("a=otel.latency") == ("a", Indicator.LATENCY)
    with pytest.raises(ValueError, match="is not an indicator a Sloth SLO maps to"):
        parse_indicator_option("a=crm.lead_response")
    with pytest.raises(ValueError, match="write SLO=TYPE"):
        parse_indicator_option("otel.latency")
    done = revleak("import-sloth", SPECS / "getting-started.yml", "--indicator", "x=latency")
    assert done.exit_code == 1
    assert "--indicator x: no SLO of that name or id" in done.stderr
