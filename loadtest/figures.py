"""How the benchmark reports write their numbers, so every table reads alike."""

from __future__ import annotations

import math
from pathlib import Path


def whole(value: float) -> str:
    """Rounded down, with thousands separators (a rate is never reported higher)."""
    return f"{math.floor(value):,}"


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def paragraph_lines(paragraphs: list[str]) -> list[str]:
    """Markdown lines of the paragraphs, a blank line between each two."""
    lines: list[str] = []
    for paragraph in paragraphs:
        lines += [paragraph, ""]
    return lines[:-1]


def replace_section(document: str, heading: str, section: list[str]) -> str:
    """``document`` with the section under ``heading`` replaced by ``section`` (or, when it
    has none yet, ``section`` put before "What bounds it")."""
    lines = document.splitlines()
    start = next((i for i, line in enumerate(lines) if line == heading), None)
    if start is not None:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        lines[start:end] = section
    else:
        anchor = next(
            (i for i, line in enumerate(lines) if line == "## What bounds it"), len(lines)
        )
        lines[anchor:anchor] = section
    return "\n".join(lines) + "\n"


def write_section(output: Path, heading: str, section: list[str]) -> None:
    """Put ``section`` under ``heading`` in the report at ``output`` (created when missing),
    and print it."""
    document = output.read_text(encoding="utf-8") if output.exists() else ""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(replace_section(document, heading, section), encoding="utf-8")
    print("\n".join(section))
