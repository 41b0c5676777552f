"""Source mappings: which objects and fields of a CRM become revleak change events.

A mapping file is one YAML document, validated like an SLO file (every problem
reported with the file, the line and the path inside the document)::

    apiVersion: revleak/v1
    kind: SourceMapping
    metadata:
      name: salesforce-default
    spec:
      source: salesforce              # salesforce | hubspot
      objects:
        Lead:                         # the CRM's object name (Salesforce entityName,
          object: lead                #   HubSpot object type); lead | opportunity
          fields:                     # source field: generic field, or a rule
            Email: email
            CreatedDate: {field: created_at, convert: time}
            IsConverted: {field: stage, convert: flag, value: Converted}
            Name: {field: name, join: [FirstName, LastName]}
          values:                     # per generic text field: source value -> revleak value
            stage:
              "Open - Not Contacted": New

Converters (``convert``; the default follows the generic field):

- ``text`` (text fields): a string; empty or blank is ``None``; at most
  :data:`~revleak.connectors.generic_json.MAX_TEXT_CHARS` characters.
- ``domain``: text reduced to a host name: ``https://www.Acme.com/about`` is ``acme.com``.
- ``flag``: a boolean (or ``"true"``/``"false"``); true sets the field to ``value``,
  false sets nothing.
- ``time`` (``created_at``, ``last_touch_at``): epoch milliseconds (a number or a
  string of digits), a date (``2026-03-02``, midnight UTC) or an ISO-8601 time.
- ``money`` (``value_usd``): a number or a numeric string, finite and not negative.

``join`` (Salesforce compound fields such as a lead's ``Name``) joins the listed
components with a space. When several source fields give the same generic field
in one change, the first one listed that gives a value wins. Value maps apply to
text results; a value not listed passes through unchanged.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from revleak.connectors.generic_json import MAX_TEXT_CHARS
from revleak.crm.events import TEXT_FIELDS, CrmObject, FieldValue
from revleak.slo.loader import Problem
from revleak.slo.spec import Metadata
from revleak.timefmt import datetime_to_ms
from revleak.yamlpaths import dotted_path, locate

SOURCES = ("salesforce", "hubspot")
TIME_FIELDS = ("created_at", "last_touch_at")
MONEY_FIELDS = ("value_usd",)
GENERIC_FIELDS = (*TEXT_FIELDS, *TIME_FIELDS, *MONEY_FIELDS)

Converter = Literal["text", "domain", "flag", "time", "money"]
_CONVERTERS: dict[str, tuple[Converter, ...]] = {
    **dict.fromkeys(TEXT_FIELDS, ("text", "domain", "flag")),
    **dict.fromkeys(TIME_FIELDS, ("time",)),
    **dict.fromkeys(MONEY_FIELDS, ("money",)),
}


class ValueProblemError(ValueError):
    """A source value that its converter cannot read; the message names the source field."""


class MappingError(ValueError):
    """A mapping file that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def _generic_field(name: str) -> str:
    if name not in GENERIC_FIELDS:
        raise ValueError(
            f"{name!r} is not a revleak field; map to one of {', '.join(GENERIC_FIELDS)}"
        )
    return name


def _revleak_object(name: str) -> str:
    if name not in {item.value for item in CrmObject}:
        raise ValueError(f"{name!r} is not a revleak object; use lead or opportunity")
    return name


