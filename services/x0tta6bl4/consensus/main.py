"""Process entry point of the consensus service."""

from __future__ import annotations

from x0tta6bl4.consensus.app import make_register
from x0tta6bl4.consensus.settings import load_raft_settings
from x0tta6bl4.platform.main import run


def main() -> int:
    # The consensus settings are validated with the platform's, before anything starts; a bad
    # value of either exits 2 naming the variable.
    return run("consensus", lambda settings: make_register(load_raft_settings(settings)))
