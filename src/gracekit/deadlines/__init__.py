"""Request deadlines: the time budget a request arrives with, and (to come) its enforcement."""

from __future__ import annotations

from .headers import BUDGET_HEADERS as BUDGET_HEADERS
from .headers import inbound_budget as inbound_budget

__all__ = ["BUDGET_HEADERS", "inbound_budget"]
