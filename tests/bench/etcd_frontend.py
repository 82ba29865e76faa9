"""Serving the benchmark's etcd API subset from a bench node process (PySyncObj, grpc-floor)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from grpc import aio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from etcd_api import pb_grpc


async def serve_until_signalled(servicer: Any, port: int, banner: str) -> None:
    """Serve ``servicer`` (KV and Maintenance) in plaintext on 127.0.0.1:``port`` until
    SIGTERM or SIGINT, then stop with a short grace period."""
    server = aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_KVServicer_to_server(servicer, server)
    pb_grpc.add_MaintenanceServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(banner, flush=True)
    await stop.wait()
    await server.stop(grace=0.5)
