"""x0tta6bl4: a zero-trust, self-healing control-plane suite."""

__version__ = "0.1.0"
