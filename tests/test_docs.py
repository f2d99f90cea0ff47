"""The documentation's code is executed: every Python block of README.md, docs/*.md and
examples/orders/README.md runs as a module and passes ``mypy --strict``; ``>>>`` examples are
doctests; YAML and JSON blocks parse; shell blocks that run gracekit, uvicorn, gunicorn or pip
are parsed with the real command-line parsers, and ``gracekit manifest`` lines are run.

How pages, fragments and preludes work: tests/support/docblocks.py. The blocks run in a
temporary directory holding ``main.py``, the README's quickstart, the module the pages call
``main:app``; with a prometheus_client registry of their own, and without the tokens the docs
read from the environment (an example must not need them to import).
"""

from __future__ import annotations

import contextlib
import doctest
import importlib.metadata
import importlib.util
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import prometheus_client
import pytest
import yaml

from gracekit.cli import _parser as gracekit_parser
from gracekit.cli import main as gracekit_main
from tests.conftest import POSTGRES_DSN
from tests.support.docblocks import (
    PAGES,
    Block,
    all_blocks,
    blocks,
    commands,
    program,
    program_of,
    quickstart,
)
from tests.support.server import EXAMPLES, ROOT

PYTHON = all_blocks("python")
SHELL = all_blocks("sh")
#: Names the docs read from the environment; the blocks must import without them.
UNSET = ("PRESTOP_TOKEN", "HEALTH_TOKEN")
#: ``...`` is how the docs elide a body ("your code here"); mypy calls that an empty body.
MYPY = ["--strict", "--disable-error-code", "empty-body", "--no-error-summary"]


def ids(items: list[Block]) -> list[str]:
    return [block.id for block in items]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory like a user's project: the quickstart as main.py, and the cwd."""
    (tmp_path / "main.py").write_text(quickstart())
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", POSTGRES_DSN)
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(prometheus_client, "REGISTRY", prometheus_client.CollectorRegistry())
    before = set(sys.modules)
    yield tmp_path
    # Modules the blocks imported from the directory or the examples (main, app, ...).
    for name in set(sys.modules) - before:
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if origin.startswith((str(tmp_path), str(EXAMPLES))):
            del sys.modules[name]


def run_module(path: Path, name: str) -> dict[str, object]:
    """Import *path* as the module *name*; its namespace."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return vars(module)


def page_upto(block: Block, workdir: Path) -> dict[str, object]:
    """Run the page's Python blocks up to *block*; the resulting namespace."""
    source = program(block.page, upto=block).source
    name = "doc_" + re.sub(r"\W", "_", block.id)
    path = workdir / f"{name}.py"
    path.write_text(source)
    return run_module(path, name)


