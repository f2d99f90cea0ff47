"""Each example's Dockerfile installs what its app imports: the image's ``pip install`` lines are
run into a fresh virtual environment (gracekit from this checkout, as the image builds it), and
the app is imported there, with nothing from the test environment on the path. No docker."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.server import EXAMPLES, ROOT

DOCKERFILES = sorted(EXAMPLES.glob("*/Dockerfile"))


@dataclass
class Image:
    """What a Dockerfile does, as far as this test needs it."""

    copies: list[tuple[list[str], str]] = field(default_factory=list)  # (sources, destination)
    installs: list[list[str]] = field(default_factory=list)  # the arguments of pip install
    workdir: str = "/"
    cmd: list[str] = field(default_factory=list)


def read_image(dockerfile: Path) -> Image:
    image = Image()
    text = dockerfile.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        op, _, arg = line.strip().partition(" ")
        op = op.upper()
        if op == "COPY":
            *sources, destination = arg.split()
            image.copies.append((sources, destination))
        elif op == "RUN":
            for command in arg.split("&&"):
                words = shlex.split(command)
                if words[:2] == ["pip", "install"] or words[1:3] == ["-m", "pip"]:
                    start = 2 if words[0] == "pip" else 4
                    image.installs.append([w for w in words[start:] if not w.startswith("-")])
        elif op == "WORKDIR":
            image.workdir = arg.strip()
        elif op == "CMD":
            image.cmd = json.loads(arg)
    return image


def build(image: Image, root: Path) -> Path:
    """Lay the image's files out under *root* and install its packages into a fresh venv; the
    venv's python."""
    for sources, destination in image.copies:
        target = root / destination.lstrip("/")
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, target)
            else:
                into = target / path.name if destination.endswith("/") else target
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, into)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [site] = venv.glob("lib/python*/site-packages")
    for requirements in image.installs:
        # Paths in the image (the checkout COPYed to /build) are found under root.
        local = [str(root / r.lstrip("/")) if r.startswith("/") else r for r in requirements]
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--ignore-installed", "--target", str(site), *local],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    return venv / "bin" / "python"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_the_image_installs_what_its_app_imports(dockerfile: Path, tmp_path: Path) -> None:
    image = read_image(dockerfile)
    assert image.installs, "the Dockerfile installs nothing"
    assert image.cmd[:2] == ["gracekit", "run"], image.cmd
    python = build(image, tmp_path)
    module, _, attribute = image.cmd[2].partition(":")
    # -I: no PYTHONPATH, no user site, no current directory; the venv has no system site.
    program = (
        "import importlib, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "app = getattr(importlib.import_module(sys.argv[2]), sys.argv[3])\n"
        "import gracekit.server.serve, uvicorn\n"  # what `gracekit run` needs on top
        "print(type(app).__name__, sorted({p.split('site-packages')[0] for p in sys.path}))\n"
    )
    done = subprocess.run(
        [str(python), "-I", "-c", program, str(tmp_path / image.workdir.lstrip("/")), module,
         attribute],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(ROOT / ".venv") not in done.stdout, done.stdout
    assert str(Path(sys.prefix)) not in done.stdout, done.stdout
