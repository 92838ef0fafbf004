"""Declared file formats: the pieces every loader of YAML files shares.

Scenario files (``scenario``) and runbook metadata (``runbook``) are declared once, as
pydantic models built from what is here: the base ``Spec`` (strict types, unknown keys
refused by name), field types that carry their check, their message and their JSON
Schema (``OneOf``, ``Between``, ``Seconds``; ``Name``, ``Identifier``, ``Person``,
``Line``, ``Text``, ``Labels``), ``read_yaml`` (a file that cannot be read, is not
UTF-8 text, is not YAML or is absurdly nested becomes a ``ValidationError`` naming
the file), ``first_error`` (pydantic's first error, in words, at its dotted field) and
``json_schema`` (what ``gameday schema`` prints for editors).
"""

from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic import ValidationError as PydanticError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from gameday.core.errors import ValidationError

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$", re.ASCII)
# Prometheus alert and label names; also runbook parameter names (Ansible variables).
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# People, one rule everywhere (scenario rosters, moves, --as, gameday user, signing in):
# the handle a person signs in to gameday serve with. The same as NAME, written apart so
# that messages can tell a person from a name.
PERSON = re.compile(r"^[a-z0-9](?:[a-z0-9_.-]{0,62})$")
PERSON_RULE = "lowercase letters, digits and . _ -, at most 63, as people sign in"
LINE = r"^[^\x00-\x1f\x7f]*$"  # one line, no control characters
TEXT = r"^[^\x00-\x08\x0b-\x1f\x7f]*$"  # newlines and tabs allowed
DAY = 86_400.0
MAX_BYTES = 1 << 20  # a scenario or runbook larger than this is not one


def parse_duration(value: Any) -> float | None:
    """Seconds from ``500ms``, ``2s``, ``5m``, ``1h`` or a number of seconds; None if
    it is none of those (or negative)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if value < 0:
            return None
        try:
            return float(value)
        except OverflowError:  # an integer past float's range: longer than any range
            return float("inf")
    if not isinstance(value, str):
        return None
    m = DURATION.match(value.strip())
    if not m:
        return None
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * scale


# -- field types: each carries its check, its message and its JSON Schema -------------------
class _Short(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        try:
            return super().repr_int(x, level)
        except ValueError:  # past Python's limit on printing integers in decimal
            return f"<an integer of {x.bit_length()} bits>"


_repr = _Short()
_repr.maxstring = _repr.maxother = 40
_repr.maxlist = _repr.maxdict = 4


def quote(value: Any) -> str:
    """A value as a message quotes it: repr (control characters escaped), cut short."""
    return _repr.repr(value)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def human_span(seconds: float) -> str:
    """500ms, 2s, 5m, 24h: how a scenario would write it."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def invalid(kind: str, message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, ctx or None)


@dataclass(frozen=True)
class OneOf:
    """A string that must be one of ``choices`` (an ``enum`` in the schema)."""

    choices: tuple[str, ...]

    def check(self, value: str) -> str:
        if value not in self.choices:
            raise invalid("one_of", "must be one of {choices}, not {value}",
                          choices=", ".join(self.choices), value=quote(value))
        return value

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {**handler(schema), "enum": list(self.choices)}


class _CheckedFirst:
    """A field type whose ``check`` sees the raw value before pydantic's own type."""

    def check(self, value: Any) -> Any:
        raise NotImplementedError

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self.check, handler(source))


@dataclass(frozen=True)
class Between(_CheckedFirst):
    """A number (not a boolean) from ``low`` to ``high``, both included."""

    low: float
    high: float

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not self.low <= value <= self.high:
            raise invalid("number", "must be a number between {low} and {high}, not {value}",
                          low=_number(self.low), high=_number(self.high), value=quote(value))
        return value  # an int field stays one; a float field takes an int as is

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "number", "minimum": self.low, "maximum": self.high}


