"""The telemetry benchmark measures what it says, on a small run."""

from __future__ import annotations

from pathlib import Path

from revleak.loadtest import telemetry_bench
from revleak.loadtest.figures import write_section


def test_a_small_run_pages_explains_and_is_reported(tmp_path: Path) -> None:
    plan = telemetry_bench.Plan(minutes=10, journeys_per_minute=60, analysis_spans=500)
    results = telemetry_bench.run(tmp_path, plan=plan)
    assert results.spans > 2_000
    assert results.pages >= 1
    assert results.root_causes >= 1
    assert "payment" in results.top_cause
    assert "2.5.0" in results.top_cause
    assert results.analysis_window == results.analysis_baseline == 500
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\n## What bounds it\n\nprofiles\n", encoding="utf-8")
    write_section(report, telemetry_bench.SECTION, telemetry_bench.render_section(results))
    text = report.read_text(encoding="utf-8")
    assert text.index(telemetry_bench.SECTION) < text.index("## What bounds it")
    assert "| b) flow, 1 worker, decode + SLIs + burn rates + alerts + analysis: spans/s |" in text
    assert "| ≥ 50,000 per worker |" in text
