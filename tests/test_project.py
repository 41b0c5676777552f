"""The repository itself: bundled data is what its generator writes, the wheel is complete."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from harness import ROOT

from revleak.loadtest import nakatomi


def test_bundled_story_is_what_the_generator_writes(tmp_path: Path) -> None:
    nakatomi.write(tmp_path)
    for name in ("nakatomi.jsonl", "funnel-week1.csv"):
        assert (tmp_path / name).read_bytes() == (ROOT / "data" / name).read_bytes(), (
            f"data/{name} is stale: run `make data`"
        )


@pytest.mark.slow
def test_wheel_maps_every_component_into_the_revleak_namespace(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("revleak-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    components = {
        "revleak": "revleak",
        "connectors": "revleak/connectors",
        "dataflows": "revleak/dataflows",
        "loadtest": "revleak/loadtest",
        "remediation": "revleak/remediation",
        "api": "revleak/api",
    }
    for folder, prefix in components.items():
        for module in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in module.parts:
                assert f"{prefix}/{module.relative_to(ROOT / folder)}" in names, module
    for data in (
        "revleak/slos/crm.yaml",
        "revleak/data/nakatomi.jsonl",
        "revleak/data/funnel-week1.csv",
        "revleak/py.typed",
        "revleak/remediation/packs/rapid-response.yaml",
        "revleak/remediation/roster.yaml",
        "revleak/api/templates/warroom.html",
    ):
        assert data in names, data


def test_core_imports_no_infrastructure() -> None:
    """The core (SLO maths, CRM model, rules) never imports Bytewax, Kafka, Redis or HTTP."""
    code = (
        "import sys, revleak.slo.evaluator, revleak.slo.loader, revleak.crm.pipeline, "
        "revleak.crm.records, revleak.slo.incident\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "{'bytewax', 'confluent_kafka', 'redis', 'httpx', 'requests', 'fastapi', "
        "'prometheus_client'}]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-P", "-c", code], check=True, timeout=60)


def test_remediation_and_api_never_import_the_dataflows() -> None:
    """They meet the flows through Kafka, Redis, Alertmanager and HTTP, never in process."""
    code = (
        "import sys, revleak.api.app, revleak.remediation.service, revleak.remediation.crm_sim\n"
        "bad = [m for m in sys.modules if m.startswith(('revleak.dataflows', 'bytewax'))]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-P", "-c", code], check=True, timeout=60)
