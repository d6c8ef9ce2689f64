"""Job spec text (the format jobspec.parse_spec reads) from task tables."""

from __future__ import annotations

import json
from collections.abc import Iterable


def _s(text: str) -> str:
    return json.dumps(text)  # a JSON string (ASCII, escaped) is a valid TOML basic string


def render_spec(name: str, tasks: Iterable[dict]) -> str:
    """tasks: dicts with name, script, inputs {local: source}, outputs (list or None), memory, cpus."""
    lines = [f"name = {_s(name)}"]
    for t in tasks:
        lines += ["", "[[tasks]]", f"name = {_s(t['name'])}", f"script = {_s(t['script'])}"]
        if t.get("inputs"):
            pairs = ", ".join(f"{_s(k)} = {_s(v)}" for k, v in t["inputs"].items())
            lines.append(f"inputs = {{ {pairs} }}")
        if t.get("outputs"):
            lines.append(f"outputs = [{', '.join(_s(o) for o in t['outputs'])}]")
        if t.get("memory"):
            lines.append(f"memory = {int(t['memory'])}")
        if t.get("cpus", 1) != 1:
            lines.append(f"cpus = {int(t['cpus'])}")
        if t.get("timeout"):
            lines.append(f"timeout = {float(t['timeout'])}")
    return "\n".join(lines) + "\n"
