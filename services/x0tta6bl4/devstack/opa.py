"""An OPA sidecar: the real ``opa run --server`` on 127.0.0.1 with the authorisation policy."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from x0tta6bl4.devstack.binaries import find


def policy_dir() -> Path:
    """The directory holding the baseline authorisation policy (``authz.rego``)."""
    return Path(str(resources.files("x0tta6bl4.platform") / "rego"))


def opa_command(port: int, *, policies: Path | None = None) -> list[str]:
    """``opa run`` serving the policy on 127.0.0.1:``port``.

    Decision logs go to the console (the process log), which also makes OPA return a
    ``decision_id`` with each answer; the service puts it into its log line and span.
    """
    return [
        find("opa"),
        "run",
        "--server",
        "--addr",
        f"127.0.0.1:{port}",
        "--diagnostic-addr",
        "",
        "--log-format",
        "json",
        "--set",
        "decision_logs.console=true",
        "--ignore",
        "*_test.rego",
        str(policies or policy_dir()),
    ]
