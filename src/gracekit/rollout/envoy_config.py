"""Envoy's configuration for the simulator: the static bootstrap and the EDS file.

The bootstrap has one listener, one cluster and the admin interface; the cluster's members come
from an EDS file, rewritten atomically (a temporary file, then a rename: Envoy watches the path
for moves). The listener is ``l7`` (HTTP routing over pooled upstream connections, optionally
with retries) or ``l4`` (a TCP proxy); see :mod:`.envoy` for what each stands for.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

__all__ = [
    "CLUSTER",
    "MODES",
    "UPSTREAM_IDLE_TIMEOUT",
    "bootstrap",
    "load_assignment",
    "write_atomically",
]

CLUSTER = "pods"
MODES = ("l7", "l4")
#: Envoy closes pooled upstream connections idle for this long: less than uvicorn's keep-alive
#: timeout (5 s), so that Envoy, not the server, closes an idle connection, and never reuses
#: one the server is closing at the same moment.
UPSTREAM_IDLE_TIMEOUT = "3s"
_CONNECT_TIMEOUT = "1s"
_ROUTE_TIMEOUT = "120s"


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _http_filter(retries: int) -> dict[str, Any]:
    route: dict[str, Any] = {"cluster": CLUSTER, "timeout": _ROUTE_TIMEOUT}
    if retries:
        route["retry_policy"] = {
            "retry_on": "connect-failure,refused-stream,reset",
            "num_retries": retries,
            # Retry on another pod than the one that just failed.
            "retry_host_predicate": [
                {
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.retry.host."
                        "previous_hosts.v3.PreviousHostsPredicate"
                    },
                }
            ],
            "host_selection_retry_max_attempts": 3,
        }
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network."
            "http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "rollout",
            "codec_type": "AUTO",
            "route_config": {
                "name": "rollout",
                "virtual_hosts": [
                    {
                        "name": "pods",
                        "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "route": route}],
                    }
                ],
            },
            "http_filters": [
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http."
                        "router.v3.Router"
                    },
                }
            ],
        },
    }


def _tcp_filter() -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": "rollout",
            "cluster": CLUSTER,
        },
    }


def bootstrap(*, mode: str, eds_path: Path, retries: int = 0) -> dict[str, Any]:
    """Envoy's bootstrap: the listener (port 0: the OS picks), the EDS cluster, the admin.

    Raises:
        ValueError: an unknown *mode*, or retries in ``l4`` mode (a TCP proxy cannot retry).
    """
    if mode not in MODES:
        raise ValueError(f"proxy mode must be one of {', '.join(MODES)}, got {mode!r}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries!r}")
    if retries and mode == "l4":
        raise ValueError("retries need the l7 proxy mode: a TCP proxy cannot retry a request")
    cluster: dict[str, Any] = {
        "name": CLUSTER,
        "type": "EDS",
        "connect_timeout": _CONNECT_TIMEOUT,
        "lb_policy": "ROUND_ROBIN",
        "eds_cluster_config": {
            "eds_config": {
                "path_config_source": {"path": str(eds_path)},
                "resource_api_version": "V3",
            }
        },
    }
    if mode == "l7":
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3."
                "HttpProtocolOptions",
                "common_http_protocol_options": {"idle_timeout": UPSTREAM_IDLE_TIMEOUT},
                "explicit_http_config": {"http_protocol_options": {}},
            }
        }
    listener = {
        "name": "rollout",
        "address": _address(0),
        "filter_chains": [{"filters": [_http_filter(retries) if mode == "l7" else _tcp_filter()]}],
    }
    return {
        "node": {"id": "gracekit-rollout", "cluster": "gracekit-rollout"},
        "admin": {"address": _address(0)},
        "static_resources": {"listeners": [listener], "clusters": [cluster]},
    }


def load_assignment(ports: Collection[int], *, version: int) -> dict[str, Any]:
    """The EDS file's content: a discovery response with the cluster's endpoints."""
    endpoints = [{"endpoint": {"address": _address(port)}} for port in sorted(ports)]
    return {
        "version_info": str(version),
        "resources": [
            {
                "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
                "cluster_name": CLUSTER,
                "endpoints": [{"lb_endpoints": endpoints}] if endpoints else [],
            }
        ],
    }


def write_atomically(path: Path, content: dict[str, Any]) -> None:
    """Write *content* as JSON to *path* by a rename, so a reader never sees half a file."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(content, out)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
