"""Fix packs: the YAML DSL, its loader, and the bundled catalogue (one YAML file per pack).

A pack says which incidents it answers (``triggers``: label matchers), what an operator may
tune (``inputs``), how far it may reach (``guards``) and what it does (``steps``, one action
each). Loading checks everything that can be checked before an incident exists, templates
included, and reports every problem of every file at once with its file, line, field path
and a hint.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from revleak.remediation.model import JsonScalar
from revleak.remediation.templating import is_template, template_problems
from revleak.slo.catalog import Rule
from revleak.timefmt import parse_duration
from revleak.yamlpaths import dotted_path, locate

API_VERSION = "revleak/v1"
InputType = Literal["string", "int", "duration", "bool"]
RecordObject = Literal["lead", "opportunity"]
_SLUG = r"^[a-z0-9][a-z0-9-]*$"
_STEP_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
_INPUT_NAME = r"^[a-z_][a-z0-9_]*$"
# What every template may read; a step that targets records may also read ``record``.
PACK_VARIABLES = frozenset({"incident", "labels", "annotations", "inputs", "records", "now"})


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


def _duration_or_template(value: str) -> str:
    if not is_template(value):
        parse_duration(value)
    return value


class Metadata(_Model):
    id: str = Field(pattern=_SLUG)
    name: str = Field(min_length=1)
    description: str = ""


class InputSpec(_Model):
    """A value an operator may set when planning; without ``default`` it is required."""

    type: InputType
    default: str | int | bool | None = None
    description: str = ""

    @model_validator(mode="after")
    def _default_has_type(self) -> InputSpec:
        if self.default is not None:
            check_input(self.type, self.default)
        return self


class RecordFilter(_Model):
    """Which records qualify: every given condition must hold.

    ``fields`` compares record fields for equality (a list: any of its values); ``null``
    matches an empty field, absent or ``""``.
    """

    rules: tuple[Rule, ...] | None = None
    objects: tuple[RecordObject, ...] | None = None
    min_impact_usd: float = Field(default=0, ge=0)
    fields: dict[str, JsonScalar | tuple[JsonScalar, ...]] = Field(default_factory=dict)

    def admits_rule(self, rule: str, impact_usd: float) -> bool:
        """Whether a blast-radius entry (one rule of one record) qualifies."""
        return (self.rules is None or rule in self.rules) and impact_usd >= self.min_impact_usd

    def admits_fields(self, obj: str, fields: Mapping[str, JsonScalar]) -> bool:
        """Whether a record's object and fields qualify, whatever its rules."""
        if self.objects is not None and obj not in self.objects:
            return False
        return all(_field_matches(fields.get(name), wanted) for name, wanted in self.fields.items())

    def admits(
        self, obj: str, fields: Mapping[str, JsonScalar], rules: Iterable[str], impact_usd: float
    ) -> bool:
        """Whether a record with these violated ``rules`` and ``impact_usd`` qualifies."""
        return self.admits_fields(obj, fields) and any(
            self.admits_rule(rule, impact_usd) for rule in rules
        )


def _field_matches(value: JsonScalar, wanted: JsonScalar | tuple[JsonScalar, ...]) -> bool:
    choices = wanted if isinstance(wanted, tuple) else (wanted,)
    return any(value in (None, "") if choice is None else value == choice for choice in choices)


class Guards(_Model):
    max_blast_radius: int | None = Field(default=None, ge=1)
    records: RecordFilter = Field(default_factory=RecordFilter)


class NoParams(_Model):
    pass


class NextStepParams(_Model):
    text: str = Field(min_length=1)


class TaskParams(_Model):
    subject: str = Field(min_length=1)
    due: str
    owner: str | None = None  # default: the record's owner once earlier steps have run

    @field_validator("due")
    @classmethod
    def _duration(cls, value: str) -> str:
        return _duration_or_template(value)


class TimerParams(_Model):
    within: str

    @field_validator("within")
    @classmethod
    def _duration(cls, value: str) -> str:
        return _duration_or_template(value)


class SlackParams(_Model):
    channel: str = Field(min_length=1)
    text: str = Field(min_length=1)


class EmailParams(_Model):
    to: str | None = None  # default: the record's email, if it has one
    subject: str = Field(min_length=1)
    body: str = Field(min_length=1)


class YamlAssignment(_Model):
    key: str = Field(min_length=1)
    value: str | int | float | bool


