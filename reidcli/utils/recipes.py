"""Stage configurations as dataclasses with TOML recipes and command-line overrides.

`finetune` and `pretrain` share this machinery: precedence is built-in defaults < recipe
file (`--recipe`) < options given on the command line; the resolved configuration is saved
as `config.toml`, itself a valid recipe that `--resume` reads back. Recipe keys are the
dataclass field names, at the top level or inside one level of tables (`[model]`,
`[optim]`, ...: the table is only for people). Unknown keys are an error, because a typo
would otherwise fall back silently to a default.

A recipe may start from another one, as fast-reid's `_BASE_` does: a top-level
`base = "other.toml"` (relative to the recipe's folder) loads that recipe first, then the
recipe's own keys replace the base's. Published variants (another dataset, another stride)
are then the one or two lines that really differ.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
from dataclasses import field
from pathlib import Path
from typing import Any, Generic, TypeVar

from reidcli.errors import UsageError
from reidcli.utils.toml_writer import dumps

C = TypeVar("C")
_FIXED_TUPLE = re.compile(r"tuple\[([^\[\]]*)\]")


def tuple_length(annotation: Any) -> int | None:
    """How many items a `tuple[a, b]` field holds; None for `tuple[x, ...]` or non-tuples."""
    match = _FIXED_TUPLE.search(str(annotation))
    if match is None or "..." in match.group(1):
        return None
    return len(match.group(1).split(","))


def setting(default: Any, section: str, runtime: bool = False) -> Any:
    """A config field. `section` is its table in saved recipes; `runtime` fields (workers,
    device, output, ...) do not change the result and may differ when a run is resumed."""
    meta = {"section": section, "runtime": runtime}
    if isinstance(default, list | tuple):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


class RecipeSchema(Generic[C]):
    """Reading, merging, saving and comparing configurations of one dataclass type.

    `tuple_types` names the fields written as TOML arrays and the type of their items;
    `one_or_many` those of them that also take a single value (a list that used to be one
    value, such as `data`: old recipes and saved runs keep working); they are saved as a
    single value when they hold one, as before, and left out when empty.
    """

    def __init__(self, cls: type[C], tuple_types: dict[str, type],
                 one_or_many: frozenset[str] = frozenset()) -> None:
        self.cls = cls
        self.one_or_many = one_or_many
        self.fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        self.tuple_types = tuple_types
        self.tuple_lengths = {n: tuple_length(self.fields[n].type) for n in tuple_types}
        # TOML writes 1e-4 as a float but 1 as an int; float fields take either.
        self.float_fields = {n for n, f in self.fields.items()
                             if "float" in str(f.type) and n not in tuple_types}

    def runtime_fields(self) -> set[str]:
        return {n for n, f in self.fields.items() if f.metadata.get("runtime")}

    def coerce(self, name: str, value: Any, source: str) -> Any:
        if name in self.tuple_types and value is not None:
            if name in self.one_or_many and not isinstance(value, list | tuple):
                value = [value]
            if not isinstance(value, list | tuple):
                raise UsageError(f"{source}: `{name}` must be a list, got {value!r}")
            length = self.tuple_lengths[name]
            if length is not None and len(value) != length:
                raise UsageError(f"{source}: `{name}` takes {length} values, got {list(value)!r}")
            return tuple(self.tuple_types[name](v) for v in value)
        if name in self.float_fields and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    def flatten(self, data: dict[str, Any], source: str) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            items = value.items() if isinstance(value, dict) else [(key, value)]
            for name, item in items:
                if isinstance(item, dict):
                    raise UsageError(f"{source}: tables nest one level only (`{key}.{name}`)")
                if name not in self.fields:
                    close = difflib.get_close_matches(name, self.fields, n=1)
                    hint = f" (did you mean `{close[0]}`?)" if close else ""
                    raise UsageError(f"{source}: unknown setting `{name}`{hint}")
                if name in flat:
                    raise UsageError(f"{source}: `{name}` is set twice")
                flat[name] = self.coerce(name, item, source)
        return flat

    def load_recipe(self, path: str | Path) -> dict[str, Any]:
        """{field: value} from a TOML recipe, its `base` chain applied."""
        return self._load_chain(Path(path), ())

    def _load_chain(self, p: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if seen:
                raise UsageError(f"recipe {seen[-1]}: its base {p} does not exist") from None
            raise UsageError(f"recipe {p} does not exist") from None
        except UnicodeDecodeError as err:
            raise UsageError(f"recipe {p} is not UTF-8 text: {err}") from None
        except tomllib.TOMLDecodeError as err:
            raise UsageError(f"recipe {p} is not valid TOML: {err}") from None
        base = data.pop("base", None)
        values: dict[str, Any] = {}
        if base is not None:
            if not isinstance(base, str):
                raise UsageError(f"recipe {p}: `base` must be a file name, got {base!r}")
            base_path = (p.parent / base).resolve()
            chain = (*seen, p.resolve())
            if base_path in chain:
                loop = " -> ".join(q.name for q in (*chain, base_path))
                raise UsageError(f"recipe {p}: its base chain loops ({loop})")
            values.update(self._load_chain(base_path, chain))
        values.update(self.flatten(data, str(p)))
        return values

    def resolve(self, recipe: str | Path | None = None,
                overrides: dict[str, Any] | None = None) -> C:
        """defaults < recipe < overrides (only the options the user actually set)."""
        values: dict[str, Any] = {}
        if recipe is not None:
            values.update(self.load_recipe(recipe))
        for name, value in (overrides or {}).items():
            if name not in self.fields:
                raise UsageError(f"unknown setting `{name}`")
            values[name] = self.coerce(name, value, "command line")
        return self.cls(**values)

    def to_toml(self, cfg: C, header: str = "") -> str:
        """The configuration as a sectioned TOML recipe (the run location excluded)."""
        tables: dict[str, dict[str, Any]] = {}
        for name, f in self.fields.items():
            if f.metadata["section"] != "run":
                value = getattr(cfg, name)
                if name in self.one_or_many:  # as it was before it could be a list
                    value = value[0] if len(value) == 1 else (value or None)
                tables.setdefault(f.metadata["section"], {})[name] = value
        return dumps(tables, header=header)

    def number_problems(self, cfg: C) -> list[str]:
        """Float settings that are NaN or infinite (no comparison rejects NaN: `nan <= 0` is
        false) and a negative `workers`; every stage's `validate` starts from these."""
        problems = []
        for name in self.fields:
            value = getattr(cfg, name)
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                problems.append(f"{name} must be a finite number, got {value!r}")
        workers = getattr(cfg, "workers", 0)
        if isinstance(workers, int) and workers < 0:
            problems.append(f"workers must be >= 0 (0 = load in the main process), got {workers}")
        return problems

    @staticmethod
    def schedule_problems(cfg: Any) -> list[str]:
        """What every training stage checks of its schedule (`epochs`, `warmup_epochs`,
        `lr`), in one wording."""
        problems = []
        if cfg.epochs < 1:
            problems.append(f"epochs must be >= 1, got {cfg.epochs}")
        if not 0 <= cfg.warmup_epochs <= cfg.epochs:
            problems.append(f"warmup_epochs must be in [0, epochs], got {cfg.warmup_epochs}")
        if cfg.lr <= 0:
            problems.append(f"lr must be positive, got {cfg.lr}")
        return problems

    def differences(self, saved: C, requested: C, ignore: set[str] | None = None) -> list[str]:
        """Fields whose values differ, as `name: saved -> requested`; `ignore` defaults to
        the runtime fields."""
        skip = self.runtime_fields() if ignore is None else ignore
        return [f"{n}: {getattr(saved, n)!r} -> {getattr(requested, n)!r}"
                for n in self.fields
                if n not in skip and getattr(saved, n) != getattr(requested, n)]
