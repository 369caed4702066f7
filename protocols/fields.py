"""Wire types of message fields, and the compiled layout of one message class.

A message class declares each field as ``Annotated[python_type, WIRE_TYPE, "description, unit"]``.
``Layout`` reads those annotations once, merges runs of fixed-size scalars into one precompiled
``struct.Struct`` (the hot path of status frames), and encodes or decodes instances. All
multi-byte integers are little-endian. Encoding checks that each value fits its field and names
the field when it does not; decoding checks lengths, enum members and booleans, and never reads
past the payload.
"""

from __future__ import annotations

import dataclasses
import operator
import re
import struct
import typing
from enum import IntEnum
from typing import Any, ClassVar

from .errors import CodecError, EncodeError, MalformedPayload


class WireType:
    """Base of the field wire types. ``fmt`` is set for fixed-size scalars that ``struct`` packs."""

    fmt: str | None = None

    def spec(self) -> str:
        """Canonical type name, used in SPEC.md and the schema fingerprint."""
        raise NotImplementedError

    def to_wire(self, value: Any, name: str) -> Any:
        """Value as handed to ``struct`` (scalars only)."""
        return value

    def from_wire(self, value: Any, name: str) -> Any:
        """Value as stored in the dataclass (scalars only)."""
        return value

    def encode(self, value: Any, out: bytearray, name: str) -> None:
        """Append ``value`` to ``out`` (variable-size types only)."""
        raise NotImplementedError

    def decode(self, buf: bytes, pos: int, name: str) -> tuple[Any, int]:
        """Read a value at ``pos``; return it and the next position (variable-size types only)."""
        raise NotImplementedError