class GitopsParams(_Model):
    repository: str = Field(min_length=1)
    path: str = Field(min_length=1)
    set_: YamlAssignment = Field(alias="set")
    message: str | None = None


class _Step(_Model):
    id: str = Field(pattern=_STEP_ID)
    action: str


class RecordStep(_Step):
    """A step run once per target record that passes its ``where``."""

    where: RecordFilter | None = None


class ReassignOwnerStep(RecordStep):
    action: Literal["reassign_owner"]
    with_: NoParams = Field(default_factory=NoParams, alias="with")


class AddNextStepStep(RecordStep):
    action: Literal["add_next_step"]
    with_: NextStepParams = Field(alias="with")


class WriteBackTaskStep(RecordStep):
    action: Literal["write_back_task"]
    with_: TaskParams = Field(alias="with")


class SetSlaTimerStep(RecordStep):
    action: Literal["set_sla_timer"]
    with_: TimerParams = Field(alias="with")


class MergeDuplicatesStep(RecordStep):
    action: Literal["merge_duplicates"]
    with_: NoParams = Field(default_factory=NoParams, alias="with")


class DraftEmailStep(RecordStep):
    action: Literal["draft_email"]
    with_: EmailParams = Field(alias="with")


class NotifySlackStep(_Step):
    action: Literal["notify_slack"]
    with_: SlackParams = Field(alias="with")


class GitopsChangeStep(_Step):
    action: Literal["gitops_change"]
    with_: GitopsParams = Field(alias="with")


Step = Annotated[
    ReassignOwnerStep
    | AddNextStepStep
    | WriteBackTaskStep
    | SetSlaTimerStep
    | MergeDuplicatesStep
    | DraftEmailStep
    | NotifySlackStep
    | GitopsChangeStep,
    Field(discriminator="action"),
]
ACTIONS = (
    "reassign_owner",
    "add_next_step",
    "write_back_task",
    "set_sla_timer",
    "merge_duplicates",
    "draft_email",
    "notify_slack",
    "gitops_change",
)

Trigger = dict[str, str | tuple[str, ...]]


