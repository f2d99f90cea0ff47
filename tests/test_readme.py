"""The README's quickstart is code: this runs it, so it stays true."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tests.support.asgi import client, eventually
from tests.support.server import ROOT

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def quickstart_source() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the README's quickstart has no python block"
    return match.group(1)


async def test_the_quickstart_runs_as_written(
    tmp_path: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "quickstart_main.py"
    path.write_text(quickstart_source())
    monkeypatch.setenv("DATABASE_URL", postgres_dsn)
    spec = importlib.util.spec_from_file_location("quickstart_main", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "quickstart_main", module)
    spec.loader.exec_module(module)

    async with client(module.app) as http:
        response = await http.get("/")
        assert response.status_code == 200
        assert "time" in response.json()
        # The ready jitter holds the first "ready" back by up to 2 s.
        await eventually(lambda: module.lifecycle.readiness().ok, timeout=10)
        assert (await http.get("/health/ready")).status_code == 200
        report = (await http.get("/health/ready?verbose")).json()
        assert report["gates"] == {"cache-warm": "open"}
        assert report["checks"]["postgres"]["status"] == "pass"
        scrape = (await http.get("/metrics")).text
        assert 'http_requests_total{method="GET",route="/",status="200"} 1.0' in scrape
