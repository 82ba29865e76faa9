"""Process entry point of the policy service."""

from x0tta6bl4.platform.main import run


def main() -> int:
    # The policy API is not built yet: the process serves Diagnostics, health and reflection.
    return run("policy")
