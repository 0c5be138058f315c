"""A small typed decoder that mirrors Go's yaml.v2 ``UnmarshalStrict`` into Alertmanager's structs.

Theory of operation. Each Go type of the config is described by a *kind* (see
:mod:`daemon.config.schema`): strings, bools, ints, custom scalars (durations, URLs,
regexes …), lists, maps and structs. Decoding walks the PyYAML node tree in document
order, as yaml.v2 does, and yields plain Python values: a struct becomes a ``dict``
holding every field (defaults first, then what the file says).

Rules copied from yaml.v2, because they decide *which* error an operator sees:

* Type problems (unknown or repeated keys, a list where a string belongs, …) are
  collected and reported together as ``yaml: unmarshal errors:`` at the end.
* A failing custom check (``UnmarshalYAML`` in Go, ``validate`` here) stops decoding
  at once with its own message.
* A struct whose subtree produced type problems skips its own check, exactly like a Go
  ``UnmarshalYAML`` that returns early when ``unmarshal(plain)`` failed.
* A ``null`` value never reaches a custom check: the field keeps its zero value.

Every decoded key's line is recorded under its dotted path (``route.routes[0].receiver``)
so later checks can point at the right place.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

import attrs
import yaml

from daemon.config.errors import ConfigError
from daemon.config.yamlsource import (
    BOOL,
    FLOAT,
    INT,
    MERGE,
    is_null,
    line_of,
    needs_quotes,
    plain_bool,
    plain_int,
    tag_of,
)
from daemon.gocompat.strconv import go_quote

Obj = dict[str, Any]

_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_NULL_TAG = "tag:yaml.org,2002:null"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"


class Invalid(Exception):
    """Raised by parse functions and struct checks: Alertmanager's message, and the
    offending key relative to the value being checked (None: the value itself)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key


def join_path(path: str, key: str) -> str:
    if not key:
        return path
    if not path or key.startswith("["):
        return path + key
    return f"{path}.{key}"


class Decoder:
    """Decoding state: collected type problems and the line of every key seen."""

    def __init__(self) -> None:
        self.type_errors: list[tuple[str, int, str]] = []
        self.positions: dict[str, int] = {}

    def type_error(self, node: yaml.Node, into: str, path: str) -> None:
        tag = tag_of(node)
        shown = ""
        if isinstance(node, yaml.ScalarNode):
            value = str(node.value)
            shown = f" `{value[:7]}...`" if len(value) > 10 else f" `{value}`"
        line = line_of(node)
        self.type_errors.append(
            (f"line {line}: cannot unmarshal !!{tag}{shown} into {into}", line, path)
        )

    def fail(self, message: str, node: yaml.Node, path: str) -> NoReturn:
        raise ConfigError(message, line=line_of(node), key=path or None)

    def unmarshal_errors(self) -> ConfigError:
        messages = [m for m, _, _ in self.type_errors]
        _, line, key = self.type_errors[0]
        return ConfigError(
            "yaml: unmarshal errors:\n  " + "\n  ".join(messages), line=line, key=key or None
        )


# --- emission helpers (yaml.v2's Marshal, through PyYAML's libyaml-derived emitter) ----


def str_node(value: str) -> yaml.Node:
    style: str | None = None
    if "\n" in value:
        style = "|"
    elif needs_quotes(value):
        style = '"'
    return yaml.ScalarNode(_STR_TAG, value, style=style)


def int_node(value: int) -> yaml.Node:
    return yaml.ScalarNode(_INT_TAG, str(value))


def bool_node(value: bool) -> yaml.Node:
    return yaml.ScalarNode(_BOOL_TAG, "true" if value else "false")


def null_node() -> yaml.Node:
    return yaml.ScalarNode(_NULL_TAG, "null")


def seq_node(items: Sequence[yaml.Node], flow: bool = False) -> yaml.Node:
    return yaml.SequenceNode(_SEQ_TAG, list(items), flow_style=flow or not items)


def map_node(pairs: Sequence[tuple[str, yaml.Node]]) -> yaml.Node:
    return yaml.MappingNode(_MAP_TAG, [(str_node(k), v) for k, v in pairs], flow_style=not pairs)


# --- kinds -----------------------------------------------------------------------------


class Kind:
    """How one Go type decodes, what its zero value is, and how it marshals."""

    go_type = "string"

    def decode(self, d: Decoder, node: yaml.Node, path: str) -> Any:
        raise NotImplementedError

    def zero(self) -> Any:
        return None

    def is_zero(self, value: Any) -> bool:
        return value is None or value == "" or value == 0 or value is False or value == []

    def emit(self, value: Any) -> yaml.Node:
        raise NotImplementedError


