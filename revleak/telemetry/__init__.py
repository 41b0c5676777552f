"""Telemetry SLIs (SEMANTICS.md §2): spans and metric points, their SLI events, root causes."""