@dataclass(frozen=True)
class Seconds(_CheckedFirst):
    """A duration (``500ms``, ``2s``, ``5m``, ``1h`` or a number of seconds) up to
    ``high``, and longer than ``low`` (or from ``low`` on, when ``inclusive``)."""

    low: float = 0.0
    high: float = DAY
    inclusive: bool = False

    def check(self, value: Any) -> float:
        seconds = parse_duration(value)
        if seconds is None:
            raise invalid("duration", "must be a duration like 500ms, 2s or 5m, not {value}",
                          value=quote(value))
        low_ok = seconds >= self.low if self.inclusive else seconds > self.low
        if not low_ok or seconds > self.high:
            raise invalid("duration_range", "must be between {low} and {high}, not {value}"
                          if self.inclusive else
                          "must be longer than {low} and at most {high}, not {value}",
                          low=human_span(self.low), high=human_span(self.high),
                          value=quote(value))
        return seconds

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        low = {"minimum" if self.inclusive else "exclusiveMinimum": self.low}
        return {"anyOf": [{"type": "number", **low, "maximum": self.high},
                          {"type": "string", "pattern": DURATION.pattern}]}


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _scalar(value: Any) -> str:
    if not isinstance(value, str | int | float):
        raise invalid("scalar", "must be a string or a number, not {value}", value=quote(value))
    return str(value)


Name = Annotated[str, StringConstraints(pattern=NAME.pattern)]
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER.pattern)]
Person = Annotated[str, StringConstraints(pattern=PERSON.pattern)]
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500,
                                        pattern=LINE)]
Text = Annotated[str, StringConstraints(max_length=20_000, pattern=TEXT)]
Scalar = Annotated[str, BeforeValidator(_scalar),
                   WithJsonSchema({"type": ["string", "number", "boolean"]})]
People = Annotated[list[Person], BeforeValidator(_listify,
                                                 json_schema_input_type=Person | list[Person])]
Rotation = Annotated[list[Person], Field(min_length=1), BeforeValidator(
    _listify, json_schema_input_type=Person | Annotated[list[Person], Field(min_length=1)])]
Labels = dict[Identifier, Scalar]
RunTime = Annotated[float, Seconds()]  # more than zero, at most a day

# Words for the patterns above, in messages.
_PATTERNS = {
    NAME.pattern: "a lowercase name (a-z, 0-9 and _ . -, 63 at most)",
    IDENTIFIER.pattern: "letters, digits and _, not starting with a digit (128 at most)",
    PERSON.pattern: f"a person's handle ({PERSON_RULE})",
    LINE: "one line of text, without control characters",
    TEXT: "text without control characters (newlines and tabs are fine)",
}


class Spec(BaseModel):
    """Base of the file models: strict types, defaults checked too, and an unknown key
    refused by name, listing the known ones."""

    model_config = ConfigDict(strict=True, extra="forbid", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = sorted(f.alias or name for name, f in cls.model_fields.items())
            for key in data:
                if key not in known:
                    raise invalid("unknown_field", "unknown field (expected one of {known})",
                                  key=str(key).encode("utf-8", "backslashreplace").decode(),
                                  known=", ".join(known))
        return data


# -- reading files, reporting errors ---------------------------------------------------------
def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``. Whatever makes that impossible (no file, a path
    the OS refuses, a binary or UTF-16 file, broken or absurdly nested YAML) becomes a
    ValidationError naming the file."""
    return parse_yaml(read_bytes(path), str(path))


def read_bytes(path: Path) -> bytes:
    """A gameday file's bytes, at most ``MAX_BYTES``; ValidationError naming it if it
    cannot be read."""
    file = str(path)
    try:
        if path.exists() and not path.is_dir() and not path.is_file():  # a FIFO would hang
            raise ValidationError("is not a regular file", file=file)
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ValidationError("no such file", file=file) from None
    except IsADirectoryError:
        raise ValidationError("is a directory, not a file", file=file) from None
    except (OSError, ValueError) as exc:  # too long, not allowed, an embedded NUL...
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValidationError(f"cannot be read: {reason}", file=file) from None
    if len(data) > MAX_BYTES:
        raise ValidationError(f"is larger than {MAX_BYTES >> 10} KiB: not a gameday file",
                              file=file)
    return data


class _Strict(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (which YAML would
    settle silently, the last one winning). Checked on the document as written, before
    anything is built: merging (``<<: *anchor``) rewrites mappings as it builds them,
    and a key a merge brings in may be given again on purpose."""

    def construct_document(self, node: yaml.Node) -> Any:
        seen: set[int] = set()
        todo = [node]
        while todo:
            current = todo.pop()
            if id(current) in seen:  # an alias: the anchored node, checked once
                continue
            seen.add(id(current))
            if isinstance(current, yaml.MappingNode):
                keys: set[tuple[str, str]] = set()
                for key, value in current.value:
                    todo += [key, value]
                    if not isinstance(key, yaml.ScalarNode) or key.tag == MERGE:
                        continue
                    if (key.tag, key.value) in keys:
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping", current.start_mark,
                            f"found the key {key.value!r} twice", key.start_mark)
                    keys.add((key.tag, key.value))
            elif isinstance(current, yaml.SequenceNode):
                todo += current.value
        return super().construct_document(node)


