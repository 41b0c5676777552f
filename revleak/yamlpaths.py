"""Where a problem is in a YAML document: its line, and its path as people write it."""

from __future__ import annotations

from typing import Any

import yaml


def dotted_path(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def locate(node: yaml.Node, path: tuple[Any, ...]) -> tuple[int, tuple[Any, ...]]:
    """The 1-based line of the deepest node on ``path`` that exists, and the path to
    report: one that ends inside a plain value (``Email: emial``) ends at that value."""
    line: int = node.start_mark.line + 1
    for depth, part in enumerate(path):
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child, line = value, key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                child = node.value[part]
                line = child.start_mark.line + 1
        elif isinstance(node, yaml.ScalarNode):
            return line, path[:depth]
        if child is None:
            return line, path
        node = child
    return line, path
