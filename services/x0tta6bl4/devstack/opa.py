"""An OPA sidecar: the real ``opa run --server`` on 127.0.0.1 with the authorisation policy."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from x0tta6bl4.devstack.binaries import find


def policy_dir() -> Path:
    """The directory holding the baseline authorisation policy (``authz.rego``)."""
    return Path(str(resources.files("x0tta6bl4.platform") / "rego"))


def revocation_bundle_settings(identity_http_url: str) -> list[str]:
    """``--set`` flags that make OPA poll the identity service's revocation bundle
    (``data.x0tta6bl4.revocations``) every 1-2 s; see identity/revocation_bundle.py."""
    values = {
        "services.identity.url": identity_http_url.rstrip("/"),
        "bundles.revocations.service": "identity",
        "bundles.revocations.resource": "/v1/bundles/revocations",
        "bundles.revocations.polling.min_delay_seconds": "1",
        "bundles.revocations.polling.max_delay_seconds": "2",
    }
    return [arg for name, value in values.items() for arg in ("--set", f"{name}={value}")]


def opa_command(
    port: int, *, policies: Path | None = None, identity_http_url: str = ""
) -> list[str]:
    """``opa run`` serving the policy on 127.0.0.1:``port``.

    Decision logs go to the console (the process log), which also makes OPA return a
    ``decision_id`` with each answer; the service puts it into its log line and span.
    With ``identity_http_url`` it also loads the bans the identity service publishes.
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
        *(revocation_bundle_settings(identity_http_url) if identity_http_url else []),
        "--ignore",
        "*_test.rego",
        str(policies or policy_dir()),
    ]
