"""Collect the code blocks of the documentation (``docs/**/*.md`` and ``README.md``).

Rules every page follows (checked by ``tests/test_docs.py``):

- A fenced block has a language. ``python`` and ``bash`` blocks run; a block in any
  other language, or one that must not run, carries ``<!-- not-run: REASON -->`` on the
  line before its fence (invisible on the site).
- The ``python`` blocks of a page run in order in one namespace, so a page may build
  on its earlier blocks; ``bash`` blocks run with ``bash -eo pipefail`` in the same
  working directory (a fresh temporary directory holding links to ``examples/``,
  ``benchmarks/`` and ``tests/``).
- A line ending in ``# test: REPLACEMENT`` runs as ``REPLACEMENT`` (same indentation):
  reduced sizes for the test suite, visible to the reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNABLE = ("python", "bash")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.*?)\s*-->$")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
TEST_LINE = re.compile(r"^(\s*)(.*?)\s+#\s*test:\s*(.*)$")


@dataclass(frozen=True)
class Block:
    page: str  # path relative to the repository root
    line: int  # line of the opening fence (1-based)
    language: str
    code: str
    not_run: str | None  # the reason, when marked

    @property
    def runnable(self) -> bool:
        return self.not_run is None and self.language in RUNNABLE


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """Fenced blocks of one page, with the not-run marker that precedes each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, language = m.groups()
        start = i
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        body = [
            line[len(indent) :] if line.startswith(indent) else line for line in lines[i + 1 : j]
        ]
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = NOT_RUN.match(lines[k].strip()) if k >= 0 else None
        rel = str(path.relative_to(ROOT))
        found.append(
            Block(rel, start + 1, language, "\n".join(body) + "\n", marker and marker.group(1))
        )
        i = j + 1
    return found


def for_testing(code: str) -> str:
    """Apply the ``# test: REPLACEMENT`` lines."""
    out = []
    for line in code.splitlines():
        m = TEST_LINE.match(line)
        out.append(m.group(1) + m.group(3) if m else line)
    return "\n".join(out) + "\n"
