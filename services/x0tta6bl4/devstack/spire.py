"""A real SPIRE server and agents: configuration, start commands and admin operations.

Node attestation is by join token; workload attestation is by Unix process attributes. All
workloads of the local suite run as the same Unix user, so selectors alone cannot tell them
apart: each workload gets its own agent (its own Workload API socket), and its registration
entry is scoped to that agent (``parentID`` = the agent's alias ID, given when the join token is
made). The socket is the boundary, kept in a 0700 directory of the state dir. In Kubernetes the
chart uses one agent per node and the k8s workload attestor (service account selectors) instead.

Admin operations use the ``spire-server`` CLI on the server's admin socket.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

from x0tta6bl4.devstack.binaries import find
from x0tta6bl4.devstack.procs import free_port
from x0tta6bl4.platform.config import TRUST_DOMAIN


class SpireError(RuntimeError):
    pass


def _run(argv: list[str], timeout_s: float = 30.0) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if result.returncode != 0:
        raise SpireError(
            f"{' '.join(argv[:3])} failed ({result.returncode}): "
            f"{(result.stderr or result.stdout).strip()}"
        )
    return result.stdout


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    spiffe_id: str
    parent_id: str
    selectors: tuple[str, ...]
    dns_names: tuple[str, ...] = ()
    x509_svid_ttl_s: int = 3600


class SpireServer:
    """A SPIRE server rooted at ``root`` listening on 127.0.0.1:``port``, with its health
    listener (``/live``, ``/ready``) on 127.0.0.1:``health_port`` (a free port if not given)."""

    def __init__(
        self,
        root: Path,
        *,
        port: int,
        trust_domain: str = TRUST_DOMAIN,
        ca_ttl: str = "24h",
        default_x509_svid_ttl: str = "1h",
        sync_interval: str = "",
        health_port: int | None = None,
    ) -> None:
        """``sync_interval`` (e.g. "1s") shortens how long new entries take to reach workloads:
        the server's entry-cache reload and the agents' sync with the server (SPIRE's
        experimental settings; both default to 5 s). Local suites and tests use it."""
        self.root = root
        self.sync_interval = sync_interval
        self.port = port
        self.trust_domain = trust_domain
        self.ca_ttl = ca_ttl
        self.default_x509_svid_ttl = default_x509_svid_ttl
        self.health_port = health_port or free_port()
        self.binary = find("spire-server")

    @property
    def socket_path(self) -> Path:
        return self.root / "admin" / "api.sock"

    @property
    def health_url(self) -> str:
        """Where the server answers ``/live`` and ``/ready`` (200, or 500 with a JSON body)."""
        return f"http://127.0.0.1:{self.health_port}"

    @property
    def config_path(self) -> Path:
        return self.root / "server.conf"

    def write_config(self) -> Path:
        data = self.root / "data"
        for d in (data, self.socket_path.parent):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.config_path.write_text(f"""\
server {{
  bind_address = "127.0.0.1"
  bind_port = "{self.port}"
  socket_path = "{self.socket_path}"
  trust_domain = "{self.trust_domain}"
  data_dir = "{data}"
  log_level = "INFO"
  ca_ttl = "{self.ca_ttl}"
  default_x509_svid_ttl = "{self.default_x509_svid_ttl}"
{self._experimental("cache_reload_interval")}  ca_subject {{
    country = ["ZZ"]
    organization = ["x0tta6bl4"]
    common_name = "x0tta6bl4 local CA"
  }}
}}

health_checks {{
  listener_enabled = true
  bind_address = "127.0.0.1"
  bind_port = "{self.health_port}"
  live_path = "/live"
  ready_path = "/ready"
}}

