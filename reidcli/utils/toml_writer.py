"""A minimal TOML writer for flat configuration tables (read back with `tomllib`).

Supports what a resolved configuration holds: strings, booleans, ints, floats and lists of
those, grouped into one level of tables. Floats are written with `repr`, which round-trips
exactly through `tomllib`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML: {value!r}")


def _key(key: str) -> str:
    if key and all(c.isalnum() or c in "-_" for c in key):
        return key
    return _string(key)


def dumps(data: Mapping[str, Any], header: str = "") -> str:
    """Serialise `{key: value}` and `{table: {key: value}}` entries; None values are omitted."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    scalars = {k: v for k, v in data.items() if not isinstance(v, Mapping) and v is not None}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    lines += [f"{_key(k)} = {_value(v)}" for k, v in scalars.items()]
    for name, table in tables.items():
        if lines:
            lines.append("")
        lines.append(f"[{_key(name)}]")
        lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"
