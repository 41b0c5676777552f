"""Pausing Python's cycle collector around work that builds many short-lived objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cycle collector for the block.

    Decoding a large OTLP message or analysing a window of traces creates hundreds of
    thousands of small objects, none of them in a cycle: each batch of them sets the
    collector off to rescan everything and find nothing (a third of the time). Threads share
    the switch: one that finishes first turns it back on early for the others, which only
    costs them time, and it is never left off.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