GenericField = Annotated[str, Strict(), AfterValidator(_generic_field)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class FieldRule(_Model):
    """How one source field becomes one generic field (``Email: email`` is short for
    ``Email: {field: email}``)."""

    field: GenericField
    convert: Converter | None = None
    value: Annotated[str, Strict()] | None = Field(
        default=None, description="With convert: flag, what the field becomes when true."
    )
    join: tuple[Annotated[str, Strict()], ...] | None = Field(
        default=None, min_length=1, description="Components of a compound field, joined."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"field": data} if isinstance(data, str) else data

    @property
    def converter(self) -> Converter:
        return self.convert or _CONVERTERS[self.field][0]


class ObjectMapping(_Model):
    object: Annotated[str, Strict(), AfterValidator(_revleak_object)]
    type_id: Annotated[str, Strict()] | None = Field(
        default=None,
        description="HubSpot objectTypeId (0-1 contacts, 0-3 deals) of object.* webhooks.",
    )
    fields: dict[str, FieldRule] = Field(min_length=1)
    values: dict[str, dict[str, Annotated[str, Strict()]]] = Field(default_factory=dict)

    @property
    def crm_object(self) -> CrmObject:
        return CrmObject(self.object)

    def convert(self, source_field: str, raw: Any) -> tuple[str, FieldValue] | None:
        """The generic field and value of one source value; ``None`` sets nothing.

        Raises :class:`ValueProblemError` when the value cannot be read.
        """
        rule = self.fields[source_field]
        try:
            if rule.join is not None:
                raw = _joined(raw, rule.join)
            value = _convert(rule, raw)
        except ValueError as error:
            raise ValueProblemError(f"{source_field}: {error}") from None
        if value is _NOTHING:
            return None
        if isinstance(value, str):
            value = self.values.get(rule.field, {}).get(value, value)
        return rule.field, value


class MappingSpec(_Model):
    source: Literal["salesforce", "hubspot"]
    objects: dict[str, ObjectMapping] = Field(min_length=1)


class SourceMapping(_Model):
    api_version: Literal["revleak/v1"]
    kind: Literal["SourceMapping"]
    metadata: Metadata
    spec: MappingSpec

    def object_named(self, name: str) -> ObjectMapping | None:
        return self.spec.objects.get(name)

    def object_with_type_id(self, type_id: str) -> ObjectMapping | None:
        for mapping in self.spec.objects.values():
            if mapping.type_id == type_id:
                return mapping
        return None


def put(fields: dict[str, FieldValue], name: str, value: FieldValue) -> None:
    """Add a generic field to a change: the first source field that gives a value wins."""
    if fields.get(name) is None:
        fields[name] = value


# -- converters ------------------------------------------------------------------------------

_NOTHING: Any = object()  # a false flag: the field is left alone
_DIGITS = re.compile(r"^[0-9]+$")


def _kind(raw: Any) -> str:
    if isinstance(raw, bool):
        return "a boolean"
    if isinstance(raw, int | float):
        return "a number"
    if isinstance(raw, dict):
        return "an object"
    if isinstance(raw, list):
        return "a list"
    return type(raw).__name__


def _joined(raw: Any, components: tuple[str, ...]) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError(
            f"expected a compound field with {', '.join(components)}, got {_kind(raw)}"
        )
    parts = []
    for component in components:
        part = raw.get(component)
        if part is not None and not isinstance(part, str):
            raise ValueError(f"{component}: expected text, got {_kind(part)}")
        if part and part.strip():
            parts.append(part.strip())
    return " ".join(parts)


def _convert(rule: FieldRule, raw: Any) -> Any:
    converter = rule.converter
    if converter == "flag":
        return _flag(raw, rule.value)
    if converter == "time":
        return _time(raw)
    if converter == "money":
        return _money(raw)
    text = _text(raw)
    return _domain(text) if converter == "domain" and text is not None else text


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        hint = " (a compound field: map it with join)" if isinstance(raw, dict) else ""
        raise ValueError(f"expected text, got {_kind(raw)}{hint}")
    if len(raw) > MAX_TEXT_CHARS:
        raise ValueError(f"{len(raw)} characters; text is at most {MAX_TEXT_CHARS}")
    return raw if raw.strip() else None


def _domain(text: str) -> str | None:
    host = text.strip().casefold().split("://", 1)[-1]
    host = re.split(r"[/?#]", host, maxsplit=1)[0].rpartition("@")[2].partition(":")[0]
    host = host.removeprefix("www.").rstrip(".")
    return host or None


def _flag(raw: Any, value: str | None) -> Any:
    if raw is None or raw is False or raw == "false":
        return _NOTHING
    if raw is True or raw == "true":
        return value
    raise ValueError(f"expected true or false, got {raw!r}")


def _time(raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None
        if _DIGITS.match(text):
            return int(text)
        try:
            return datetime_to_ms(datetime.fromisoformat(text))
        except ValueError:
            pass
    raise ValueError(
        f"expected a time (epoch milliseconds, a date such as 2026-03-02 or an ISO-8601 "
        f"time such as 2026-03-02T10:30:00Z), got {raw!r}"
    )


def _money(raw: Any) -> float | None:
    if raw is None:
        return None
    amount: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        amount = float(raw)
    elif isinstance(raw, str):
        if not raw.strip():
            return None
        try:
            amount = float(raw.strip())
        except ValueError:
            amount = None
    if amount is None or not math.isfinite(amount):
        raise ValueError(f"expected an amount, got {raw!r}")
    if amount < 0:
        raise ValueError(f"an amount is not negative, got {raw!r}")
    return amount


# -- loading ---------------------------------------------------------------------------------

_DOCUMENT = TypeAdapter(SourceMapping)


def load_mapping(path: str | Path) -> SourceMapping:
    """Read and validate one mapping file; raise :class:`MappingError` on any error."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise MappingError(
            [Problem(file, None, "", f"cannot read file: {error.strerror}")]
        ) from None
    return parse_mapping(text, file=file)


def parse_mapping(text: str, *, file: str = "<string>") -> SourceMapping:
    try:
        nodes = [node for node in yaml.compose_all(text, Loader=yaml.SafeLoader) if node]
        documents = [document for document in yaml.safe_load_all(text) if document is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(error, "problem", None) or str(error)
        raise MappingError([Problem(file, line, "", f"not valid YAML: {reason}")]) from None
    if len(documents) != 1 or len(nodes) != 1:
        raise MappingError(
            [Problem(file, None, "", f"a mapping file holds one document, found {len(documents)}")]
        )
    raw, node = documents[0], nodes[0]
    if not isinstance(raw, dict):
        raise MappingError(
            [Problem(file, 1, "", "not a mapping of apiVersion, kind, metadata and spec")]
        )
    try:
        mapping = _DOCUMENT.validate_python(raw)
    except ValidationError as error:
        raise MappingError(
            [
                _problem(file, node, tuple(detail["loc"]), _message(detail))
                for detail in error.errors()
            ]
        ) from None
    problems = [_problem(file, node, path, message) for path, message in _checks(mapping)]
    if problems:
        raise MappingError(problems)
    return mapping


@functools.cache
def default_mapping(format_name: str) -> SourceMapping:
    """The bundled mapping of a source (``salesforce`` or ``hubspot``)."""
    if format_name not in SOURCES:
        raise ValueError(f"no default mapping for {format_name!r}; sources: {', '.join(SOURCES)}")
    name = f"{format_name}.yaml"
    text = (resources.files("revleak.connectors.mappings") / name).read_text(encoding="utf-8")
    mapping = parse_mapping(text, file=f"revleak/connectors/mappings/{name}")
    if mapping.spec.source != format_name:
        raise ValueError(f"mappings/{name} is a {mapping.spec.source} mapping")
    return mapping


def mapping_for(source: str, mapping: SourceMapping | None) -> SourceMapping:
    """``mapping``, or the bundled one of ``source``; a mapping of another source is refused."""
    mapping = mapping or default_mapping(source)
    if mapping.spec.source != source:
        raise ValueError(f"{mapping.metadata.name} maps {mapping.spec.source}, not {source}")
    return mapping


def _checks(mapping: SourceMapping) -> list[tuple[tuple[Any, ...], str]]:
    """What the schema alone cannot say: rules that must agree with each other."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    source = mapping.spec.source
    type_ids: dict[str, str] = {}
    for name, obj in mapping.spec.objects.items():
        where = ("spec", "objects", name)
        if obj.type_id is not None:
            if source != "hubspot":
                problems.append(
                    ((*where, "typeId"), "typeId is for HubSpot's generic object.* webhooks")
                )
            elif obj.type_id in type_ids:
                problems.append(
                    ((*where, "typeId"), f"typeId {obj.type_id} is also {type_ids[obj.type_id]}'s")
                )
            type_ids.setdefault(obj.type_id, name)
        mapped: set[str] = set()
        for field_name, rule in obj.fields.items():
            at = (*where, "fields", field_name)
            mapped.add(rule.field)
            allowed = _CONVERTERS[rule.field]
            if rule.convert is not None and rule.convert not in allowed:
                problems.append(
                    (
                        (*at, "convert"),
                        f"{rule.field} takes convert: {' or '.join(allowed)}, not {rule.convert}",
                    )
                )
            if rule.converter == "flag" and rule.value is None:
                problems.append((at, "convert: flag needs value: (the field's value when true)"))
            if rule.value is not None and rule.converter != "flag":
                problems.append(((*at, "value"), "value is only for convert: flag"))
            if rule.join is not None:
                if source != "salesforce":
                    problems.append(((*at, "join"), "join is for Salesforce compound fields"))
                elif rule.converter != "text":
                    problems.append(((*at, "join"), "join gives text: use it on a text field"))
        for field_name in obj.values:
            at = (*where, "values", field_name)
            if field_name not in GENERIC_FIELDS:
                problems.append(
                    (
                        at,
                        f"value map on {field_name!r}, which is not a revleak field "
                        f"(value maps are for {', '.join(TEXT_FIELDS)})",
                    )
                )
            elif field_name not in TEXT_FIELDS:
                problems.append((at, f"value maps are for text fields; {field_name} is not text"))
            elif field_name not in mapped:
                problems.append(
                    (at, f"value map on {field_name}, but no field of {name} maps to it")
                )
    return problems


def _problem(file: str, node: yaml.Node, path: tuple[Any, ...], message: str) -> Problem:
    line, path = locate(node, path)
    return Problem(file, line, dotted_path(path), message)


def _message(detail: Mapping[str, Any]) -> str:
    kind = detail["type"]
    location = detail["loc"]
    if kind == "extra_forbidden":
        return "unknown field (check its spelling and indentation)"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error" and location and location[-1] == "apiVersion":
        return 'apiVersion must be "revleak/v1"'
    if kind == "literal_error" and location and location[-1] == "kind":
        return "kind must be SourceMapping"
    return str(detail["msg"]).removeprefix("Value error, ")
