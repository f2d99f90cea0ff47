"""Kubernetes tooling: manifests computed from a gracekit app, and a Deployment linter.

``gracekit manifest`` writes probes, the preStop hook and the grace period from the app's own
configuration; ``gracekit doctor`` reads a Deployment and says where it disagrees with the app.
Both need the ``kubernetes`` extra (PyYAML) only for reading and writing YAML.
"""

from __future__ import annotations

from .appinfo import AppInfo as AppInfo
from .appinfo import inspect_app as inspect_app
from .doctor import diagnose as diagnose
from .findings import Finding as Finding
from .manifest import ManifestOptions as ManifestOptions
from .manifest import build_manifest as build_manifest

__all__ = [
    "AppInfo",
    "Finding",
    "ManifestOptions",
    "build_manifest",
    "diagnose",
    "inspect_app",
]
