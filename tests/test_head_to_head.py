"""The head-to-head report says what the race measured (the race itself is `make bench`)."""

from __future__ import annotations

from revleak.loadtest.head_to_head import SECTION, Results, render_section


def test_the_report_compares_times_to_page_and_the_slos_paged() -> None:
    results = Results(first_messy_s=20.0, changes=1_200)
    results.pages = {("revleak", "data_quality"): 0.8, ("prometheus", "data_quality"): 48.0}
    text = "\n".join(render_section(results))
    assert text.startswith(SECTION)
    assert "| revleak flow, direct page: time to page (s) | 0.8 |" in text
    assert "| Prometheus, exported rules: time to page (s) | 48.0 |" in text
    assert "| ratio (Prometheus ÷ revleak) | 60× |" in text
    assert "| both page on the same SLOs | yes |" in text


def test_a_missing_page_or_another_slo_is_a_difference() -> None:
    results = Results()
    results.pages = {("revleak", "data_quality"): 0.8, ("prometheus", "lead_response"): 50.0}
    assert "| both page on the same SLOs | **no** |" in "\n".join(render_section(results))
    alone = Results()
    alone.pages = {("revleak", "data_quality"): 0.8}
    text = "\n".join(render_section(alone))
    assert "| Prometheus, exported rules: time to page (s) | no page |" in text
    assert "| both page on the same SLOs | **no** |" in text
