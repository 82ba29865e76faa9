"""Process entry point of every service (``x0 serve <svc>``, ``python -m x0tta6bl4.<svc>``)."""

from __future__ import annotations

import asyncio
import sys

from x0tta6bl4.platform.config import load_settings
from x0tta6bl4.platform.errors import ConfigError
from x0tta6bl4.platform.server import Register, serve
from x0tta6bl4.platform.telemetry import configure_logging

EXIT_CONFIG = 2


def run(service: str, register: Register | None = None) -> int:
    """Load and validate settings, then serve until SIGTERM. Returns the exit code."""
    try:
        settings = load_settings(service)
    except ConfigError as err:
        print(f"x0tta6bl4-{service}: {err}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(service, settings.log_level)
    try:
        return asyncio.run(serve(settings, register))
    except ValueError as err:  # e.g. an unsupported OTEL_TRACES_EXPORTER
        print(f"x0tta6bl4-{service}: {err}", file=sys.stderr)
        return EXIT_CONFIG
