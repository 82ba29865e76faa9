"""Settings of the identity service, from ``X0_IDENTITY_*`` (or its ``identity:`` section of
``X0_CONFIG_FILE``), validated at start-up with every problem named.

===================================  ======================================================
``X0_IDENTITY_SPIRE_SOCKET``         the SPIRE server's admin socket (required), as the
                                     ``spire-server -socketPath`` flag takes it
``X0_IDENTITY_SPIRE_HEALTH_URL``     the server's health listener, ``http://127.0.0.1:8080``
                                     (its ``/live`` and ``/ready``); unset = not polled, and
                                     health then rests on the admin API alone
``X0_IDENTITY_RECONCILE_INTERVAL_S`` seconds between periodic reconcile passes (default 10)
``X0_IDENTITY_HEALTH_INTERVAL_S``    seconds between SPIRE health polls (default 2)
``X0_IDENTITY_LEASE_TTL_S``          TTL of the reconciler lease (default 10): how soon
                                     another replica takes over from a dead one
``X0_IDENTITY_VALIDATION_POLICIES``  a YAML/JSON file of named certificate validation
                                     policies (default: only the built-in ``default``)
===================================  ======================================================

The consensus store is named in ``X0_DEPENDENCIES`` (``consensus=h1:p1|h2:p2|h3:p3``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from x0tta6bl4.platform.config import EnvReader, Settings, int_between, seconds_between
from x0tta6bl4.platform.errors import ConfigError


def _socket(value: str) -> str:
    path = value.removeprefix("unix://").removeprefix("unix:")
    if not path.startswith("/"):
        raise ValueError(f"must be an absolute socket path, got {value!r}")
    return path


def _health_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+\Z", value.rstrip("/")):
        raise ValueError(f"must be http(s)://host:port, got {value!r}")
    return value.rstrip("/")


def _file(value: str) -> str:
    return value


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    spire_socket: str
    spire_health_url: str = ""
    reconcile_interval_s: float = 10.0
    health_interval_s: float = 2.0
    lease_ttl_s: int = 10
    validation_policies: str = ""


def load_identity_settings(platform: Settings, env: Mapping[str, str]) -> IdentitySettings:
    reader = EnvReader(env)
    get = reader.get
    socket = get("X0_IDENTITY_SPIRE_SOCKET", _socket, "")
    if not socket and not any(p.startswith("X0_IDENTITY_SPIRE_SOCKET") for p in reader.problems):
        reader.problems.append(
            "X0_IDENTITY_SPIRE_SOCKET: not set; the SPIRE server's admin socket is required"
        )
    if "consensus" not in platform.dependencies:
        reader.problems.append(
            "X0_DEPENDENCIES: must name consensus (consensus=h1:p1|h2:p2|...), where the "
            "identity service keeps its workloads"
        )
    settings = IdentitySettings(
        spire_socket=socket,
        spire_health_url=get("X0_IDENTITY_SPIRE_HEALTH_URL", _health_url, ""),
        reconcile_interval_s=get(
            "X0_IDENTITY_RECONCILE_INTERVAL_S", seconds_between(0.1, 3600), 10.0
        ),
        health_interval_s=get("X0_IDENTITY_HEALTH_INTERVAL_S", seconds_between(0.1, 600), 2.0),
        lease_ttl_s=get("X0_IDENTITY_LEASE_TTL_S", int_between(2, 300), 10),
        validation_policies=get("X0_IDENTITY_VALIDATION_POLICIES", _file, ""),
    )
    if reader.problems:
        raise ConfigError(reader.problems)
    return settings