class Int(WireType):
    """A fixed-width integer."""

    _NAMES: ClassVar[dict[str, str]] = {
        "B": "u8",
        "H": "u16",
        "I": "u32",
        "Q": "u64",
        "b": "i8",
        "h": "i16",
        "i": "i32",
        "q": "i64",
    }

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        size = struct.calcsize(fmt)
        self.signed = fmt.islower()
        self.low = -(1 << (8 * size - 1)) if self.signed else 0
        self.high = (1 << (8 * size - 1)) - 1 if self.signed else (1 << (8 * size)) - 1

    def spec(self) -> str:
        return self._NAMES[self.fmt]

    def to_wire(self, value: Any, name: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise EncodeError(f"{name}: {type(value).__name__} given, {self.spec()} integer needed")
        if not self.low <= value <= self.high:
            raise EncodeError(f"{name}: {value} does not fit {self.spec()} ({self.low}..{self.high})")
        return value


class Bool(WireType):
    """One byte, 0 or 1; any other value is malformed."""

    fmt = "B"

    def spec(self) -> str:
        return "bool"

    def to_wire(self, value: Any, name: str) -> Any:
        if not isinstance(value, bool):
            raise EncodeError(f"{name}: {type(value).__name__} given, bool needed")
        return int(value)

    def from_wire(self, value: Any, name: str) -> Any:
        if value > 1:
            raise MalformedPayload(f"{name}: boolean byte is {value}, must be 0 or 1")
        return bool(value)


class Enum(WireType):
    """An ``IntEnum`` stored as u8 or u16; values outside the enum are malformed."""

    def __init__(self, enum_cls: type[IntEnum], fmt: str = "B") -> None:
        self.enum_cls = enum_cls
        self.fmt = fmt
        self._members = {int(member): member for member in enum_cls}

    def spec(self) -> str:
        members = ",".join(f"{m.name}={m.value}" for m in self.enum_cls)
        return f"{Int._NAMES[self.fmt]} enum {self.enum_cls.__name__}[{members}]"

    def to_wire(self, value: Any, name: str) -> Any:
        if type(value) is self.enum_cls:
            return value
        try:
            return int(self.enum_cls(value))
        except ValueError:
            raise EncodeError(f"{name}: {value!r} is not a {self.enum_cls.__name__}") from None

    def from_wire(self, value: Any, name: str) -> Any:
        member = self._members.get(value)
        if member is None:
            raise MalformedPayload(f"{name}: {value} is not a {self.enum_cls.__name__}")
        return member


class FixedBytes(WireType):
    """Exactly ``size`` raw bytes (nonces)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.fmt = f"{size}s"

    def spec(self) -> str:
        return f"bytes[{self.size}]"

    def to_wire(self, value: Any, name: str) -> Any:
        if not isinstance(value, bytes | bytearray) or len(value) != self.size:
            raise EncodeError(f"{name}: exactly {self.size} bytes needed")
        return bytes(value)


class Text(WireType):
    """UTF-8 text: a u8 byte count, then the bytes (at most ``max_bytes``)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def spec(self) -> str:
        return f"text[<={self.max_bytes}]"

    def encode(self, value: Any, out: bytearray, name: str) -> None:
        if not isinstance(value, str):
            raise EncodeError(f"{name}: {type(value).__name__} given, str needed")
        data = value.encode("utf-8")
        if len(data) > self.max_bytes:
            raise EncodeError(f"{name}: {len(data)} UTF-8 bytes, at most {self.max_bytes}")
        out.append(len(data))
        out += data

    def decode(self, buf: bytes, pos: int, name: str) -> tuple[Any, int]:
        if pos >= len(buf):
            raise MalformedPayload(f"{name}: payload ends before the text length")
        size = buf[pos]
        end = pos + 1 + size
        if size > self.max_bytes or end > len(buf):
            raise MalformedPayload(f"{name}: text of {size} bytes does not fit")
        try:
            return bytes(buf[pos + 1 : end]).decode("utf-8"), end
        except UnicodeDecodeError:
            raise MalformedPayload(f"{name}: text is not valid UTF-8") from None


class Blob(WireType):
    """Raw bytes of variable length: a u8 byte count, then the bytes (at most ``max_bytes``)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def spec(self) -> str:
        return f"bytes[<={self.max_bytes}]"

    def encode(self, value: Any, out: bytearray, name: str) -> None:
        if not isinstance(value, bytes | bytearray):
            raise EncodeError(f"{name}: {type(value).__name__} given, bytes needed")
        if len(value) > self.max_bytes:
            raise EncodeError(f"{name}: {len(value)} bytes, at most {self.max_bytes}")
        out.append(len(value))
        out += value

    def decode(self, buf: bytes, pos: int, name: str) -> tuple[Any, int]:
        if pos >= len(buf):
            raise MalformedPayload(f"{name}: payload ends before the byte count")
        size = buf[pos]
        end = pos + 1 + size
        if size > self.max_bytes or end > len(buf):
            raise MalformedPayload(f"{name}: {size} bytes do not fit")
        return bytes(buf[pos + 1 : end]), end


class ListOf(WireType):
    """A u8 count, then that many items (a scalar wire type or a record dataclass)."""

    def __init__(self, item: WireType | type, max_count: int) -> None:
        self.item = item
        self.max_count = max_count
        self._scalar = None if isinstance(item, type) else struct.Struct("<" + (item.fmt or ""))
        self._plain_ints = type(item) is Int
        # Count-specific structs of a scalar list, built on first use (at most max_count + 1).
        self._runs: dict[int, struct.Struct] = {}
        self._layout: Layout | None = None

    def _item_layout(self) -> Layout | WireType:
        if isinstance(self.item, type):
            if self._layout is None:  # resolved late: the record's layout may be built after this field
                self._layout = layout_of(self.item)
            return self._layout
        return self.item

    def _run(self, count: int) -> struct.Struct:
        run = self._runs.get(count)
        if run is None:
            run = self._runs[count] = struct.Struct(f"<{count}{self.item.fmt}")  # type: ignore[union-attr]
        return run

    def spec(self) -> str:
        item = self._item_layout()
        inner = item.spec() if isinstance(item, WireType) else item.spec_record()
        return f"list[<={self.max_count}] of {inner}"

    def encode(self, value: Any, out: bytearray, name: str) -> None:
        if not isinstance(value, tuple | list):
            raise EncodeError(f"{name}: {type(value).__name__} given, a tuple needed")
        count = len(value)
        if count > self.max_count:
            raise EncodeError(f"{name}: {count} items, at most {self.max_count}")
        out.append(count)
        if self._plain_ints and set(map(type, value)) <= _INT_ONLY:
            try:
                out += self._run(count).pack(*value)
                return
            except struct.error:
                pass  # the loop below names the offending item
        item = self._item_layout() if count else None
        for index, element in enumerate(value):
            if isinstance(item, Layout):
                try:
                    item.encode_into(element, out)
                except CodecError as exc:
                    raise _within(exc, f"{name}[{index}]") from None
            else:
                out += self._scalar.pack(item.to_wire(element, f"{name}[{index}]"))  # type: ignore[union-attr]

    def decode(self, buf: bytes, pos: int, name: str) -> tuple[Any, int]:
        if pos >= len(buf):
            raise MalformedPayload(f"{name}: payload ends before the item count")
        count = buf[pos]
        pos += 1
        if count > self.max_count:
            raise MalformedPayload(f"{name}: {count} items, at most {self.max_count}")
        if self._scalar is None:
            if not count:
                return (), pos
            item_layout = self._item_layout()
            assert isinstance(item_layout, Layout)
            items = []
            for index in range(count):
                try:
                    element, pos = item_layout.decode_from(buf, pos)
                except CodecError as exc:
                    raise _within(exc, f"{name}[{index}]") from None
                items.append(element)
            return tuple(items), pos
        run = self._run(count)
        end = pos + run.size
        if end > len(buf):
            raise MalformedPayload(f"{name}: payload too short for {count} items")
        raw = run.unpack_from(buf, pos)
        if self._plain_ints:
            return raw, end
        item = self.item
        assert isinstance(item, WireType)
        return tuple(item.from_wire(value, f"{name}[{i}]") for i, value in enumerate(raw)), end


class Record(WireType):
    """A nested record dataclass, inline."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def spec(self) -> str:
        return layout_of(self.cls).spec_record()

    def encode(self, value: Any, out: bytearray, name: str) -> None:
        try:
            layout_of(self.cls).encode_into(value, out)
        except CodecError as exc:
            raise _within(exc, name) from None

    def decode(self, buf: bytes, pos: int, name: str) -> tuple[Any, int]:
        try:
            return layout_of(self.cls).decode_from(buf, pos)
        except CodecError as exc:
            raise _within(exc, name) from None


_INT_ONLY = frozenset((int,))
_FIELD_PATH = re.compile(r"^[A-Za-z_][\w\[\].]*: ")


def _within(exc: CodecError, path: str) -> CodecError:
    """The same error, its field path prefixed with ``path`` (errors are built lazily: no cost on success)."""
    message = str(exc)
    joined = f"{path}.{message}" if _FIELD_PATH.match(message) else f"{path}: {message}"
    return type(exc)(joined)


U8, U16, U32, U64 = Int("B"), Int("H"), Int("I"), Int("Q")
I8, I16, I32, I64 = Int("b"), Int("h"), Int("i"), Int("q")
BOOL = Bool()


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """One field of a message: name, wire type and its description with unit."""

    name: str
    wire: WireType
    doc: str


class _FixedRun:
    """Consecutive fixed-size fields packed by one precompiled struct."""

    def __init__(self, fields: list[FieldInfo]) -> None:
        self.fields = fields
        self.struct = struct.Struct("<" + "".join(f.wire.fmt or "" for f in fields))
        self.plain = all(type(f.wire) is Int for f in fields)
        self.getter = operator.attrgetter(*(f.name for f in fields))
        # Plain integers go to struct unchecked (it range-checks them); the rest need conversion.
        self.converted = [(i, f) for i, f in enumerate(fields) if type(f.wire) is not Int]
        self.plain_indices = [i for i, f in enumerate(fields) if type(f.wire) is Int]

    def pack(self, obj: Any) -> bytes:
        got = self.getter(obj)
        original = got if len(self.fields) > 1 else (got,)
        values = list(original)
        try:
            for index in self.plain_indices:
                if type(values[index]) is not int:  # struct would take a bool or an IntEnum silently
                    raise struct.error
            for index, info in self.converted:
                values[index] = info.wire.to_wire(values[index], info.name)
            return self.struct.pack(*values)
        except struct.error:
            for info, value in zip(self.fields, original, strict=True):
                info.wire.to_wire(value, info.name)  # raises EncodeError naming the field
            raise EncodeError(f"values do not fit {self.struct.format}") from None


class Layout:
    """The compiled wire layout of one dataclass; encodes and decodes its instances."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.fields = _fields_of(cls)
        self._parts: list[_FixedRun | FieldInfo] = []
        run: list[FieldInfo] = []
        for info in self.fields:
            if info.wire.fmt is not None:
                run.append(info)
                continue
            if run:
                self._parts.append(_FixedRun(run))
                run = []
            self._parts.append(info)
        if run:
            self._parts.append(_FixedRun(run))
        self.decode_from = self._compile_decoder()  # type: ignore[method-assign]
        self.encode_into = self._compile_encoder()  # type: ignore[method-assign]

    def _compile_decoder(self) -> Any:
        """A decoder generated for this layout: one straight function, no per-field dispatch.

        Status replies are decoded on every poll; a loop over parts and fields with a call per
        field costs several times more. Error branches call the field's own checks, so messages
        are the same as ``decode_from``'s.
        """
        names: dict[str, Any] = {"MalformedPayload": MalformedPayload, "CLS": self.cls}
        lines = ["def decode(buf, pos):", "    n = len(buf)"]
        values = []
        for p_index, part in enumerate(self._parts):
            if isinstance(part, _FixedRun):
                names[f"S{p_index}"] = part.struct
                targets = [f"v{p_index}_{i}" for i in range(len(part.fields))]
                lines += [
                    f"    if pos + {part.struct.size} > n:",
                    f"        raise MalformedPayload('{self.cls.__name__}: payload too short')",
                    f"    {', '.join(targets)}{',' if len(targets) == 1 else ''} = S{p_index}.unpack_from(buf, pos)",
                    f"    pos += {part.struct.size}",
                ]
                for target, info in zip(targets, part.fields, strict=True):
                    wire = f"W{p_index}_{target}"
                    if type(info.wire) is Bool:
                        names[wire] = info.wire
                        lines += [f"    if {target} > 1:", f"        {wire}.from_wire({target}, {info.name!r})"]
                        lines.append(f"    {target} = {target} == 1")
                    elif type(info.wire) is Enum:
                        names[wire], names[f"M{wire}"] = info.wire, info.wire._members
                        lines += [
                            f"    m = M{wire}.get({target})",
                            "    if m is None:",
                            f"        {wire}.from_wire({target}, {info.name!r})",
                            f"    {target} = m",
                        ]
                    elif type(info.wire) is not Int:
                        names[wire] = info.wire
                        lines.append(f"    {target} = {wire}.from_wire({target}, {info.name!r})")
                values += targets
            else:
                names[f"V{p_index}"] = part.wire
                lines.append(f"    v{p_index}, pos = V{p_index}.decode(buf, pos, {part.name!r})")
                values.append(f"v{p_index}")
        lines.append(f"    return CLS({', '.join(values)}), pos")
        exec("\n".join(lines), names)  # noqa: S102 - source built here from field metadata only
        return names["decode"]

    def _compile_encoder(self) -> Any:
        """An encoder generated for this layout (see ``_compile_decoder``).

        The fast path packs values whose types are exactly right; anything else goes to the
        checking path (``_FixedRun.pack``), which converts or raises an error naming the field.
        """
        names: dict[str, Any] = {"EncodeError": EncodeError, "CLS": self.cls, "struct_error": struct.error}
        lines = [
            "def encode(obj, out):",
            "    if not isinstance(obj, CLS):",
            f"        raise EncodeError(f'{{type(obj).__name__}} given, {self.cls.__name__} needed')",
        ]
        for p_index, part in enumerate(self._parts):
            if not isinstance(part, _FixedRun):
                names[f"V{p_index}"] = part.wire
                lines.append(f"    V{p_index}.encode(obj.{part.name}, out, {part.name!r})")
                continue
            names[f"S{p_index}"], names[f"P{p_index}"] = part.struct, part
            targets = [f"v{i}" for i in range(len(part.fields))]
            checks = []
            for target, info in zip(targets, part.fields, strict=True):
                lines.append(f"    {target} = obj.{info.name}")
                if type(info.wire) is Int:
                    checks.append(f"type({target}) is int")
                elif type(info.wire) is Bool:
                    checks.append(f"type({target}) is bool")
                elif type(info.wire) is Enum:
                    names[f"E{p_index}_{target}"] = info.wire.enum_cls
                    checks.append(f"type({target}) is E{p_index}_{target}")
                else:
                    names[f"W{p_index}_{target}"] = info.wire
                    lines.append(f"    {target} = W{p_index}_{target}.to_wire({target}, {info.name!r})")
            condition = " and ".join(checks) or "True"
            lines += [
                f"    if {condition}:",
                "        try:",
                f"            out += S{p_index}.pack({', '.join(targets)})",
                "        except struct_error:",
                f"            out += P{p_index}.pack(obj)",
                "    else:",
                f"        out += P{p_index}.pack(obj)",
            ]
        exec("\n".join(lines), names)  # noqa: S102 - source built here from field metadata only
        return names["encode"]

    def spec_record(self) -> str:
        """Canonical text of this record's fields, for fingerprints and the spec."""
        inner = ",".join(f"{f.name}:{f.wire.spec()}" for f in self.fields)
        return f"{self.cls.__name__}{{{inner}}}"

    def encode_into(self, obj: Any, out: bytearray) -> None:
        """Append the wire bytes of ``obj`` to ``out``; errors name the field (callers add the path)."""
        if not isinstance(obj, self.cls):
            raise EncodeError(f"{type(obj).__name__} given, {self.cls.__name__} needed")
        for part in self._parts:
            if isinstance(part, _FixedRun):
                out += part.pack(obj)
            else:
                part.wire.encode(getattr(obj, part.name), out, part.name)

    def decode_from(self, buf: bytes, pos: int) -> tuple[Any, int]:
        """Decode one instance at ``pos``; return it and the next position."""
        values: list[Any] = []
        for part in self._parts:
            if isinstance(part, _FixedRun):
                end = pos + part.struct.size
                if end > len(buf):
                    raise MalformedPayload(f"{self.cls.__name__}: payload too short")
                raw = part.struct.unpack_from(buf, pos)
                pos = end
                if part.plain:
                    values += raw
                else:
                    values += [f.wire.from_wire(item, f.name) for f, item in zip(part.fields, raw, strict=True)]
            else:
                value, pos = part.wire.decode(buf, pos, part.name)
                values.append(value)
        return self.cls(*values), pos

    def max_size(self) -> int:
        """Largest encoded size of this layout, in bytes."""
        return sum(_max_size(f.wire) for f in self.fields)

    def min_size(self) -> int:
        """Smallest encoded size of this layout (every list and text empty), in bytes."""
        return sum(_min_size(f.wire) for f in self.fields)


def _max_size(wire: WireType) -> int:
    if wire.fmt is not None:
        return struct.calcsize("<" + wire.fmt)
    if isinstance(wire, Text | Blob):
        return 1 + wire.max_bytes
    if isinstance(wire, Record):
        return layout_of(wire.cls).max_size()
    if isinstance(wire, ListOf):
        item = layout_of(wire.item).max_size() if isinstance(wire.item, type) else _max_size(wire.item)
        return 1 + wire.max_count * item
    raise TypeError(f"no size for {wire!r}")


def _min_size(wire: WireType) -> int:
    if wire.fmt is not None:
        return struct.calcsize("<" + wire.fmt)
    if isinstance(wire, Text | Blob | ListOf):
        return 1
    if isinstance(wire, Record):
        return layout_of(wire.cls).min_size()
    raise TypeError(f"no size for {wire!r}")


def _fields_of(cls: type) -> list[FieldInfo]:
    hints = typing.get_type_hints(cls, include_extras=True)
    infos = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        meta = getattr(hint, "__metadata__", ())
        wire = next((m for m in meta if isinstance(m, WireType)), None)
        if wire is None:
            raise TypeError(f"{cls.__name__}.{f.name} has no wire type annotation")
        doc = next((m for m in meta if isinstance(m, str)), "")
        infos.append(FieldInfo(f.name, wire, doc))
    return infos


_LAYOUTS: dict[type, Layout] = {}


def layout_of(cls: type) -> Layout:
    """The compiled layout of a message or record class (compiled once, then cached)."""
    layout = _LAYOUTS.get(cls)
    if layout is None:
        layout = _LAYOUTS[cls] = Layout(cls)
    return layout
