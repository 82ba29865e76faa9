"""The workload's X.509 SVID and trust bundle, kept current from the SPIFFE Workload API.

``SvidSource`` wraps py-spiffe's ``X509Source`` (a streaming Workload API client) with a
watchdog: if the stream closes (agent restarted, socket gone), the source is rebuilt with
backoff, and the last good SVID is served meanwhile. Readers get an immutable ``SvidMaterial``
snapshot; subscribers are told on each rotation.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import Certificate
from spiffe import WorkloadApiClient, X509Source

log = structlog.get_logger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class SvidMaterial:
    """One SVID with the trust bundle that came with it, PEM encoded for gRPC."""

    spiffe_id: str
    cert_chain_pem: bytes
    private_key_pem: bytes
    bundle_pem: bytes
    expires_at: dt.datetime
    serial: int

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


def _pem(certs: list[Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def material_from_source(source: X509Source) -> SvidMaterial:
    context = source.get_x509_context()
    svid = context.default_svid
    bundles = context.x509_bundle_set
    authorities: list[Certificate] = []
    for bundle in sorted(bundles.bundles, key=lambda b: b.trust_domain.name):
        authorities.extend(bundle.x509_authorities)
    key_pem = svid.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SvidMaterial(
        spiffe_id=str(svid.spiffe_id),
        cert_chain_pem=_pem(list(svid.cert_chain)),
        private_key_pem=key_pem,
        bundle_pem=_pem(authorities),
        expires_at=svid.leaf.not_valid_after_utc,
        serial=svid.leaf.serial_number,
    )


class SvidSource:
    """Current SVID from the Workload API at ``socket_path``, rebuilt if the stream dies."""

    def __init__(self, socket_path: str, *, check_interval_s: float = 1.0) -> None:
        self._socket = socket_path if socket_path.startswith("unix:") else f"unix://{socket_path}"
        self._check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._material: SvidMaterial | None = None
        self._source: X509Source | None = None
        self._subscribers: list[Callable[[SvidMaterial], None]] = []
        self._stopped = threading.Event()
        self._loaded = threading.Event()
        self._thread = threading.Thread(target=self._watchdog, name="svid-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait_loaded(self, timeout_s: float) -> bool:
        return self._loaded.wait(timeout_s)

    @property
    def current(self) -> SvidMaterial | None:
        with self._lock:
            return self._material

    def require(self) -> SvidMaterial:
        material = self.current
        if material is None:
            raise RuntimeError("no SVID has been received from the Workload API yet")
        return material

    def subscribe(self, callback: Callable[[SvidMaterial], None]) -> None:
        """Call ``callback`` with the new material on every rotation (from a background thread)."""
        with self._lock:
            self._subscribers.append(callback)

    def close(self) -> None:
        self._stopped.set()
        with self._lock:
            source, self._source = self._source, None
        if source is not None:
            source.close()

    def _on_update(self) -> None:
        with self._lock:
            source = self._source
        if source is None:
            return
        try:
            material = material_from_source(source)
        except Exception:
            log.exception("svid_update_unreadable")
            return
        with self._lock:
            previous, self._material = self._material, material
            subscribers = list(self._subscribers)
        self._loaded.set()
        if previous is None or previous.serial != material.serial:
            log.info(
                "svid_rotated",
                spiffe_id=material.spiffe_id,
                serial=material.serial_hex,
                expires_at=material.expires_at.isoformat(),
            )
            for callback in subscribers:
                try:
                    callback(material)
                except Exception:
                    log.exception("svid_subscriber_failed")

    def _connect(self) -> X509Source:
        client = WorkloadApiClient(self._socket)
        # The first update blocks the constructor; bound it so the watchdog keeps control.
        return X509Source(workload_api_client=client, timeout_in_seconds=10)

    def _watchdog(self) -> None:
        backoff = 0.2
        while not self._stopped.is_set():
            with self._lock:
                source = self._source
            if source is None or source.is_closed():
                if source is not None:
                    log.warning("svid_source_closed_rebuilding", socket=self._socket)
                try:
                    source = self._connect()
                except Exception as err:
                    log.warning(
                        "svid_source_unavailable",
                        socket=self._socket,
                        error=str(err),
                        retry_in_s=backoff,
                    )
                    self._stopped.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.2
                with self._lock:
                    self._source = source
                source.subscribe_for_updates(self._on_update)
                self._on_update()
            self._stopped.wait(self._check_interval_s)
