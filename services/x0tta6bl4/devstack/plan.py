"""The local suite's layout: which processes run, on which ports, with which files (pure).

Consensus and sync run as three replicas each (``consensus-1`` … ``sync-3``); the other
services as one process. Every service process has its own SPIRE agent (its own Workload API
socket) and its own OPA sidecar, as a pod would. Replicas of one service share its SPIFFE ID
and DNS name. Ports: each service owns a block of ten from ``port_base + 100``; replica *i*
uses gRPC ``+3(i-1)``, HTTP ``+3(i-1)+1`` and its sidecar ``+3(i-1)+2``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from x0tta6bl4.platform.config import SERVICES, dns_name_for, spiffe_id_for

OPERATOR = "operator"  # the identity of a human's `x0` CLI
REPLICAS = {"consensus": 3, "sync": 3}
ZONES = ("zone-a", "zone-b", "zone-c")


@dataclasses.dataclass(frozen=True, slots=True)
class Instance:
    """One service process of the local suite."""

    service: str
    index: int  # 1-based replica number; 0 for an unreplicated service
    grpc_port: int
    http_port: int
    opa_port: int

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}" if self.index else self.service

    @property
    def zone(self) -> str:
        return ZONES[(self.index - 1) % len(ZONES)] if self.index else ZONES[0]


@dataclasses.dataclass(frozen=True)
class SuitePlan:
    state_dir: Path
    port_base: int = 17000
    namespace: str = "local"
    svid_ttl_s: int = 900

    @property
    def spire_port(self) -> int:
        return self.port_base + 81

    @property
    def spire_health_port(self) -> int:
        """The SPIRE server's health listener (``/live``, ``/ready``)."""
        return self.port_base + 82

    @property
    def spire_socket(self) -> Path:
        """The SPIRE server's admin socket (what the identity service manages entries on)."""
        return self.spire_dir / "server" / "admin" / "api.sock"

    @property
    def identity_http_url(self) -> str:
        """Where the identity service serves the revocation bundle the OPA sidecars load."""
        return f"http://127.0.0.1:{self.instance('identity').http_port}"

    @property
    def redis_port(self) -> int:
        return self.port_base + 79

    @property
    def prometheus_port(self) -> int:
        return self.port_base + 90

    @property
    def alertmanager_port(self) -> int:
        return self.port_base + 93

    def instances(self, service: str | None = None) -> list[Instance]:
        result = []
        for block, svc in enumerate(SERVICES):
            if service not in (None, svc):
                continue
            base = self.port_base + 100 + 10 * block
            count = REPLICAS.get(svc, 0)
            for i in range(1, count + 1) if count else (0,):
                offset = 3 * (i - 1) if i else 0
                result.append(Instance(svc, i, base + offset, base + offset + 1, base + offset + 2))
        return result

    def instance(self, name: str) -> Instance:
        for inst in self.instances():
            if inst.name == name or (inst.service == name and inst.index in (0, 1)):
                return inst
        raise KeyError(f"no instance {name!r} in the local suite")

    @property
    def workloads(self) -> list[str]:
        """Every SPIRE agent's name: one per service process, plus the operator."""
        return [i.name for i in self.instances()] + [OPERATOR]

    def spiffe_id(self, workload: str) -> str:
        return spiffe_id_for(self.service_of(workload), self.namespace)

    def service_of(self, workload: str) -> str:
        """``consensus-2`` → ``consensus``; ``identity`` and ``operator`` stay as they are."""
        base, _, index = workload.rpartition("-")
        return base if base and index.isdigit() else workload

    def agent_alias_name(self, workload: str) -> str:
        """The node alias of ``workload``'s agent: one per service, shared by its replicas
        (``consensus-1..3`` → ``consensus``), so one registration entry, whose parent is the
        alias, gives every replica its SVID, as one entry per node set does in Kubernetes."""
        return self.service_of(workload)

    def dns_names(self, workload: str) -> tuple[str, ...]:
        service = self.service_of(workload)
        return (dns_name_for(service, self.namespace),) if service in SERVICES else ()

    @property
    def spire_dir(self) -> Path:
        return self.state_dir / "spire"

    def agent_dir(self, workload: str) -> Path:
        return self.spire_dir / "agents" / workload

    def agent_socket(self, workload: str) -> Path:
        return self.agent_dir(workload) / "public" / "api.sock"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def plan_file(self) -> Path:
        return self.state_dir / "suite.json"

    def service_env(self, inst: Instance) -> dict[str, str]:
        data = self.state_dir / "data" / inst.name
        env = {
            "X0_NAMESPACE": self.namespace,
            "X0_SPIFFE_SOCKET": str(self.agent_socket(inst.name)),
            "X0_OPA_URL": f"http://127.0.0.1:{inst.opa_port}",
            "X0_GRPC_ADDR": f"127.0.0.1:{inst.grpc_port}",
            "X0_HTTP_ADDR": f"127.0.0.1:{inst.http_port}",
            "X0_STATE_DIR": str(data),
            "OTEL_TRACES_EXPORTER": "none",
        }
        peers = self.instances(inst.service)
        if inst.service == "identity":
            members = "|".join(f"127.0.0.1:{p.grpc_port}" for p in self.instances("consensus"))
            env.update(
                {
                    "X0_DEPENDENCIES": f"consensus={members}",
                    "X0_IDENTITY_SPIRE_SOCKET": str(self.spire_socket),
                    "X0_IDENTITY_SPIRE_HEALTH_URL": f"http://127.0.0.1:{self.spire_health_port}",
                }
            )
        if inst.service == "consensus":
            env.update(
                {
                    "X0_RAFT_NODE_ID": str(inst.index),
                    "X0_RAFT_PEERS": ",".join(
                        f"{p.index}=127.0.0.1:{p.grpc_port}@{p.zone}" for p in peers
                    ),
                    "X0_RAFT_DATA_DIR": str(data / "raft"),
                }
            )
        if inst.service == "sync":
            env.update(
                {
                    "X0_SYNC_REPLICA_ID": f"r{inst.index}",
                    "X0_SYNC_PEERS": ",".join(
                        f"r{p.index}=127.0.0.1:{p.grpc_port}" for p in peers if p != inst
                    ),
                    "X0_SYNC_DATA_DIR": str(data / "sync"),
                }
            )
        return env

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.plan_file.write_text(
            json.dumps(
                {
                    "port_base": self.port_base,
                    "namespace": self.namespace,
                    "svid_ttl_s": self.svid_ttl_s,
                },
                indent=2,
            )
            + "\n"
        )

    @classmethod
    def load(cls, state_dir: Path) -> SuitePlan:
        path = state_dir / "suite.json"
        if not path.exists():
            raise FileNotFoundError(f"no local suite in {state_dir} (run `make up` first)")
        data = json.loads(path.read_text())
        return cls(
            state_dir=state_dir,
            port_base=int(data["port_base"]),
            namespace=str(data["namespace"]),
            svid_ttl_s=int(data["svid_ttl_s"]),
        )


def prometheus_config(plan: SuitePlan) -> str:
    services = ", ".join(f"'127.0.0.1:{i.http_port}'" for i in plan.instances())
    sidecars = ", ".join(f"'127.0.0.1:{i.opa_port}'" for i in plan.instances())
    return f"""\
# Generated by `x0 up`: scrape every service process, every OPA sidecar, and the monitoring stack.
global:
  scrape_interval: 5s
  evaluation_interval: 5s
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:{plan.alertmanager_port}']
scrape_configs:
  - job_name: x0tta6bl4
    static_configs:
      - targets: [{services}]
  - job_name: opa
    static_configs:
      - targets: [{sidecars}]
  - job_name: alertmanager
    static_configs:
      - targets: ['127.0.0.1:{plan.alertmanager_port}']
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:{plan.prometheus_port}']
"""


ALERTMANAGER_CONFIG = """\
# Generated by `x0 up`. Receivers (healer/ops webhooks) are added by later issues.
route:
  receiver: 'null'
  group_by: ['alertname', 'service']
receivers:
  - name: 'null'
"""
