"""Process entry point of the consensus service."""

from __future__ import annotations

from collections.abc import Mapping

from x0tta6bl4.consensus.app import make_register
from x0tta6bl4.consensus.key_permissions_source import load_kv_authz_settings
from x0tta6bl4.consensus.settings import load_raft_settings
from x0tta6bl4.platform.config import Settings
from x0tta6bl4.platform.errors import ConfigError
from x0tta6bl4.platform.main import run
from x0tta6bl4.platform.server import Register


def build(settings: Settings, environ: Mapping[str, str]) -> Register:
    """The consensus settings (Raft, key-range authorisation), every problem named at once."""
    problems: list[str] = []
    try:
        raft = load_raft_settings(settings, environ)
    except ConfigError as err:
        problems += err.problems
    try:
        kv_authz = load_kv_authz_settings(environ)
    except ConfigError as err:
        problems += err.problems
    if problems:
        raise ConfigError(problems)
    return make_register(raft, kv_authz)


def main() -> int:
    # The consensus settings are validated with the platform's, before anything starts; a bad
    # value of either exits 2 naming the variable.
    return run("consensus", build)
