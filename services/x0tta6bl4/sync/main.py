"""Process entry point of the sync service."""

from __future__ import annotations

import sys

from x0tta6bl4.platform.config import load_settings
from x0tta6bl4.platform.errors import ConfigError
from x0tta6bl4.platform.main import EXIT_CONFIG, run
from x0tta6bl4.sync.app import make_register
from x0tta6bl4.sync.settings import load_sync_settings


def main() -> int:
    # The sync settings are validated before anything starts, like the platform's own; a bad
    # platform setting is reported by run() (both name the offending variable).
    try:
        sync = load_sync_settings(load_settings("sync"))
    except ConfigError as err:
        print(f"x0tta6bl4-sync: {err}", file=sys.stderr)
        return EXIT_CONFIG
    return run("sync", make_register(sync))
