"""The errors of the Kubernetes tools: input they cannot use, said in one line."""

from __future__ import annotations

from ..errors import GracekitError

__all__ = ["AppLoadError", "InputError"]


class InputError(GracekitError):
    """Input the tools cannot use (a manifest that is not YAML, not a Deployment, ...)."""


class AppLoadError(InputError):
    """``MODULE:APP`` cannot be imported, or is not a gracekit app."""