@pytest.mark.parametrize("block", PYTHON, ids=ids(PYTHON))
def test_python_block_runs(block: Block, workdir: Path) -> None:
    page_upto(block, workdir)


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """One ``mypy --strict`` run over every page's program and main.py; errors by block id."""
    directory = tmp_path_factory.mktemp("docs-mypy")
    (directory / "main.py").write_text(quickstart())
    spans: dict[Path, dict[str, tuple[int, int]]] = {}
    for page in PAGES:
        whole = program(page)
        if whole.spans:
            path = directory / ("doc_" + re.sub(r"\W", "_", str(page.relative_to(ROOT))) + ".py")
            path.write_text(whole.source)
            spans[path] = whole.spans
    [readme_quickstart] = [b for b in PYTHON if b.code == quickstart()]
    spans[directory / "main.py"] = {readme_quickstart.id: (1, quickstart().count("\n"))}
    done = subprocess.run(
        [sys.executable, "-m", "mypy", *MYPY, "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(ROOT / ".mypy_cache"), *map(str, spans)],
        capture_output=True, text=True, timeout=300, cwd=directory,
    )  # fmt: skip
    errors: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        match = re.match(r"(.+?):(\d+): (error|note): (.*)", line)
        assert match is not None, done.stdout + done.stderr
        path, number = directory / Path(match.group(1)).name, int(match.group(2))
        owner = [b for b, (first, last) in spans[path].items() if first <= number <= last]
        errors.setdefault(owner[0] if owner else str(path), []).append(line)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return errors


@pytest.mark.parametrize("block", PYTHON, ids=ids(PYTHON))
def test_python_block_type_checks(block: Block, mypy_errors: dict[str, list[str]]) -> None:
    assert block.id in program(block.page).spans
    assert not mypy_errors.get(block.id), "\n".join(mypy_errors[block.id])


def test_mypy_errors_all_belong_to_blocks(mypy_errors: dict[str, list[str]]) -> None:
    assert set(mypy_errors) <= set(ids(PYTHON)), mypy_errors


def test_fragments_are_rare() -> None:
    fragments = [block.id for block in PYTHON if block.prelude]
    assert len(fragments) * 4 <= len(PYTHON), fragments


PYCON = all_blocks("pycon")


@pytest.mark.parametrize("block", PYCON, ids=ids(PYCON))
def test_interpreter_sessions_print_what_they_show(block: Block, workdir: Path) -> None:
    before = [b for b in blocks(block.page) if b.lang == "python" and b.line < block.line]
    namespace = page_upto(before[-1], workdir) if before else {}
    test = doctest.DocTestParser().get_doctest(
        block.code, dict(namespace), block.id, str(block.page), block.line
    )
    output = io.StringIO()
    result = doctest.DocTestRunner().run(test, out=output.write)
    assert result.attempted > 0
    assert result.failed == 0, output.getvalue()


YAML = all_blocks("yaml")
JSON = all_blocks("json")


@pytest.mark.parametrize("block", YAML, ids=ids(YAML))
def test_yaml_block_parses(block: Block) -> None:
    documents = [doc for doc in yaml.safe_load_all(block.code) if doc is not None]
    assert documents
    assert all(isinstance(doc, dict) for doc in documents)


@pytest.mark.parametrize("block", JSON, ids=ids(JSON))
def test_json_block_parses(block: Block) -> None:
    assert isinstance(json.loads(block.code), dict)


# -- shell blocks ---------------------------------------------------------------------------

EXTRAS = set(importlib.metadata.metadata("gracekit").get_all("Provides-Extra") or ())


def check_gracekit(args: list[str], workdir: Path) -> None:
    """Parse with gracekit's own parser; run ``gracekit manifest`` (against the quickstart)."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            gracekit_parser().parse_args(args)
    except SystemExit as exit:
        raise AssertionError(f"gracekit {' '.join(args)}: {stderr.getvalue()}") from exit
    if args[0] == "manifest":
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            assert gracekit_main(args) == 0
        assert [doc for doc in yaml.safe_load_all(stdout.getvalue()) if doc]


def check_uvicorn(args: list[str]) -> None:
    import click

    command = importlib.import_module("uvicorn.main").main
    try:
        context = command.make_context("uvicorn", list(args))
    except click.ClickException as exc:
        raise AssertionError(f"uvicorn {' '.join(args)}: {exc.format_message()}") from exc
    # Under uvicorn's default, auto, a startup that fails before the lifespan runs leaves the
    # app served without gracekit: the docs run it as gracekit run does.
    assert context.params["lifespan"] == "on", f"uvicorn {' '.join(args)}: --lifespan on"


def check_gunicorn(args: list[str]) -> None:
    from gunicorn.config import Config

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parsed = Config(prog="gunicorn").parser().parse_args(args)
    except SystemExit as exit:
        raise AssertionError(f"gunicorn {' '.join(args)}: {stderr.getvalue()}") from exit
    module, _, name = parsed.worker_class.rpartition(".")
    assert hasattr(importlib.import_module(module), name), parsed.worker_class


def check_pip(args: list[str]) -> None:
    """The extras a ``pip install`` of gracekit names exist."""
    for arg in args:
        match = re.fullmatch(r"(gracekit|\.|/\S+)\[([\w,]+)\]", arg)
        if match:
            named = set(match.group(2).split(","))
            assert named <= EXTRAS, f"{arg}: no extra {sorted(named - EXTRAS)}"


CHECKERS = {"gracekit", "uvicorn", "gunicorn", "pip"}
CHECKED = [b for b in SHELL if any(program_of(c)[0] in CHECKERS for c in commands(b.code))]


#: Pages whose commands are written to run from the repository root, not a project of one's own.
FROM_THE_ROOT = {ROOT / "examples" / "orders" / "README.md"}


@pytest.mark.parametrize("block", CHECKED, ids=ids(CHECKED))
def test_shell_block_commands_parse(
    block: Block, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if block.page in FROM_THE_ROOT:
        monkeypatch.chdir(ROOT)
    for command in commands(block.code):
        name, args = program_of(command)
        if name == "gracekit":
            check_gracekit(args, workdir)
        elif name == "uvicorn":
            check_uvicorn(args)
        elif name == "gunicorn":
            check_gunicorn(args)
        elif name == "pip" and args[:1] == ["install"]:
            check_pip(args[1:])


def test_every_gracekit_command_in_a_shell_block_is_checked() -> None:
    uncommented = [re.sub(r"(^|\s)#.*", "", line) for b in SHELL for line in b.code.splitlines()]
    written = sum(
        len(re.findall(r"(?:^|[\s/|&;])gracekit (?:run|manifest|doctor|rollout|demo)\b", line))
        for line in uncommented
    )
    parsed = sum(
        1 for b in CHECKED for command in commands(b.code) if program_of(command)[0] == "gracekit"
    )
    assert parsed == written > 10


def test_the_demo_takes_as_long_as_its_help_says_everywhere() -> None:
    # Measured with `time gracekit demo` on a shared 2-core machine: 22 to 24 s.
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), pytest.raises(SystemExit):
        gracekit_parser().parse_args(["demo", "--help"])
    said = re.search(r"Takes (about \d+ seconds)\.", " ".join(stdout.getvalue().split()))
    assert said is not None, stdout.getvalue()
    for page in (ROOT / "README.md", ROOT / "docs" / "rollout.md"):
        durations = re.findall(r"about \d+ seconds", page.read_text().replace("\n", " "))
        assert durations == [said.group(1)], (page, durations)


def test_gracekit_runs_options_table_lists_every_option() -> None:
    page = (ROOT / "docs" / "termination.md").read_text()
    table = page.split("| Option ", 1)[1].split("\n\n", 1)[0]
    documented = set(re.findall(r"`(--[a-z-]+)", table))
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), pytest.raises(SystemExit):
        gracekit_parser().parse_args(["run", "--help"])
    options = set(re.findall(r"(--[a-z][a-z-]+)", stdout.getvalue())) - {"--help"}
    assert documented == options