class FixPackSpec(_Model):
    triggers: tuple[Trigger, ...] = ()
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    guards: Guards = Field(default_factory=Guards)
    steps: tuple[Step, ...] = Field(min_length=1)

    @field_validator("triggers")
    @classmethod
    def _matchers_name_labels(cls, triggers: tuple[Trigger, ...]) -> tuple[Trigger, ...]:
        for trigger in triggers:
            if not trigger:
                raise ValueError("an empty matcher would match every incident")
        return triggers

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, inputs: dict[str, InputSpec]) -> dict[str, InputSpec]:
        for name in inputs:
            if not re.match(_INPUT_NAME, name):
                raise ValueError(f"input name {name!r} must be lower_snake_case")
        return inputs

    @field_validator("steps")
    @classmethod
    def _unique_ids(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        seen: set[str] = set()
        for step in steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
        return steps


class FixPack(_Model):
    api_version: Literal["revleak/v1"] = Field(alias="apiVersion")
    kind: Literal["FixPack"]
    metadata: Metadata
    spec: FixPackSpec

    @property
    def id(self) -> str:
        return self.metadata.id

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def description(self) -> str:
        return self.metadata.description

    @property
    def content_hash(self) -> str:
        """sha256 of the validated pack as canonical JSON: formatting and defaults left
        implicit do not change it, any change of meaning does."""
        canonical = orjson.dumps(
            self.model_dump(mode="json", by_alias=True), option=orjson.OPT_SORT_KEYS
        )
        return hashlib.sha256(canonical).hexdigest()

    @property
    def targets_records(self) -> bool:
        return any(isinstance(step, RecordStep) for step in self.spec.steps)

    def specificity(self, labels: Mapping[str, str]) -> int | None:
        """How many labels the best matching trigger names, or None when none matches."""
        matched = [
            len(trigger)
            for trigger in self.spec.triggers
            if all(_label_matches(labels.get(name), wanted) for name, wanted in trigger.items())
        ]
        return max(matched) if matched else None


def _label_matches(value: str | None, wanted: str | tuple[str, ...]) -> bool:
    return value is not None and (value in wanted if isinstance(wanted, tuple) else value == wanted)


def check_input(kind: InputType, value: object) -> str | int | bool:
    """``value`` if it is a valid ``kind``; ``ValueError`` naming the expected form."""
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "duration" and isinstance(value, str):
        parse_duration(value)
        return value
    expected = {
        "bool": "true or false",
        "int": "a whole number",
        "string": "text",
        "duration": "a duration such as 15m, 1h or 2d",
    }[kind]
    raise ValueError(f"{value!r} is not {expected}")


@dataclass(frozen=True, slots=True)
class PackProblem:
    file: str
    line: int | None
    where: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        position = f"{self.file}:{self.line}" if self.line else self.file
        text = (
            f"{position}: {self.where}: {self.message}"
            if self.where
            else f"{position}: {self.message}"
        )
        return f"{text} (hint: {self.hint})" if self.hint else text


class PackError(ValueError):
    """Fix-pack or roster files that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[PackProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Fix packs by id, sorted by id."""

    packs: tuple[FixPack, ...]

    def get(self, pack_id: str) -> FixPack:
        for pack in self.packs:
            if pack.id == pack_id:
                return pack
        raise KeyError(pack_id)

    def for_labels(self, labels: Mapping[str, str]) -> list[FixPack]:
        """The packs whose triggers match ``labels``, most specific first, then by id."""
        ranked = [
            (specificity, pack)
            for pack in self.packs
            if (specificity := pack.specificity(labels)) is not None
        ]
        return [pack for _, pack in sorted(ranked, key=lambda item: (-item[0], item[1].id))]


def load_catalogue(folder: Path | None = None) -> Catalogue:
    """Every ``*.yaml`` pack in ``folder``, or the bundled packs when None."""
    root: Traversable = folder if folder is not None else resources.files(__name__)
    files = sorted(
        (entry for entry in root.iterdir() if entry.name.endswith(".yaml")),
        key=lambda entry: entry.name,
    )
    packs: list[FixPack] = []
    problems: list[PackProblem] = []
    first_file: dict[str, str] = {}
    for entry in files:
        name = str(entry) if folder is not None else f"revleak.remediation.packs/{entry.name}"
        try:
            pack = parse_pack(entry.read_text(encoding="utf-8"), file=name)
        except PackError as error:
            problems.extend(error.problems)
            continue
        if pack.id in first_file:
            problems.append(
                PackProblem(
                    name,
                    None,
                    "metadata.id",
                    f"pack id {pack.id!r} is already used by {first_file[pack.id]}",
                    "each pack needs its own id",
                )
            )
            continue
        first_file[pack.id] = name
        packs.append(pack)
    if problems:
        raise PackError(problems)
    return Catalogue(tuple(sorted(packs, key=lambda pack: pack.id)))


def load_pack(path: Path) -> FixPack:
    """Read and validate one pack file; raise :class:`PackError` on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PackError(
            [PackProblem(str(path), None, "", f"cannot read: {error.strerror}")]
        ) from None
    return parse_pack(text, file=str(path))


def parse_pack(text: str, *, file: str = "<string>") -> FixPack:
    node, raw = _parse_yaml(text, file)
    if not isinstance(raw, dict):
        raise PackError(
            [
                PackProblem(
                    file, 1, "", "a fix pack is a mapping of apiVersion, kind, metadata, spec"
                )
            ]
        )
    try:
        pack = FixPack.model_validate(raw)
    except ValidationError as error:
        raise PackError(_validation_problems(file, node, raw, error)) from None
    problems = [
        PackProblem(file, locate(node, path)[0], dotted_path(path), message, hint)
        for path, message, hint in _template_problems(pack)
    ]
    if problems:
        raise PackError(problems)
    return pack


class Roster(_Model):
    """Owners who may take records of each region (``"*"``: any region), in rotation order."""

    regions: dict[str, tuple[Annotated[str, Field(min_length=1)], ...]] = Field(min_length=1)

    @field_validator("regions")
    @classmethod
    def _owners(cls, regions: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        problems = [f"region {region!r} has no owners" for region, o in regions.items() if not o]
        problems += [
            f"region {region!r} lists an owner twice"
            for region, owners in regions.items()
            if len(set(owners)) != len(owners)
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return regions


def load_roster(path: Path | None = None) -> dict[str, tuple[str, ...]]:
    """The roster file's regions (the bundled ``roster.yaml`` when None)."""
    source: Traversable = (
        path if path is not None else resources.files("revleak.remediation") / "roster.yaml"
    )
    file = str(path) if path is not None else "revleak.remediation/roster.yaml"
    node, raw = _parse_yaml(source.read_text(encoding="utf-8"), file)
    try:
        return Roster.model_validate(raw).regions
    except ValidationError as error:
        raise PackError(_validation_problems(file, node, raw, error)) from None


def _parse_yaml(text: str, file: str) -> tuple[yaml.Node, Any]:
    try:
        documents = [node for node in yaml.compose_all(text, Loader=yaml.SafeLoader) if node]
        raw = yaml.safe_load(text) if len(documents) == 1 else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(error, "problem", None) or str(error)
        raise PackError([PackProblem(file, line, "", f"not valid YAML: {reason}")]) from None
    if len(documents) != 1:
        raise PackError(
            [PackProblem(file, None, "", f"holds {len(documents)} YAML documents", "one per file")]
        )
    return documents[0], raw


def _validation_problems(
    file: str, node: yaml.Node, raw: Any, error: ValidationError
) -> list[PackProblem]:
    """One problem per field: the alternatives of a union (text or a list) are one problem,
    and a list's length is not a problem when its items are."""
    details = [(_document_path(raw, tuple(d["loc"])), d) for d in error.errors()]
    found: dict[tuple[Any, ...], tuple[list[str], str]] = {}
    for path, detail in details:
        if detail["type"] == "too_short" and any(
            len(other) > len(path) and other[: len(path)] == path for other, _ in details
        ):
            continue
        message, hint = _explain(detail, path)
        messages, _ = found.setdefault(path, ([], hint))
        if message not in messages:
            messages.append(message)
    return [
        PackProblem(file, locate(node, path)[0], dotted_path(path), " or ".join(messages), hint)
        for path, (messages, hint) in found.items()
    ]


def _document_path(raw: Any, location: tuple[Any, ...]) -> tuple[Any, ...]:
    """The error's location in the document. Pydantic adds names that are not keys of the
    file: each step's action (the union tag), and the alternative of a union that failed
    (``str``, ``tuple[str, ...]``) below a plain value."""
    path: list[Any] = []
    for part in location:
        if isinstance(raw, dict):
            if part not in raw and raw.get("action") == part:
                continue
            path.append(part)
            raw = raw.get(part)
        elif isinstance(raw, list) and isinstance(part, int):
            path.append(part)
            raw = raw[part] if 0 <= part < len(raw) else None
        elif raw is None:
            path.append(part)
        else:
            break
    return tuple(path)


def _explain(detail: Any, path: tuple[Any, ...]) -> tuple[str, str]:
    kind = detail["type"]
    message = str(detail["msg"]).removeprefix("Value error, ")
    last = path[-1] if path else ""
    if kind == "extra_forbidden":
        if last == "where":
            return "this action runs once, not per record", "remove where"
        return "unknown field", "check its spelling and indentation"
    if kind == "missing":
        return "required field is missing", ""
    if kind == "union_tag_invalid":
        return f"unknown action {detail['input'].get('action')!r}", f"one of {', '.join(ACTIONS)}"
    if kind == "union_tag_not_found":
        return "a step needs an action", f"one of {', '.join(ACTIONS)}"
    if kind == "literal_error" and last == "apiVersion":
        return f"apiVersion must be {API_VERSION!r}", ""
    if kind == "literal_error" and last == "kind":
        return "kind must be 'FixPack'", ""
    if kind == "string_pattern_mismatch" and last == "id":
        return message, "lower-case letters, digits and dashes, e.g. rapid-response"
    if last == "type" and "inputs" in path:
        return message, "input types are string, int, duration, bool"
    if "triggers" in path:
        return message, "a label value is text or a list of text; quote numbers"
    return message, ""


def _template_problems(pack: FixPack) -> list[tuple[tuple[Any, ...], str, str]]:
    inputs = set(pack.spec.inputs)
    problems: list[tuple[tuple[Any, ...], str, str]] = []
    for position, step in enumerate(pack.spec.steps):
        names = PACK_VARIABLES | {"record"} if isinstance(step, RecordStep) else PACK_VARIABLES
        params = step.with_.model_dump(by_alias=True, exclude_none=True)
        for path, value in _strings(params, ("spec", "steps", position, "with")):
            for message in template_problems(value, names=names, inputs=inputs):
                hint = (
                    f"{step.action} runs once: use records, not record"
                    if "{{ record }}" in message
                    else ""
                )
                problems.append((path, message, hint))
    return problems


def _strings(value: Any, path: tuple[Any, ...]) -> Iterable[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
