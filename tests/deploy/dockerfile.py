"""A small Dockerfile reader: instructions with continuations joined, split into stages."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    line: int  # 1-based line of the instruction's first physical line
    op: str  # upper-cased keyword, e.g. "COPY"
    args: str


def instructions(path: Path) -> list[Instruction]:
    out: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comments inside a continued instruction are dropped by Docker too
        if not pending:
            start = number
        pending += " " + stripped.removesuffix("\\")
        if not stripped.endswith("\\"):
            op, _, args = pending.strip().partition(" ")
            out.append(Instruction(start, op.upper(), args.strip()))
            pending = ""
    assert not pending, f"{path}: unterminated continuation at line {start}"
    return out


def final_stage(items: list[Instruction]) -> list[Instruction]:
    last_from = max(i for i, item in enumerate(items) if item.op == "FROM")
    return items[last_from:]


def copy_sources(item: Instruction) -> list[str]:
    """Build-context sources of a COPY/ADD; [] when it copies from another stage."""
    words = shlex.split(item.args)
    if any(w.startswith("--from=") for w in words):
        return []
    paths = [w for w in words if not w.startswith("--")]
    return paths[:-1]


def pip_extras(command: str) -> list[set[str]]:
    """The extras of every `pip install` of the project itself (".[a,b]") in a RUN."""
    return [
        {extra.strip() for extra in match.split(",")}
        for match in re.findall(r"""pip install[^&;|]*?["']?\.\[([^\]]*)\]""", command)
    ]
