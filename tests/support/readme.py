"""The fenced code blocks of README.md, each named by its section and its place in it.

A block is named `"<heading> #<n>"`: the text of the nearest heading above it (without the
`#`s) and its ordinal among that section's blocks, from 1. A block that cannot run as it stands
is preceded, on the line just before its fence, by `<!-- not run: <why>; full version:
examples/x.py -->` (the `full version` part only where there is one).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# Fences that hold data to read (a wire transcript, a configuration), not code to run.
DATA_LANGUAGES = frozenset({"text", "toml", "ini", "nginx", "http", "json"})

_FENCE = re.compile(r"^(`{3,})(\S*)\s*$")
_HEADING = re.compile(r"^#{1,6} (.+)$")
_NOT_RUN = re.compile(r"^<!-- not run: (?P<why>.+?)(?:; full version: (?P<example>\S+))? -->$")


@dataclass(frozen=True)
class Block:
    name: str  # "<heading> #<n>"
    language: str  # the fence's info string ("" when it has none)
    code: str
    line: int  # of the opening fence, from 1
    marker: str | None  # the line before the fence when it is a `<!-- not run: ... -->`

    @property
    def not_run(self) -> re.Match[str] | None:
        return _NOT_RUN.match(self.marker) if self.marker else None


def readme_blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of the README, in order."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks: list[Block] = []
    heading, ordinal = "", 0
    index = 0
    while index < len(lines):
        line = lines[index]
        heading_match = _HEADING.match(line)
        fence = _FENCE.match(line)
        if heading_match:
            heading, ordinal = heading_match.group(1).strip(), 0
        elif fence:
            end = index + 1
            while end < len(lines) and lines[end].strip() != fence.group(1):
                end += 1
            ordinal += 1
            before = lines[index - 1].strip() if index else ""
            blocks.append(
                Block(
                    name=f"{heading} #{ordinal}",
                    language=fence.group(2),
                    code="\n".join(lines[index + 1 : end]) + "\n",
                    line=index + 1,
                    marker=before if before.startswith("<!--") else None,
                )
            )
            index = end
        index += 1
    return blocks


def block(name: str) -> Block:
    """The block called `name`; KeyError listing the names there are when the README moved."""
    blocks = readme_blocks()
    for candidate in blocks:
        if candidate.name == name:
            return candidate
    raise KeyError(f"README.md has no block {name!r}; it has {[b.name for b in blocks]}")


def shell_commands(code: str) -> list[str]:
    """A shell block's commands: continuation lines joined, `$ ` prompts, blank lines and lines
    that are only a comment dropped (a command keeps its trailing comment: the shell ignores it).
    """
    commands: list[str] = []
    pending = ""
    for raw in code.splitlines():
        line = raw.removeprefix("$ ")
        if pending:
            line = pending + " " + line.strip()
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1].rstrip()
            continue
        pending = ""
        if line.strip() and not line.lstrip().startswith("#"):
            commands.append(line.strip())
    return commands


def argv(command: str) -> list[str]:
    """A single command's words, as the shell would split them (comments and a final `&` gone)."""
    words = shlex.split(command, comments=True)
    return words[:-1] if words and words[-1] == "&" else words
