"""Scenario generators (the Nakatomi story, benchmark streams) and the benchmark harness."""
