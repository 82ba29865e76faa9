from __future__ import annotations

from pathlib import Path

import pytest

from x0tta6bl4.platform.config import EnvReader, HostPort, load_settings
from x0tta6bl4.platform.errors import ConfigError

BASE = {"X0_SPIFFE_SOCKET": "unix:///run/spire/agent.sock"}


def test_defaults_and_environment() -> None:
    settings = load_settings(
        "consensus",
        {**BASE, "X0_GRPC_ADDR": "127.0.0.1:7001", "X0_DEPENDENCIES": "policy=127.0.0.1:7101"},
    )
    assert settings.spiffe_id == "spiffe://x0tta6bl4.mesh/ns/local/sa/consensus"
    assert settings.dns_name == "consensus.local.svc"
    assert settings.grpc_addr == HostPort("127.0.0.1", 7001)
    assert settings.spiffe_socket == "/run/spire/agent.sock"
    assert settings.dependencies == {"policy": (HostPort("127.0.0.1", 7101),)}


def test_spiffe_endpoint_socket_is_the_fallback() -> None:
    settings = load_settings("ops", {"SPIFFE_ENDPOINT_SOCKET": "unix:/tmp/a.sock"})
    assert settings.spiffe_socket == "/tmp/a.sock"


def test_all_problems_are_reported_at_once_each_by_name() -> None:
    with pytest.raises(ConfigError) as failure:
        load_settings("ops", {"X0_GRPC_ADDR": "x", "X0_LOG_LEVEL": "loud"})
    text = str(failure.value)
    assert "X0_GRPC_ADDR" in text
    assert "X0_LOG_LEVEL" in text
    assert "X0_SPIFFE_SOCKET" in text  # missing entirely
    assert len(failure.value.problems) == 3


def test_unknown_service_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown service 'gateway'"):
        load_settings("gateway", BASE)


def test_file_values_and_environment_precedence(tmp_path: Path) -> None:
    config = tmp_path / "x0.yaml"
    config.write_text("grpc_addr: 127.0.0.1:9000\nlog_level: debug\n")
    settings = load_settings(
        "ops", {**BASE, "X0_CONFIG_FILE": str(config), "X0_LOG_LEVEL": "warning"}
    )
    assert settings.grpc_addr.port == 9000
    assert settings.log_level == "warning"


def test_file_problems_name_the_file_setting(tmp_path: Path) -> None:
    config = tmp_path / "x0.yaml"
    config.write_text("grpc_port: 1\nopa_url: nope\n")
    with pytest.raises(ConfigError) as failure:
        load_settings("ops", {**BASE, "X0_CONFIG_FILE": str(config)})
    assert any("unknown setting 'grpc_port'" in p for p in failure.value.problems)
    assert any(p.startswith("opa_url (in X0_CONFIG_FILE)") for p in failure.value.problems)


def test_zero_cache_ttl_is_allowed_but_negative_is_not() -> None:
    assert load_settings("ops", {**BASE, "X0_AUTHZ_CACHE_TTL_S": "0"}).authz_cache_ttl_s == 0
    with pytest.raises(ConfigError, match="X0_AUTHZ_CACHE_TTL_S: must be >= 0"):
        load_settings("ops", {**BASE, "X0_AUTHZ_CACHE_TTL_S": "-1"})


def test_event_loop_defaults_to_uvloop_and_bad_names_are_named() -> None:
    assert load_settings("ops", BASE).event_loop == "uvloop"
    assert load_settings("ops", {**BASE, "X0_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    with pytest.raises(ConfigError, match="X0_EVENT_LOOP: must be one of uvloop, asyncio"):
        load_settings("ops", {**BASE, "X0_EVENT_LOOP": "trio"})


def test_a_directory_setting_that_names_a_file_is_a_problem(tmp_path: Path) -> None:
    afile = tmp_path / "not-a-dir"
    afile.write_text("x")
    reader = EnvReader({"X0_THING_DIR": str(afile)})
    assert reader.directory("X0_THING_DIR", tmp_path / "default") == afile
    assert reader.problems == [f"X0_THING_DIR: {afile} exists and is not a directory"]
    unset = EnvReader({})
    assert unset.directory("X0_THING_DIR", afile) == afile  # the default is checked too
    assert unset.problems == [f"X0_THING_DIR: {afile} exists and is not a directory"]
    assert EnvReader({}).directory("X0_THING_DIR", tmp_path).is_dir()
