"""Importing optional dependencies with a message that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import *module*, or raise ImportError saying which gracekit extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{feature} needs the {module!r} package, which is not installed; "
            f"install it with: pip install 'gracekit[{extra}]'"
        ) from exc
