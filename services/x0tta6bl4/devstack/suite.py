"""`x0 up`, `x0 status`, `x0 down`: the whole suite as processes under supervisord.

Bring-up order: SPIRE server → join tokens + registration entries → one SPIRE agent per
workload → OPA sidecars, Redis, Prometheus, Alertmanager → the six services. Each step waits
until its components answer before the next starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from x0tta6bl4.devstack.binaries import find
from x0tta6bl4.devstack.opa import opa_command
from x0tta6bl4.devstack.plan import (
    ALERTMANAGER_CONFIG,
    WORKLOADS,
    SuitePlan,
    prometheus_config,
)
from x0tta6bl4.devstack.spire import Entry, SpireAgent, SpireServer
from x0tta6bl4.devstack.supervisor import Program, Supervisor
from x0tta6bl4.platform.config import SERVICES

Say = Callable[[str], None]


@dataclasses.dataclass(frozen=True, slots=True)
class ComponentStatus:
    name: str
    kind: str
    address: str
    ready: bool
    spiffe_id: str = ""
    svid_expires_at: str = ""
    detail: str = ""


def _http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _redis_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _programs(plan: SuitePlan, server: SpireServer) -> list[Program]:
    state = plan.state_dir
    programs = [Program("spire-server", server.command())]
    for workload in WORKLOADS:
        programs.append(
            Program(
                f"agent-{workload}",
                SpireAgent(plan.agent_dir(workload), workload, server).command(),
            )
        )
    for service in SERVICES:
        programs.append(Program(f"opa-{service}", opa_command(plan.opa_port(service))))
    programs.append(
        Program(
            "redis",
            [
                find("redis-server"),
                "--bind",
                "127.0.0.1",
                "--port",
                str(plan.redis_port),
                "--dir",
                str(state / "redis"),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
        )
    )
    programs.append(
        Program(
            "prometheus",
            [
                find("prometheus"),
                f"--config.file={state / 'prometheus' / 'prometheus.yml'}",
                f"--storage.tsdb.path={state / 'prometheus' / 'data'}",
                f"--web.listen-address=127.0.0.1:{plan.prometheus_port}",
            ],
        )
    )
    programs.append(
        Program(
            "alertmanager",
            [
                find("prometheus-alertmanager"),
                f"--config.file={state / 'alertmanager' / 'alertmanager.yml'}",
                f"--storage.path={state / 'alertmanager' / 'data'}",
                f"--web.listen-address=127.0.0.1:{plan.alertmanager_port}",
                "--cluster.listen-address=",
            ],
        )
    )
    for service in SERVICES:
        programs.append(
            Program(
                service,
                [sys.executable, "-m", f"x0tta6bl4.{service}"],
                env=plan.service_env(service),
            )
        )
    return programs


def _wait(
    what: str, check: Callable[[], bool], timeout_s: float, say: Say, log: Path | None = None
) -> None:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            hint = f" (see {log})" if log else ""
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s{hint}")
        time.sleep(0.2)
    say(f"  ready: {what} ({time.monotonic() - started:.1f}s)")


def up(plan: SuitePlan, say: Say = print, timeout_s: float = 120.0) -> None:
    state = plan.state_dir
    for d in ("redis", "prometheus/data", "alertmanager/data", "logs"):
        (state / d).mkdir(parents=True, exist_ok=True)
    plan.save()
    (state / "prometheus" / "prometheus.yml").write_text(prometheus_config(plan))
    (state / "alertmanager" / "alertmanager.yml").write_text(ALERTMANAGER_CONFIG)
    server = SpireServer(plan.spire_dir / "server", port=plan.spire_port, sync_interval="1s")
    server.write_config()
    supervisor = Supervisor(state)
    already = supervisor.pid() is not None
    supervisor.write(_programs(plan, server))
    supervisor.start_daemon()
    say(f"supervisord {'running' if already else 'started'}; state in {state}")

    supervisor.start("spire-server")
    _wait("spire-server", server.healthy, timeout_s, say, plan.logs_dir / "spire-server.log")

    bundle = server.bundle_pem()
    agents: list[SpireAgent] = []
    for workload in WORKLOADS:
        agent = SpireAgent(plan.agent_dir(workload), workload, server)
        agents.append(agent)
        if agent.healthy():
            continue
        shutil.rmtree(agent.root / "data", ignore_errors=True)  # re-attest with a fresh token
        spiffe_id = plan.spiffe_id(workload)
        if not server.entry_ids(spiffe_id):
            server.create_entry(
                Entry(
                    spiffe_id=spiffe_id,
                    parent_id=server.agent_alias(workload),
                    selectors=(f"unix:uid:{os.getuid()}",),
                    dns_names=plan.dns_names(workload),
                    x509_svid_ttl_s=plan.svid_ttl_s,
                )
            )
        agent.write_config(server.join_token(workload), bundle)
    supervisor.start(*(f"agent-{w}" for w in WORKLOADS))
    for agent in agents:
        _wait(
            f"agent-{agent.name}",
            agent.healthy,
            timeout_s,
            say,
            plan.logs_dir / f"agent-{agent.name}.log",
        )

    supervisor.start(*(f"opa-{s}" for s in SERVICES), "redis", "prometheus", "alertmanager")
    for service in SERVICES:
        _wait(
            f"opa-{service}",
            functools.partial(_http_ok, f"http://127.0.0.1:{plan.opa_port(service)}/health"),
            timeout_s,
            say,
            plan.logs_dir / f"opa-{service}.log",
        )
    _wait("redis", lambda: _redis_ok(plan.redis_port), timeout_s, say)
    _wait(
        "prometheus",
        lambda: _http_ok(f"http://127.0.0.1:{plan.prometheus_port}/-/ready"),
        timeout_s,
        say,
        plan.logs_dir / "prometheus.log",
    )
    _wait(
        "alertmanager",
        lambda: _http_ok(f"http://127.0.0.1:{plan.alertmanager_port}/-/ready"),
        timeout_s,
        say,
        plan.logs_dir / "alertmanager.log",
    )

    supervisor.start(*SERVICES)
    for service in SERVICES:
        _wait(
            service,
            functools.partial(_http_ok, f"http://127.0.0.1:{plan.http_port(service)}/readyz"),
            timeout_s,
            say,
            plan.logs_dir / f"{service}.log",
        )


async def _whoami(plan: SuitePlan, service: str) -> tuple[str, str, str]:
    """(server SPIFFE ID, SVID expiry, error) of a service, asked over mTLS as the operator."""
    from x0tta6bl4.devstack.operator import whoami

    try:
        response = await whoami(plan, service, timeout_s=3.0)
    except Exception as err:
        return "", "", str(err).splitlines()[0][:200]
    expires = response.server_svid_expires_at.ToDatetime(tzinfo=dt.UTC).isoformat()
    return response.server_spiffe_id, expires, ""


def status(plan: SuitePlan) -> list[ComponentStatus]:
    server = SpireServer(plan.spire_dir / "server", port=plan.spire_port, sync_interval="1s")
    result = [
        ComponentStatus(
            "spire-server",
            "spire",
            f"127.0.0.1:{plan.spire_port}",
            server.healthy(),
            f"spiffe://{server.trust_domain}",
        )
    ]
    for workload in WORKLOADS:
        agent = SpireAgent(plan.agent_dir(workload), workload, server)
        result.append(
            ComponentStatus(
                f"agent-{workload}",
                "spire-agent",
                f"unix://{agent.socket_path}",
                agent.healthy(),
                server.agent_alias(workload),
            )
        )
    for service in SERVICES:
        port = plan.opa_port(service)
        result.append(
            ComponentStatus(
                f"opa-{service}",
                "opa",
                f"http://127.0.0.1:{port}",
                _http_ok(f"http://127.0.0.1:{port}/health"),
            )
        )
    result.append(
        ComponentStatus(
            "redis", "redis", f"127.0.0.1:{plan.redis_port}", _redis_ok(plan.redis_port)
        )
    )
    for name, port in (
        ("prometheus", plan.prometheus_port),
        ("alertmanager", plan.alertmanager_port),
    ):
        result.append(
            ComponentStatus(
                name, name, f"http://127.0.0.1:{port}", _http_ok(f"http://127.0.0.1:{port}/-/ready")
            )
        )

    async def services() -> list[ComponentStatus]:
        answers = await asyncio.gather(*(_whoami(plan, s) for s in SERVICES))
        rows = []
        for service, (spiffe_id, expires, error) in zip(SERVICES, answers, strict=True):
            ready = _http_ok(f"http://127.0.0.1:{plan.http_port(service)}/readyz") and not error
            rows.append(
                ComponentStatus(
                    service,
                    "service",
                    f"127.0.0.1:{plan.grpc_port(service)}",
                    ready,
                    spiffe_id,
                    expires,
                    error or f"metrics http://127.0.0.1:{plan.http_port(service)}/metrics",
                )
            )
        return rows

    return result + asyncio.run(services())


def down(state_dir: Path, say: Say = print) -> None:
    supervisor = Supervisor(state_dir)
    if supervisor.pid() is None:
        say(f"nothing running in {state_dir}")
        return
    supervisor.shutdown()
    say("stopped")
