"""Process entry point of the consensus service."""

from x0tta6bl4.platform.main import run


def main() -> int:
    # The consensus API is not built yet: the process serves Diagnostics, health and reflection.
    return run("consensus")
