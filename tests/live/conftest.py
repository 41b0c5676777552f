"""Shared by the recovery and scale-out tests: the story they feed through Kafka.

Their driver lives in the package (``revleak.loadtest.soak``) so that ``make soak`` runs
the same trials as the tests, more of them.
"""

from __future__ import annotations

import pytest

from revleak.loadtest import soak


@pytest.fixture(scope="module")
def story() -> list[bytes]:
    """The Nakatomi story: 287 changes whose live alert log has 89 records and whose
    pages each fire at most three times (each fire holds its resolve ~15 s)."""
    return soak.story_lines()
