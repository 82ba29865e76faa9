"""Settings of the policy service, from ``X0_POLICY_*`` (or its ``policy:`` section of
``X0_CONFIG_FILE``), validated at start-up with every problem named.

=====================================  ====================================================
``X0_POLICY_BUNDLE_ADDR``              host:port of the mTLS listener that serves bundles to
                                       the sidecars and takes their status and decision logs
                                       (required)
``X0_POLICY_SIGNING_KEY``              PEM file of the ECDSA P-256 key bundles are signed
                                       with (required; sidecars hold the public key)
``X0_POLICY_SIGNING_KEY_ID``           the key id sidecars know it by (default
                                       ``x0tta6bl4-policy``)
``X0_POLICY_OPA``                      the ``opa`` executable used to check, test, build
                                       and evaluate candidates (default: ``opa`` on PATH)
``X0_POLICY_SHADOW_DECISIONS``         how many recorded decisions a candidate is
                                       shadow-evaluated against (default 1000, 0 = none)
``X0_POLICY_DECISIONS_MAX``            decision-log retention by count (default 100000)
``X0_POLICY_DECISIONS_MAX_AGE_S``      decision-log retention by age (default 86400)
=====================================  ====================================================

The consensus store is named in ``X0_DEPENDENCIES``; the decision log and the sidecar
statuses live in Redis (``X0_REDIS_URL``, rebuildable state).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from x0tta6bl4.platform.config import EnvReader, Settings, int_between, seconds_between
from x0tta6bl4.platform.errors import ConfigError

_ADDR = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}\Z")
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def _addr(value: str) -> str:
    if not _ADDR.match(value) or not 0 <= int(value.rpartition(":")[2]) <= 65535:
        raise ValueError(f"must be host:port, got {value!r}")
    return value


def _readable_file(value: str) -> str:
    if not os.path.isfile(value) or not os.access(value, os.R_OK):
        raise ValueError(f"{value!r} is not a readable file")
    return value


def _key_id(value: str) -> str:
    if not _KEY_ID.match(value):
        raise ValueError(f"must be 1-64 letters, digits, '_', '.', '-', got {value!r}")
    return value


def _executable(value: str) -> str:
    found = shutil.which(value)
    if not found:
        raise ValueError(f"{value!r} is not an executable (nor one on PATH)")
    return found


@dataclass(frozen=True, slots=True)
class PolicySettings:
    bundle_addr: str
    signing_key: str
    signing_key_id: str = "x0tta6bl4-policy"
    opa: str = "opa"
    shadow_decisions: int = 1000
    decisions_max: int = 100_000
    decisions_max_age_s: float = 86_400.0


def load_policy_settings(platform: Settings, env: Mapping[str, str]) -> PolicySettings:
    reader = EnvReader(env)
    get = reader.get
    for name in ("X0_POLICY_BUNDLE_ADDR", "X0_POLICY_SIGNING_KEY"):
        if not env.get(name):
            reader.problems.append(f"{name}: not set (required)")
    if "consensus" not in platform.dependencies:
        reader.problems.append(
            "X0_DEPENDENCIES: must name consensus (consensus=h1:p1|h2:p2|...), where the "
            "policy service keeps its revisions"
        )
    settings = PolicySettings(
        bundle_addr=get("X0_POLICY_BUNDLE_ADDR", _addr, ""),
        signing_key=get("X0_POLICY_SIGNING_KEY", _readable_file, ""),
        signing_key_id=get("X0_POLICY_SIGNING_KEY_ID", _key_id, "x0tta6bl4-policy"),
        opa=get("X0_POLICY_OPA", _executable, shutil.which("opa") or "opa"),
        shadow_decisions=get("X0_POLICY_SHADOW_DECISIONS", int_between(0, 100_000), 1000),
        decisions_max=get("X0_POLICY_DECISIONS_MAX", int_between(100, 10_000_000), 100_000),
        decisions_max_age_s=get(
            "X0_POLICY_DECISIONS_MAX_AGE_S", seconds_between(60, 90 * 86_400), 86_400.0
        ),
    )
    if reader.problems:
        raise ConfigError(reader.problems)
    return settings
