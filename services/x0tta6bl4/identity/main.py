"""Process entry point of the identity service."""

from x0tta6bl4.platform.main import run


def main() -> int:
    # The identity API is not built yet: the process serves Diagnostics, health and reflection.
    return run("identity")
