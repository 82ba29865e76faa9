"""Bad X0_RAFT_* settings stop the consensus process at start-up, naming the variable."""

from __future__ import annotations

import pytest

from tests.support.mesh import run_with_settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("X0_RAFT_NODE_ID", "0"),
        ("X0_RAFT_NODE_ID", "one"),
        ("X0_RAFT_PEERS", "1=127.0.0.1"),
        ("X0_RAFT_PEERS", "1=127.0.0.1:7001,1=127.0.0.1:7002"),
        ("X0_RAFT_PEERS", "2=127.0.0.1:7002"),
        ("X0_RAFT_PEERS", "1=127.0.0.1:7001@bad zone"),
        ("X0_RAFT_TICK_MS", "0"),
        ("X0_RAFT_ELECTION_TICKS", "1"),
        ("X0_RAFT_HEARTBEAT_TICKS", "x"),
        ("X0_RAFT_SNAPSHOT_ENTRIES", "-5"),
        ("X0_RAFT_PREFERRED_LEADER", "9"),
        ("X0_RAFT_JOIN", "maybe"),
        ("X0_RAFT_READ_BATCH_MS", "-1"),
        ("X0_RAFT_DATA_DIR", __file__),  # a file, not a directory
    ],
)
def test_invalid_raft_setting_exits_2_naming_it(variable: str, value: str) -> None:
    result = run_with_settings(
        "consensus",
        {
            "X0_SPIFFE_SOCKET": "unix:///tmp/none.sock",
            "X0_GRPC_ADDR": "127.0.0.1:7001",
            "X0_RAFT_PEERS": "1=127.0.0.1:7001",
            variable: value,
        },
    )
    assert result.returncode == 2, result.stderr
    assert variable in result.stderr, result.stderr
