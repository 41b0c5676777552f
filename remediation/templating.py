"""Text a fix pack produces: its templates rendered in a sandbox, and YAML values set in place.

Templates are Jinja2 in a :class:`~jinja2.sandbox.SandboxedEnvironment` with
:class:`~jinja2.StrictUndefined`: a pack comes from a file that operators edit, so it may
read the variables it is given and nothing else, and a misspelt name is an error rather
than an empty string in a message or a CRM field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any

import jinja2
import yaml
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment

Scalar = str | int | float | bool

_ENVIRONMENT = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_KEY = re.compile(r"^[^.\[\]]+(\[\d+\])*(\.[^.\[\]]+(\[\d+\])*)*$")
_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_STR_TAG = "tag:yaml.org,2002:str"


class TemplateError(ValueError):
    """A template that cannot be rendered with the variables it was given."""


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def template_problems(source: str, *, names: Collection[str], inputs: Collection[str]) -> list[str]:
    """Why ``source`` cannot work with the variables ``names`` and the declared ``inputs``."""
    try:
        tree = _ENVIRONMENT.parse(source)
    except jinja2.TemplateSyntaxError as error:
        return [f"not a valid template: {error.message}"]
    problems = [
        f"{{{{ {name} }}}} is not a variable here (known: {', '.join(sorted(names))})"
        for name in sorted(meta.find_undeclared_variables(tree))
        if name not in names
    ]
    for node in tree.find_all(nodes.Getattr):
        target = node.node
        if isinstance(target, nodes.Name) and target.name == "inputs" and node.attr not in inputs:
            declared = ", ".join(sorted(inputs)) or "none"
            problems.append(f"inputs.{node.attr} is not a declared input (declared: {declared})")
    return problems


def render(source: str, variables: Mapping[str, Any]) -> str:
    """Render ``source``; raise :class:`TemplateError` with a readable reason."""
    try:
        return _ENVIRONMENT.from_string(source).render(variables)
    except jinja2.UndefinedError as error:
        raise TemplateError(f"{source!r}: undefined variable: {error.message}") from None
    except jinja2.TemplateError as error:
        raise TemplateError(f"{source!r}: {error}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as error:
        raise TemplateError(f"{source!r}: {error}") from None


def set_yaml_value(text: str, key: str, value: Scalar) -> str:
    """``text`` with the scalar at ``key`` (``spec.version``, ``spec.containers[0].image``)
    replaced by ``value``; every other character (comments, order, quoting) is kept.

    A string that reads as the kind of value the key holds now (``5`` where ``3`` was,
    ``false`` where ``true`` was) is written as that kind; other strings stay strings,
    quoted if YAML would read them otherwise (``"2.0"``). Raises ``ValueError`` when the
    key is absent or not a single value, or when the edit would change anything else.
    """
    path = parse_key(key)
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as error:
        raise ValueError(f"the file is not valid YAML: {error}") from None
    if len(documents) != 1 or documents[0] is None:
        raise ValueError(f"the file holds {len(documents)} YAML documents, not one")
    expected = yaml.safe_load(text)
    node = _find(documents[0], path, key)
    if not isinstance(node, yaml.ScalarNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
        raise ValueError(f"{key} is {kind}, not a single value")
    if node.style in ("|", ">"):
        raise ValueError(f"{key} is a block scalar; only single-line values are edited")
    written, meaning = _scalar_text(value, node)
    after = text[: node.start_mark.index] + written + text[node.end_mark.index :]
    try:
        _assign(expected, path, meaning)
    except (KeyError, IndexError, TypeError):
        raise ValueError(f"{key} is not a plain key path of this file") from None
    try:
        unchanged = yaml.safe_load(after) == expected
    except yaml.YAMLError:
        unchanged = False
    if not unchanged:
        raise ValueError(f"writing {written} at {key} would change more than that value")
    return after


def parse_key(key: str) -> list[str | int]:
    """``a.b[0].c`` as ``["a", "b", 0, "c"]``; ``ValueError`` for anything else."""
    if not _KEY.match(key):
        raise ValueError(f"{key!r} is not a key path like spec.version or spec.items[0].name")
    return [name if name else int(index) for name, index in _KEY_PART.findall(key)]


def _find(node: yaml.Node, path: list[str | int], key: str) -> yaml.Node:
    for depth, part in enumerate(path):
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            child = next(
                (
                    value
                    for name, value in node.value
                    if isinstance(name, yaml.ScalarNode) and name.value == part
                ),
                None,
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            reached = _key_text(path[:depth]) or "the document"
            raise ValueError(f"the file has no key {key} ({reached} has no {_key_text([part])})")
        node = child
    return node


def _key_text(path: list[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _scalar_text(value: Scalar, node: yaml.ScalarNode) -> tuple[str, Any]:
    """How to write ``value`` in place of ``node``, and what YAML will read back."""
    if not isinstance(value, str):
        return json.dumps(value), value
    plain = _plain_reading(value)
    if node.tag != _STR_TAG and plain is not None and type(plain[0]) is not str:
        return value, plain[0]
    if node.style is None and plain is not None and plain[0] == value:
        return value, value
    if node.style == "'" and "\n" not in value:
        return "'" + value.replace("'", "''") + "'", value
    return json.dumps(value, ensure_ascii=False), value


def _plain_reading(text: str) -> tuple[Any] | None:
    """What YAML reads from ``text`` written unquoted, or None if it cannot stand so."""
    if not text or text != text.strip() or "\n" in text:
        return None
    try:
        loaded = yaml.safe_load(f"value: {text}\n")
    except yaml.YAMLError:
        return None
    if not isinstance(loaded, dict) or set(loaded) != {"value"}:
        return None
    reading = loaded["value"]
    return None if isinstance(reading, dict | list) else (reading,)


def _assign(document: Any, path: list[str | int], value: Any) -> None:
    for part in path[:-1]:
        document = document[part]
    document[path[-1]] = value