class Str(Kind):
    """A Go ``string``: any scalar, as written."""

    def decode(self, d: Decoder, node: yaml.Node, path: str) -> Any:
        if is_null(node):
            return ""
        if not isinstance(node, yaml.ScalarNode):
            d.type_error(node, self.go_type, path)
            return ""
        return str(node.value)

    def zero(self) -> Any:
        return ""

    def emit(self, value: Any) -> yaml.Node:
        return str_node(value)


class Secret(Str):
    """A Go ``config.Secret``: a string shown as ``<secret>`` when marshalled."""

    def emit(self, value: Any) -> yaml.Node:
        return str_node("<secret>") if value else null_node()


class Bool(Kind):
    go_type = "bool"

    def decode(self, d: Decoder, node: yaml.Node, path: str) -> Any:
        if is_null(node):
            return False
        if not isinstance(node, yaml.ScalarNode) or tag_of(node) != BOOL:
            d.type_error(node, self.go_type, path)
            return False
        return plain_bool(str(node.value))

    def zero(self) -> Any:
        return False

    def emit(self, value: Any) -> yaml.Node:
        return bool_node(bool(value))


class Int(Kind):
    def __init__(self, go_type: str = "int") -> None:
        self.go_type = go_type

    def decode(self, d: Decoder, node: yaml.Node, path: str) -> Any:
        if is_null(node):
            return 0
        tag = tag_of(node) if isinstance(node, yaml.ScalarNode) else ""
        if tag == INT:
            value = plain_int(str(node.value))
        elif tag == FLOAT and float(str(node.value)).is_integer():
            value = int(float(str(node.value)))
        else:
            d.type_error(node, self.go_type, path)
            return 0
        if self.go_type.startswith("uint") and value < 0:
            d.type_error(node, self.go_type, path)
            return 0
        return value

    def zero(self) -> Any:
        return 0

    def emit(self, value: Any) -> yaml.Node:
        return int_node(int(value))


class Scalar(Kind):
    """A Go type whose ``UnmarshalYAML`` reads a string and parses it.

    ``parse`` raises :class:`Invalid` with Alertmanager's message; ``show`` turns the
    parsed value back into what ``MarshalYAML`` returns (None: marshal as null; a node
    when the result is not a string).
    """

    def __init__(
        self,
        parse: Callable[[str], Any],
        show: Callable[[Any], str | yaml.Node | None],
        *,
        zero: Any = None,
        secret: bool = False,
    ) -> None:
        self._parse = parse
        self._show = show
        self._zero = zero
        self._secret = secret

    def decode(self, d: Decoder, node: yaml.Node, path: str) -> Any:
        if is_null(node):
            return self._zero
        if not isinstance(node, yaml.ScalarNode):
            d.type_error(node, "string", path)
            return self._zero
        try:
            return self._parse(str(node.value))
        except Invalid as exc:
            d.fail(exc.message, node, path)

    def zero(self) -> Any:
        return self._zero

    def is_zero(self, value: Any) -> bool:
        return value is None or value == self._zero

    def emit(self, value: Any) -> yaml.Node:
        if value is None:
            return null_node()
        if self._secret:
            return str_node("<secret>")
        shown = self._show(value)
        if isinstance(shown, yaml.Node):
            return shown
        return null_node() if shown is None else str_node(shown)


class ListOf(Kind):
    def __init__(
        self, item: Kind, go_type: str, *, flow: bool = False, reject_null: bool = False
    ) -> None:
        self.item = item
        self.go_type = go_type
        self.flow = flow
        #: Alertmanager dereferences these entries without a nil check and panics on
        #: ``- null``; we reject such an entry with a message instead.
        self.reject_null = reject_null

    def decode(self, d: Decoder, node: yaml.Node, path: str) -> Any:
        if is_null(node):
            return None
        if not isinstance(node, yaml.SequenceNode):
            d.type_error(node, self.go_type, path)
            return None
        items = []
        for i, child in enumerate(node.value):
            d.positions[f"{path}[{i}]"] = line_of(child)
            if self.reject_null and is_null(child):
                d.fail(f"empty (null) entry in {path.rsplit('.', 1)[-1]}", child, f"{path}[{i}]")
            items.append(self.item.decode(d, child, f"{path}[{i}]"))
        return items

    def is_zero(self, value: Any) -> bool:
        return not value

    def emit(self, value: Any) -> yaml.Node:
        return seq_node([self.item.emit(v) for v in value or ()], flow=self.flow)


def _go_key_less(a: str, b: str) -> bool:
    """yaml.v2's map key order: letters after other characters, digit runs by value."""
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        a_letter, b_letter = a[i].isalpha(), b[i].isalpha()
        if a_letter and b_letter:
            return a[i] < b[i]
        if a_letter or b_letter:
            return b_letter
        an = bn = 0
        if a[i] == "0" or b[i] == "0":
            j = i - 1
            while j >= 0 and a[j].isdigit():
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and a[ai].isdigit():
            an = an * 10 + int(a[ai])
            ai += 1
        bi = i
        while bi < len(b) and b[bi].isdigit():
            bn = bn * 10 + int(b[bi])
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return a[i] < b[i]
    return len(a) < len(b)


