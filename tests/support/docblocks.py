"""The code blocks of the documentation, as tests see them.

Every fenced block of README.md, docs/*.md and examples/orders/README.md is read with a
CommonMark parser (markdown-it-py), with the file and line it starts on.

Python blocks: a page is one program, read top to bottom as a reader does: each block may use
what the page's earlier blocks defined. A block that uses names the page never defines (the
reader's own code, an app from another page) is a *fragment*: an HTML comment right before it,
invisible on the rendered page, states the prelude it needs::

    <!-- prelude: your own code
    async def count_documents() -> int: ...
    -->
    ```python
    ...
    ```

The first line names what the prelude stands for; the lines after it are Python, put before
the block when it is run and type-checked.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from markdown_it import MarkdownIt

from tests.support.server import ROOT

PAGES = (
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "examples" / "orders" / "README.md",
)
PRELUDE = "<!-- prelude:"
#: Where a shell line's commands end and the next starts.
OPERATORS = frozenset({"&&", "||", "|", ";", "&"})


@dataclass(frozen=True)
class Block:
    """One fenced code block."""

    page: Path
    line: int  # 1-based, of the opening fence
    lang: str
    code: str
    prelude: str = ""  # Python stated before a fragment, "" for a complete block

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@cache
def blocks(page: Path) -> tuple[Block, ...]:
    """The fenced blocks of *page*, in order."""
    found: list[Block] = []
    prelude = ""
    for token in MarkdownIt("commonmark").parse(page.read_text()):
        if token.type == "html_block" and token.content.startswith(PRELUDE):
            body = token.content.strip().removesuffix("-->")
            prelude = body.split("\n", 1)[1] if "\n" in body else ""
            if not prelude.strip():
                raise ValueError(f"{page}:{_line(token.map)}: a prelude comment without code")
            continue
        if token.type == "fence":
            lang = token.info.split()[0] if token.info.strip() else ""
            found.append(Block(page, _line(token.map), lang, token.content, prelude))
        elif prelude and token.type != "html_block":
            raise ValueError(f"{page}:{_line(token.map)}: a prelude must come right before a block")
        prelude = ""
    return tuple(found)


def _line(span: list[int] | None) -> int:
    return (span[0] if span else 0) + 1


def all_blocks(*langs: str) -> list[Block]:
    """Every block in one of *langs*, page by page."""
    return [block for page in PAGES for block in blocks(page) if block.lang in langs]


def quickstart() -> str:
    """The README's quickstart (the first Python block after its heading): the docs' main.py."""
    readme = ROOT / "README.md"
    heading = readme.read_text().splitlines().index("## Quickstart (FastAPI)") + 1
    return next(b.code for b in blocks(readme) if b.lang == "python" and b.line > heading)


@dataclass(frozen=True)
class Program:
    """A page's Python blocks up to one of them, as one module; where each block landed."""

    source: str
    spans: dict[str, tuple[int, int]]  # block id -> (first line, last line), 1-based


def program(page: Path, upto: Block | None = None) -> Program:
    """The page's Python blocks (each after its prelude) up to *upto*, or all of them."""
    lines = [f"# The Python blocks of {page.relative_to(ROOT)}, in order."]
    spans: dict[str, tuple[int, int]] = {}
    for block in blocks(page):
        if block.lang != "python":
            continue
        first = len(lines) + 1
        if block.prelude:
            lines += [f"# --- the prelude of {block.id}", *block.prelude.rstrip().splitlines()]
        lines += [f"# --- {block.id}", *block.code.rstrip().splitlines()]
        spans[block.id] = (first, len(lines))
        if block == upto:
            break
    return Program("\n".join(lines) + "\n", spans)


def commands(script: str) -> Iterator[list[str]]:
    """The simple commands of a shell block, as argument lists (variables and globs as
    written; leading VAR=value assignments dropped)."""
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        command: list[str] = []
        for word in [*lexer, ";"]:
            if word in OPERATORS:
                while command and "=" in command[0] and command[0].split("=")[0].isidentifier():
                    command.pop(0)
                if command:
                    yield command
                command = []
            else:
                command.append(word)


def program_of(command: list[str]) -> tuple[str, list[str]]:
    """The program a command runs and its arguments: ``python -m X ...`` runs X."""
    name = Path(command[0]).name
    if name.startswith("python") and command[1:2] == ["-m"] and len(command) > 2:
        return command[2], command[3:]
    return name, command[1:]
