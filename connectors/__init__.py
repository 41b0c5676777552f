"""Bytes ↔ domain events (generic JSON, funnel CSV), dead letters, and metrics export."""