def go_sorted_keys(keys: Iterable[str]) -> list[str]:
    def compare(a: str, b: str) -> int:
        return -1 if _go_key_less(a, b) else (1 if _go_key_less(b, a) else 0)

    return sorted(keys, key=functools.cmp_to_key(compare))


class MapOf(Kind):
    """A Go ``map[string]V``; duplicate keys are a strict-mode type problem."""

    def __init__(self, value: Kind, go_type: str = "map[string]string") -> None:
        self.value = value
        self.go_type = go_type

    def decode(self, d: Decoder, node: yaml.Node, path: str) -> Any:
        if is_null(node):
            return None
        if not isinstance(node, yaml.MappingNode):
            d.type_error(node, self.go_type, path)
            return None
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                d.type_error(key_node, "string", path)
                continue
            key = str(key_node.value)
            sub = f"{path}.{key}"
            value = self.value.decode(d, value_node, sub)
            if key in out:
                line = line_of(value_node)
                d.type_errors.append(
                    (f"line {line}: key {go_quote(key)} already set in map", line, sub)
                )
                continue
            d.positions[sub] = line_of(key_node)
            out[key] = value
        return out

    def is_zero(self, value: Any) -> bool:
        return not value

    def emit(self, value: Any) -> yaml.Node:
        return map_node([(k, self.value.emit(value[k])) for k in go_sorted_keys(value or {})])


@attrs.frozen
class Field:
    name: str
    kind: Kind
    #: Go's ``omitempty``: leave the key out of the marshalled form when zero.
    omitempty: bool = True


class Struct(Kind):
    """A Go struct (``pointer``: a ``*T`` field, which stays None when absent)."""

    def __init__(
        self,
        go_type: str,
        fields: Sequence[Field],
        *,
        defaults: Callable[[], Obj] | None = None,
        validate: Callable[[Obj], None] | None = None,
        pointer: bool = True,
    ) -> None:
        self.go_type = go_type
        self.fields = {f.name: f for f in fields}
        self.defaults = defaults
        self.validate = validate
        self.pointer = pointer

    def new(self) -> Obj:
        """The value Go starts from: the type's defaults, or all zero values."""
        if self.defaults is not None:
            return self.defaults()
        return {f.name: f.kind.zero() for f in self.fields.values()}

    def decode(self, d: Decoder, node: yaml.Node, path: str) -> Any:
        if is_null(node):
            return self.zero()
        if not isinstance(node, yaml.MappingNode):
            d.type_error(node, self.go_type, path)
            return self.zero()
        obj = self.new()
        before = len(d.type_errors)
        self._fill(d, node, obj, path)
        if len(d.type_errors) > before or self.validate is None:
            return obj
        try:
            self.validate(obj)
        except Invalid as exc:
            key = join_path(path, exc.key or "")
            raise ConfigError(
                exc.message, line=d.positions.get(key, line_of(node)), key=key or None
            ) from None
        return obj

    def _fill(self, d: Decoder, node: yaml.MappingNode, obj: Obj, path: str) -> None:
        done: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and tag_of(key_node) == MERGE:
                merged = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for m in merged:
                    if isinstance(m, yaml.MappingNode):
                        self._fill(d, m, obj, path)
                    else:
                        d.type_error(m, self.go_type, path)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                d.type_error(key_node, "string", path)
                continue
            name = str(key_node.value)
            line = line_of(key_node)
            sub = join_path(path, name)
            field = self.fields.get(name)
            if field is None:
                d.type_errors.append(
                    (f"line {line}: field {name} not found in type {self.go_type}", line, sub)
                )
                continue
            if name in done:
                d.type_errors.append(
                    (f"line {line}: field {name} already set in type {self.go_type}", line, sub)
                )
                continue
            done.add(name)
            d.positions[sub] = line
            obj[name] = field.kind.decode(d, value_node, sub)

    def zero(self) -> Any:
        if self.pointer:
            return None
        return {f.name: f.kind.zero() for f in self.fields.values()}

    def is_zero(self, value: Any) -> bool:
        if value is None:
            return True
        if self.pointer:
            return False
        return all(f.kind.is_zero(value.get(f.name)) for f in self.fields.values())

    def emit(self, value: Any) -> yaml.Node:
        if value is None:
            return null_node()
        pairs: list[tuple[str, yaml.Node]] = []
        for f in self.fields.values():
            v = value.get(f.name)
            if f.omitempty and f.kind.is_zero(v):
                continue
            pairs.append((f.name, f.kind.emit(v)))
        return map_node(pairs)


def dump(node: yaml.Node) -> str:
    """Serialise a node tree the way yaml.v2's ``Marshal`` lays it out."""
    return yaml.serialize(node, Dumper=yaml.SafeDumper, allow_unicode=True)
