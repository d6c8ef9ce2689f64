"""The one way every RunSurge program reads its settings (a convention shared like the wire format):
dataclass defaults < a TOML file's [section] (--config or RUNSURGE_CONFIG) < RUNSURGE_<NAME>
environment variables < explicit command-line values."""

from __future__ import annotations

import os
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_TYPES = {"Path": Path, "str": str, "int": int, "float": float, "bool": bool}


def _coerce(kind: Any, value: object) -> object:
    kind = _TYPES.get(str(kind).split("|")[0].strip(), kind) if isinstance(kind, str) else kind
    if kind is bool and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return kind(value)


def load_settings(cls: type[T], section: str, path: Path | None = None, **overrides: object) -> T:
    values: dict[str, object] = {}
    path = path or (Path(os.environ["RUNSURGE_CONFIG"]) if os.environ.get("RUNSURGE_CONFIG") else None)
    if path:
        try:
            values.update(tomllib.loads(Path(path).read_text()).get(section, {}))
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: {e}") from None
    known = {f.name: f.type for f in fields(cls)}  # type: ignore[arg-type]
    for name in known:
        env = os.environ.get(f"RUNSURGE_{name.upper()}")
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown {section} setting(s): {', '.join(sorted(unknown))}")
    try:
        return cls(**{k: _coerce(known[k], v) for k, v in values.items()})
    except (TypeError, ValueError) as e:
        raise ValueError(f"bad {section} setting: {e}") from None