MERGE = "tag:yaml.org,2002:merge"


def parse_yaml(data: bytes, file: str) -> Any:
    """``data`` (read from ``file``) as one YAML document."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"is not UTF-8 text (byte {exc.start}): binary, or UTF-16?",
                              file=file) from None
    if "\x00" in text:
        raise ValidationError("is not UTF-8 text (it holds NUL bytes): binary, or UTF-16?",
                              file=file)
    try:
        return yaml.load(text, Loader=_Strict)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ValidationError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                              file=file, field=f"line {mark.line + 1}" if mark else None) \
            from None
    except RecursionError:
        raise ValidationError("not valid YAML: nested too deeply", file=file) from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date like 2026-02-30
        raise ValidationError(f"not valid YAML: {exc}", file=file) from None


def first_error(exc: PydanticError, file: Path | str,
                prefix: tuple[str, ...] = ()) -> ValidationError:
    """pydantic's first error as a ValidationError: the dotted field (``prefix``, then
    where in the validated data) and a message in words."""
    err = exc.errors(include_url=False)[0]
    ctx = err.get("ctx") or {}
    loc = [*prefix, *(str(p) for p in err["loc"] if p != "[key]")]
    if "key" in ctx:  # checked by the mapping that holds it (unknown, required if ...)
        loc.append(str(ctx["key"]))
    return ValidationError(_message(err["type"], err.get("input"), ctx, err["msg"]),
                           file=str(file), field=".".join(loc) or "(top level)")


def _message(kind: str, value: Any, ctx: dict[str, Any], default: str) -> str:
    shown = quote(value)
    if kind == "missing":
        return "is required"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping, not {shown}"
    if kind == "list_type":
        return f"must be a list, not {shown}"
    if kind == "string_type":
        return f"must be a string, not {shown}"
    if kind == "bool_type":
        return f"must be true or false, not {shown}"
    if kind == "too_short":
        return "must not be empty"
    if kind == "string_too_short":
        return "must be a non-empty string"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        what = _PATTERNS.get(pattern)
        return f"must be {what}, not {shown}" if what else f"{shown} must match {pattern}"
    if kind == "extra_forbidden":
        return "unknown field"
    return default


def json_schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    """``model`` as a JSON Schema (draft 2020-12) document. Mappings whose keys are a
    closed set also list them as properties, so editors can complete them; keys that
    must match a pattern allow no others."""
    schema = model.model_json_schema(by_alias=True)
    schema["title"] = title

    def expand(node: Any) -> None:
        if isinstance(node, dict):
            keys = (node.get("propertyNames") or {}).get("enum")
            if keys and isinstance(node.get("additionalProperties"), dict):
                node["properties"] = {k: node["additionalProperties"] for k in keys}
                node["additionalProperties"] = False
            if "patternProperties" in node:  # keys must match one of the patterns
                node.setdefault("additionalProperties", False)
            if isinstance(node.get("description"), str):  # docstrings, unwrapped
                node["description"] = " ".join(node["description"].split())
            for child in list(node.values()):
                expand(child)
        elif isinstance(node, list):
            for child in node:
                expand(child)

    expand(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
