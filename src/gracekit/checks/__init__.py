"""Built-in dependency checks. Each imports its driver only when called, so importing this
package needs none of them."""

from __future__ import annotations

from .http import http_check as http_check
from .postgres import postgres_check as postgres_check
from .redis import redis_check as redis_check
from .tcp import tcp_check as tcp_check

__all__ = ["http_check", "postgres_check", "redis_check", "tcp_check"]
