"""First on PYTHONPATH, this hides the real sniffio as a missing module: anyio then runs as it
does where sniffio is not installed (it tells its backend from the running loop)."""

raise ModuleNotFoundError("sniffio is hidden by tests/apps/without_sniffio")