plugins {{
  DataStore "sql" {{
    plugin_data {{
      database_type = "sqlite3"
      connection_string = "{data}/datastore.sqlite3"
    }}
  }}
  NodeAttestor "join_token" {{
    plugin_data {{}}
  }}
  KeyManager "disk" {{
    plugin_data {{
      keys_path = "{data}/keys.json"
    }}
  }}
}}
""")
        return self.config_path

    def _experimental(self, setting: str) -> str:
        if not self.sync_interval:
            return ""
        return f'  experimental {{\n    {setting} = "{self.sync_interval}"\n  }}\n'

    def command(self) -> list[str]:
        return [self.binary, "run", "-config", str(self.config_path)]

    def _cli(self, *args: str) -> str:
        return _run([self.binary, *args, "-socketPath", str(self.socket_path)])

    def healthy(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            self._cli("healthcheck")
        except (SpireError, subprocess.TimeoutExpired):
            return False
        return True

    def bundle_pem(self) -> str:
        return self._cli("bundle", "show", "-format", "pem")

    def agent_alias(self, name: str) -> str:
        """The SPIFFE ID an agent made with ``join_token(name)`` is also known by."""
        return f"spiffe://{self.trust_domain}/agent/{name}"

    def join_token(self, name: str, ttl_s: int = 600) -> str:
        out = self._cli(
            "token", "generate", "-spiffeID", self.agent_alias(name), "-ttl", str(ttl_s)
        )
        match = re.search(r"Token:\s*(\S+)", out)
        if not match:
            raise SpireError(f"unexpected output of token generate: {out!r}")
        return match.group(1)

    def entry_ids(self, spiffe_id: str, parent_id: str = "") -> list[str]:
        args = ["entry", "show", "-spiffeID", spiffe_id]
        if parent_id:
            args += ["-parentID", parent_id]
        out = self._cli(*args)
        return re.findall(r"Entry ID\s*:\s*(\S+)", out)

    def create_entry(self, entry: Entry) -> str:
        args = [
            "entry",
            "create",
            "-spiffeID",
            entry.spiffe_id,
            "-parentID",
            entry.parent_id,
            "-x509SVIDTTL",
            str(entry.x509_svid_ttl_s),
        ]
        for selector in entry.selectors:
            args += ["-selector", selector]
        for dns in entry.dns_names:
            args += ["-dns", dns]
        out = self._cli(*args)
        match = re.search(r"Entry ID\s*:\s*(\S+)", out)
        if not match:
            raise SpireError(f"unexpected output of entry create: {out!r}")
        return match.group(1)

    def delete_entry(self, entry_id: str) -> None:
        self._cli("entry", "delete", "-entryID", entry_id)


class SpireAgent:
    """A SPIRE agent named ``name`` whose Workload API socket serves one workload."""

    def __init__(self, root: Path, name: str, server: SpireServer) -> None:
        self.root = root
        self.name = name
        self.server = server
        self.binary = find("spire-agent")

    @property
    def socket_path(self) -> Path:
        return self.root / "public" / "api.sock"

    @property
    def config_path(self) -> Path:
        return self.root / "agent.conf"

    def write_config(self, join_token: str, bundle_pem: str) -> Path:
        data = self.root / "data"
        for d in (data, self.socket_path.parent):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        bundle = self.root / "bootstrap-bundle.pem"
        bundle.write_text(bundle_pem)
        self.config_path.write_text(f"""\
agent {{
  data_dir = "{data}"
  log_level = "INFO"
  server_address = "127.0.0.1"
  server_port = "{self.server.port}"
  socket_path = "{self.socket_path}"
  trust_domain = "{self.server.trust_domain}"
  trust_bundle_path = "{bundle}"
  join_token = "{join_token}"
{self.server._experimental("sync_interval")}}}

plugins {{
  NodeAttestor "join_token" {{
    plugin_data {{}}
  }}
  KeyManager "disk" {{
    plugin_data {{
      directory = "{data}"
    }}
  }}
  WorkloadAttestor "unix" {{
    plugin_data {{}}
  }}
}}
""")
        return self.config_path

    def command(self) -> list[str]:
        return [self.binary, "run", "-config", str(self.config_path)]

    def healthy(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            _run([self.binary, "healthcheck", "-socketPath", str(self.socket_path)])
        except (SpireError, subprocess.TimeoutExpired):
            return False
        return True
