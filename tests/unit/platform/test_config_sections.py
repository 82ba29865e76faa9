"""A service's own settings from its section of X0_CONFIG_FILE; dependencies with members."""

from __future__ import annotations

from pathlib import Path

import pytest

from x0tta6bl4.consensus.main import build as build_consensus
from x0tta6bl4.consensus.settings import load_raft_settings
from x0tta6bl4.platform.config import HostPort, load_settings
from x0tta6bl4.platform.config_sections import ServiceEnviron
from x0tta6bl4.platform.errors import ConfigError
from x0tta6bl4.platform.main import build_service

BASE = {"X0_SPIFFE_SOCKET": "unix:///run/spire/agent.sock", "X0_GRPC_ADDR": "127.0.0.1:7001"}

SUITE = """
opa_url: http://127.0.0.1:9191
consensus:
  raft_node_id: 2
  raft_peers: "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003"
  kv_authz: "off"
sync:
  sync_replica_id: s-1
"""


def _file(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return {**BASE, "X0_CONFIG_FILE": str(path)}


def test_a_service_reads_its_own_section_and_the_common_settings(tmp_path: Path) -> None:
    env = _file(tmp_path, SUITE)
    settings = load_settings("consensus", env)
    assert settings.opa_url == "http://127.0.0.1:9191"
    assert settings.file_section["raft_node_id"] == "2"
    raft = load_raft_settings(settings, ServiceEnviron(settings, env))
    assert raft.node_id == 2
    assert sorted(raft.peers) == [1, 2, 3]
    # another service's section is not this one's
    assert load_settings("ops", env).file_section == {}


def test_the_environment_wins_over_the_section(tmp_path: Path) -> None:
    env = {**_file(tmp_path, SUITE), "X0_RAFT_NODE_ID": "3"}
    settings = load_settings("consensus", env)
    assert load_raft_settings(settings, ServiceEnviron(settings, env)).node_id == 3


def test_a_misspelt_section_setting_is_named_at_start_up(tmp_path: Path) -> None:
    env = _file(tmp_path, SUITE.replace("raft_node_id", "raft_nodeid"))
    settings = load_settings("consensus", env)
    with pytest.raises(ConfigError) as failure:
        build_service(settings, build_consensus, env)
    assert failure.value.problems == [
        "X0_CONFIG_FILE: consensus.raft_nodeid: unknown setting of consensus "
        "(as a variable: X0_RAFT_NODEID)"
    ]


def test_a_bad_section_value_is_named_like_its_variable(tmp_path: Path) -> None:
    env = _file(tmp_path, SUITE.replace("raft_node_id: 2", "raft_node_id: two"))
    settings = load_settings("consensus", env)
    with pytest.raises(ConfigError) as failure:
        load_raft_settings(settings, ServiceEnviron(settings, env))
    assert any(p.startswith("X0_RAFT_NODE_ID: expected an integer") for p in failure.value.problems)


def test_a_section_must_be_a_mapping_of_single_values(tmp_path: Path) -> None:
    env = _file(tmp_path, "consensus: [1, 2]\nsync:\n  sync_peers: {a: b}\n")
    with pytest.raises(ConfigError) as failure:
        load_settings("ops", env)
    assert failure.value.problems == [
        "X0_CONFIG_FILE: section 'consensus' must be a mapping of consensus's settings",
        "X0_CONFIG_FILE: sync.sync_peers: expected a single value",
    ]


def test_a_service_without_settings_of_its_own_refuses_a_section(tmp_path: Path) -> None:
    env = _file(tmp_path, "ops:\n  runbook_dir: /x\n")
    settings = load_settings("ops", env)
    with pytest.raises(ConfigError) as failure:
        build_service(settings, None, env)
    assert failure.value.problems == [
        "X0_CONFIG_FILE: ops.runbook_dir: unknown setting of ops (as a variable: X0_RUNBOOK_DIR)"
    ]


def test_dependencies_list_every_member_of_a_service() -> None:
    settings = load_settings(
        "policy",
        {
            **BASE,
            "X0_DEPENDENCIES": "identity=127.0.0.1:7201,"
            "consensus=127.0.0.1:7101|127.0.0.1:7102|[::1]:7103",
        },
    )
    assert settings.dependencies == {
        "identity": (HostPort("127.0.0.1", 7201),),
        "consensus": (
            HostPort("127.0.0.1", 7101),
            HostPort("127.0.0.1", 7102),
            HostPort("::1", 7103),
        ),
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("consensus=127.0.0.1:1,consensus=127.0.0.1:2", "consensus is named twice"),
        ("consensus=127.0.0.1:1|127.0.0.1:1", "consensus lists a member twice"),
        ("consensus=127.0.0.1:0", "port must be 1-65535"),
        ("consensus=127.0.0.1:1|", "expected host:port"),
        ("nosuch=127.0.0.1:1", "expected service=host:port"),
    ],
)
def test_bad_dependencies_are_named(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as failure:
        load_settings("policy", {**BASE, "X0_DEPENDENCIES": value})
    assert [p for p in failure.value.problems if p.startswith("X0_DEPENDENCIES: ")]
    assert problem in str(failure.value)
