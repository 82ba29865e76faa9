"""Process entry point of the sync service."""

from __future__ import annotations

from x0tta6bl4.platform.main import run
from x0tta6bl4.sync.app import make_register
from x0tta6bl4.sync.settings import load_sync_settings


def main() -> int:
    # The sync settings are validated with the platform's, before anything starts; a bad
    # value of either exits 2 naming the variable.
    return run("sync", lambda settings, env: make_register(load_sync_settings(settings, env)))
