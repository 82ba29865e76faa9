"""`x0 up`, `x0 status`, `x0 down`: the whole suite as processes under supervisord.

Bring-up order: SPIRE server → join tokens, and the registration entries of identity,
consensus and the operator (``devstack.registration``) → one SPIRE agent per workload → OPA
sidecars, Redis, Prometheus, Alertmanager → consensus and identity → the other workloads
applied through identity (which creates their entries) → the other services. Each step
waits until its components answer before the next starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
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
from x0tta6bl4.devstack.plan import ALERTMANAGER_CONFIG, Instance, SuitePlan, prometheus_config
from x0tta6bl4.devstack.registration import (
    BOOTSTRAP,
    bootstrap_entry,
    is_bootstrap,
    register_through_identity,
)
from x0tta6bl4.devstack.spire import SpireAgent, SpireServer
from x0tta6bl4.devstack.supervisor import Program, Supervisor

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
    for workload in plan.workloads:
        programs.append(
            Program(
                f"agent-{workload}",
                SpireAgent(plan.agent_dir(workload), workload, server).command(),
            )
        )
    for inst in plan.instances():
        programs.append(
            Program(
                f"opa-{inst.name}",
                opa_command(inst.opa_port, identity_http_url=plan.identity_http_url),
            )
        )
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
    for inst in plan.instances():
        programs.append(
            Program(
                inst.name,
                [sys.executable, "-m", f"x0tta6bl4.{inst.service}"],
                env=plan.service_env(inst),
            )
        )
    return programs


def _wait(what: str, check: Callable[[], bool], timeout_s: float, say: Say, logs: Path) -> None:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            hint = f" (see {logs / what}.log)"
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
    server = _spire_server(plan)
    server.write_config()
    supervisor = Supervisor(state)
    already = supervisor.pid() is not None
    supervisor.write(_programs(plan, server))
    supervisor.start_daemon()
    say(f"supervisord {'running' if already else 'started'}; state in {state}")

    supervisor.start("spire-server")
    _wait("spire-server", server.healthy, timeout_s, say, plan.logs_dir)

    bundle = server.bundle_pem()
    agents: list[SpireAgent] = []
    for workload in plan.workloads:
        agent = SpireAgent(plan.agent_dir(workload), workload, server)
        agents.append(agent)
        if agent.healthy():
            continue
        shutil.rmtree(agent.root / "data", ignore_errors=True)  # re-attest with a fresh token
        if is_bootstrap(plan, workload):
            entry = bootstrap_entry(plan, server, workload)
            if not server.entry_ids(entry.spiffe_id, entry.parent_id):
                server.create_entry(entry)
        agent.write_config(server.join_token(plan.agent_alias_name(workload)), bundle)
    supervisor.start(*(f"agent-{w}" for w in plan.workloads))
    for agent in agents:
        _wait(f"agent-{agent.name}", agent.healthy, timeout_s, say, plan.logs_dir)

    instances = plan.instances()
    supervisor.start(*(f"opa-{i.name}" for i in instances), "redis", "prometheus", "alertmanager")
    for inst in instances:
        _wait(
            f"opa-{inst.name}", _http_check(inst.opa_port, "/health"), timeout_s, say, plan.logs_dir
        )
    _wait("redis", functools.partial(_redis_ok, plan.redis_port), timeout_s, say, plan.logs_dir)
    for name, port in (
        ("prometheus", plan.prometheus_port),
        ("alertmanager", plan.alertmanager_port),
    ):
        _wait(name, _http_check(port, "/-/ready"), timeout_s, say, plan.logs_dir)

    first = [i for i in instances if i.service in BOOTSTRAP]
    supervisor.start(*(i.name for i in first))
    for inst in first:
        _wait(inst.name, _http_check(inst.http_port, "/readyz"), timeout_s, say, plan.logs_dir)
    started = time.monotonic()
    applied, changed = asyncio.run(register_through_identity(plan, server))
    say(
        f"  registered {applied} workloads through identity ({changed} changed, "
        f"{time.monotonic() - started:.1f}s)"
    )
    rest = [i for i in instances if i.service not in BOOTSTRAP]
    supervisor.start(*(i.name for i in rest))
    for inst in rest:
        _wait(inst.name, _http_check(inst.http_port, "/readyz"), timeout_s, say, plan.logs_dir)


def _spire_server(plan: SuitePlan) -> SpireServer:
    server = SpireServer(
        plan.spire_dir / "server",
        port=plan.spire_port,
        sync_interval="1s",
        health_port=plan.spire_health_port,
    )
    assert server.socket_path == plan.spire_socket, (server.socket_path, plan.spire_socket)
    return server


def _http_check(port: int, path: str) -> Callable[[], bool]:
    return functools.partial(_http_ok, f"http://127.0.0.1:{port}{path}")


async def _whoami(plan: SuitePlan, inst: Instance) -> tuple[str, str, str]:
    """(server SPIFFE ID, SVID expiry, error) of a service process, asked as the operator."""
    from x0tta6bl4.devstack.operator import whoami

    try:
        response = await whoami(plan, inst, timeout_s=3.0)
    except Exception as err:
        return "", "", str(err).splitlines()[0][:200]
    expires = response.server_svid_expires_at.ToDatetime(tzinfo=dt.UTC).isoformat()
    return response.server_spiffe_id, expires, ""


def status(plan: SuitePlan) -> list[ComponentStatus]:
    server = _spire_server(plan)
    rows = [
        ComponentStatus(
            "spire-server",
            "spire",
            f"127.0.0.1:{plan.spire_port}",
            server.healthy(),
            f"spiffe://{server.trust_domain}",
        )
    ]
    for workload in plan.workloads:
        agent = SpireAgent(plan.agent_dir(workload), workload, server)
        rows.append(
            ComponentStatus(
                f"agent-{workload}",
                "spire-agent",
                f"unix://{agent.socket_path}",
                agent.healthy(),
                server.agent_alias(plan.agent_alias_name(workload)),
            )
        )
    instances = plan.instances()
    for inst in instances:
        rows.append(
            ComponentStatus(
                f"opa-{inst.name}",
                "opa",
                f"http://127.0.0.1:{inst.opa_port}",
                _http_check(inst.opa_port, "/health")(),
            )
        )
    rows.append(
        ComponentStatus(
            "redis", "redis", f"127.0.0.1:{plan.redis_port}", _redis_ok(plan.redis_port)
        )
    )
    for name, port in (
        ("prometheus", plan.prometheus_port),
        ("alertmanager", plan.alertmanager_port),
    ):
        rows.append(
            ComponentStatus(name, name, f"http://127.0.0.1:{port}", _http_check(port, "/-/ready")())
        )

    async def ask_all() -> list[tuple[str, str, str]]:
        return list(await asyncio.gather(*(_whoami(plan, i) for i in instances)))

    for inst, (spiffe_id, expires, error) in zip(instances, asyncio.run(ask_all()), strict=True):
        ready = _http_check(inst.http_port, "/readyz")() and not error
        detail = error or f"metrics http://127.0.0.1:{inst.http_port}/metrics"
        rows.append(
            ComponentStatus(
                inst.name,
                "service",
                f"127.0.0.1:{inst.grpc_port}",
                ready,
                spiffe_id,
                expires,
                detail,
            )
        )
    return rows


def down(state_dir: Path, say: Say = print) -> None:
    supervisor = Supervisor(state_dir)
    if supervisor.pid() is None:
        say(f"nothing running in {state_dir}")
        return
    supervisor.shutdown()
    say("stopped")
