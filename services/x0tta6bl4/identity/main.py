"""Process entry point of the identity service."""

from __future__ import annotations

from collections.abc import Mapping

from x0tta6bl4.identity.app import load_policies, make_register
from x0tta6bl4.identity.settings import load_identity_settings
from x0tta6bl4.platform.config import Settings
from x0tta6bl4.platform.errors import ConfigError
from x0tta6bl4.platform.main import run
from x0tta6bl4.platform.server import Register


def build(settings: Settings, environ: Mapping[str, str]) -> Register:
    """The identity settings and validation policies, every problem named at once."""
    problems: list[str] = []
    identity = None
    try:
        identity = load_identity_settings(settings, environ)
    except ConfigError as err:
        problems += err.problems
    try:
        policies = load_policies(environ.get("X0_IDENTITY_VALIDATION_POLICIES", ""))
    except ConfigError as err:
        problems += err.problems
    if problems or identity is None:
        raise ConfigError(problems)
    return make_register(identity, policies)


def main() -> int:
    return run("identity", build)
