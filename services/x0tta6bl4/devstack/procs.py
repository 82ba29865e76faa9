"""Start and stop a child process in its own process group, with its output in a log file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class ManagedProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was not started"
        return self.popen.pid

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.running():
            os.killpg(self.pid, sig)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM the group, SIGKILL after ``timeout_s``; returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # leftovers of the group
            os.killpg(self.pid, signal.SIGKILL)
        return self.popen.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.1,
    diagnose: Callable[[], str] | None = None,
) -> None:
    """Poll ``predicate`` until true; raise TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    detail = f"\n{diagnose()}" if diagnose else ""
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}{detail}")


_PORT_FLOOR = 22000  # above ``make up``'s block (17000..17200) and the suite test's bases
_port_cursor: list[int] = []


def _ephemeral_floor() -> int:
    try:
        low = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]
        return int(low)
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port on 127.0.0.1 free now, taken from *below* the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` lies in the ephemeral range, which every
    outgoing connection also draws from: between this call and the child's ``bind`` a
    client socket could take it (CI lost a run to exactly that). Below the range only an
    explicit bind can collide, and the cursor never hands the same port out twice in a
    process until it wraps.
    """
    import socket

    ceiling = _ephemeral_floor()
    if ceiling - _PORT_FLOOR < 1000:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    span = ceiling - _PORT_FLOOR
    if not _port_cursor:
        _port_cursor.append((os.getpid() * 7919) % span)
    for _ in range(span):
        port = _PORT_FLOOR + _port_cursor[0]
        _port_cursor[0] = (_port_cursor[0] + 1) % span
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port on 127.0.0.1 in {_PORT_FLOOR}..{ceiling}")
