"""Telemetry SLIs (docs/semantics.md §2): spans and metric points, their SLI events, root causes."""
