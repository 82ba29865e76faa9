"""Process entry point of the consensus service."""

from __future__ import annotations

import sys

from x0tta6bl4.consensus.app import make_register
from x0tta6bl4.consensus.settings import load_raft_settings
from x0tta6bl4.platform.config import load_settings
from x0tta6bl4.platform.errors import ConfigError
from x0tta6bl4.platform.main import EXIT_CONFIG, run


def main() -> int:
    # The Raft settings are validated before anything starts, like the platform's own; a bad
    # platform setting is reported by run() (both name the offending variable).
    try:
        raft = load_raft_settings(load_settings("consensus"))
    except ConfigError as err:
        print(f"x0tta6bl4-consensus: {err}", file=sys.stderr)
        return EXIT_CONFIG
    return run("consensus", make_register(raft))
