"""`x0 up` brings every component to ready, `x0 status --json` says so, `x0 down` leaves nothing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.system

X0 = [sys.executable, "-m", "x0tta6bl4.cli"]


def _free_port_base() -> int:
    """A base whose whole range (base .. base+160) is free on 127.0.0.1."""
    for base in range(21000, 60000, 500):
        try:
            for offset in (79, 81, 90, 93, *range(100, 160)):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range")


def _processes_under(state_dir: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(state_dir) in cmdline:
            found.append(f"{proc.info['pid']}: {cmdline[:120]}")
    return found


def test_up_status_down(tmp_path: Path) -> None:
    state = tmp_path / "suite"
    env = dict(os.environ)
    up = subprocess.run(
        [*X0, "up", "--state-dir", str(state), "--port-base", str(_free_port_base())],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        status = subprocess.run(
            [*X0, "status", "--json", "--state-dir", str(state)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        report = json.loads(status.stdout)
        components = {c["name"]: c for c in report["components"]}
        not_ready = [n for n, c in components.items() if not c["ready"]]
        assert report["ready"] is True and not not_ready, not_ready
        expected = {"spire-server", "redis", "prometheus", "alertmanager", "agent-operator"}
        processes = [
            "identity",
            "policy",
            "healer",
            "ops",
            *(f"consensus-{i}" for i in (1, 2, 3)),
            *(f"sync-{i}" for i in (1, 2, 3)),
        ]
        for name in processes:
            expected |= {name, f"opa-{name}", f"agent-{name}"}
            service = name.split("-")[0]
            assert components[name]["spiffe_id"] == (
                f"spiffe://x0tta6bl4.mesh/ns/local/sa/{service}"
            )
            assert components[name]["svid_expires_at"]
        assert expected <= set(components)
        assert _processes_under(state), "the suite's processes should be visible while up"
        whoami = subprocess.run(
            [*X0, "whoami", "consensus-2", "--state-dir", str(state)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert whoami.returncode == 0, whoami.stderr
        answer = json.loads(whoami.stdout)
        assert answer["callerSpiffeId"] == "spiffe://x0tta6bl4.mesh/ns/local/sa/operator"
        assert answer["serverSpiffeId"] == "spiffe://x0tta6bl4.mesh/ns/local/sa/consensus"

        # Every workload outside the bootstrap set was registered through identity's API.
        listed = subprocess.run(
            [*X0, "identity", "list", "--json", "--state-dir", str(state)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        records = [json.loads(line) for line in listed.stdout.splitlines()]
        assert {r["workload"]["spiffeId"].rsplit("/", 1)[1] for r in records} == {
            "sync",
            "policy",
            "healer",
            "ops",
        }
        assert {r["author"] for r in records} == {"spiffe://x0tta6bl4.mesh/ns/local/sa/operator"}

        def kv(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*X0, "kv", "--state-dir", str(state), *argv],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        put = kv("put", "/x0/ops/greeting", "hello")
        assert put.returncode == 0, put.stderr
        revision = json.loads(put.stdout)["revision"]
        got = kv("get", "/x0/ops/greeting")
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["value"] == "hello"
        assert json.loads(got.stdout)["mod_revision"] == revision
        assert kv("get", "/x0/ops/absent").returncode == 3
        watched = kv("watch", "/x0/ops/", "--start-revision", str(revision), "--count", "1")
        assert watched.returncode == 0, watched.stderr
        assert json.loads(watched.stdout)["key"] == "/x0/ops/greeting"
    finally:
        down = subprocess.run(
            [*X0, "down", "--state-dir", str(state)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert down.returncode == 0, down.stdout + down.stderr
    assert _processes_under(state) == []
    status_after = subprocess.run(
        [*X0, "status", "--json", "--state-dir", str(state)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status_after.returncode != 0
