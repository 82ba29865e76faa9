"""Moved to :mod:`tests.support.linearizability` (shared with the system tests); this module
keeps the simulation's sibling import (``from linearizability import ...``) working."""

from tests.support.linearizability import INF, CheckResult, Op, check_kv, check_register

__all__ = ["INF", "CheckResult", "Op", "check_kv", "check_register"]
