"""The network side of the test PKI (tests/support/pki.py), all on 127.0.0.1: the real
``openssl ocsp`` responder behind an HTTP listener (:class:`OpensslOcspResponder`), a CRL file
server, a hostile :class:`ForgingOcspResponder`, and responders that are down
(:class:`RefusingPort`) or never answer (:class:`SilentResponder`). Every listener counts the
requests it was sent (per path too), so a test can see whether a cache was used.
"""

from __future__ import annotations

import collections
import datetime as dt
import http.server
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

if TYPE_CHECKING:
    from tests.support.pki import CertAndKey, OpensslCa

OPENSSL = "/usr/bin/openssl"
LOOPBACK = "127.0.0.1"
_MAX_REQUEST = 64 * 1024


def openssl(*args: str | Path, cwd: Path | None = None) -> str:
    """Run ``openssl args...``; its stdout, or ``RuntimeError`` with its stderr."""
    done = subprocess.run(
        [OPENSSL, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{done.stderr}")
    return done.stdout


class Listener:
    """An ``http.server`` on 127.0.0.1 (port chosen by the kernel) in a daemon thread. The
    socket listens once the constructor returns, so no readiness wait is needed."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.server = http.server.ThreadingHTTPServer((LOOPBACK, 0), handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.hits: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        setattr(self.server, "listener", self)  # noqa: B010  (handlers find their owner)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def requests(self) -> int:
        """Requests received so far, on any path."""
        with self._lock:
            return sum(self.hits.values())

    def count(self, path: str) -> None:
        with self._lock:
            self.hits[path] += 1

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, _MAX_REQUEST))

    def owner(self) -> Listener:
        owner: Listener = getattr(self.server, "listener")  # noqa: B009
        owner.count(self.path)
        return owner


class OpensslOcspResponder(Listener):
    """HTTP POST on 127.0.0.1 -> ``openssl ocsp`` in responder mode -> HTTP answer, for the
    certificates of ``ca``'s database, signed by ``signer``; nextUpdate ``nmin`` minutes on."""

    def __init__(self, ca: OpensslCa, signer: CertAndKey, work: Path, *, nmin: int = 5) -> None:
        self.ca, self.signer, self.work, self.nmin = ca, signer, work, nmin
        work.mkdir(parents=True, exist_ok=True)
        self._seq = 0
        super().__init__(_OcspHandler)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/ocsp"

    def answer(self, request: bytes) -> bytes:
        with self._lock:
            self._seq += 1
            seq = self._seq
        req, resp = self.work / f"req-{seq}.der", self.work / f"resp-{seq}.der"
        req.write_bytes(request)
        try:
            openssl(
                "ocsp", "-index", self.ca.index, "-CA", self.ca.me.cert_path,
                "-rsigner", self.signer.cert_path, "-rkey", self.signer.key_path,
                "-nmin", str(self.nmin), "-reqin", req, "-respout", resp,
            )  # fmt: skip
            return resp.read_bytes()
        finally:
            req.unlink(missing_ok=True)
            resp.unlink(missing_ok=True)


class _OcspHandler(Handler):
    def do_POST(self) -> None:
        owner = self.owner()
        assert isinstance(owner, OpensslOcspResponder)
        try:
            body = owner.answer(self.read_body())
        except RuntimeError:
            self.reply(500, b"openssl ocsp failed", "text/plain")
            return
        self.reply(200, body, "application/ocsp-response")


class CrlServer(Listener):
    """GET /crl/<name> -> the file ``<directory>/<name>`` (404 if absent)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(_CrlHandler)

    def url(self, name: str) -> str:
        return f"http://{LOOPBACK}:{self.port}/crl/{name}"

    def fetched(self, name: str) -> int:
        """How many times ``/crl/<name>`` was asked for."""
        with self._lock:
            return self.hits[f"/crl/{name}"]


class _CrlHandler(Handler):
    def do_GET(self) -> None:
        owner = self.owner()
        assert isinstance(owner, CrlServer)
        name = self.path.removeprefix("/crl/")
        path = owner.directory / name
        if "/" in name or not path.is_file():
            self.reply(404, b"no such CRL", "text/plain")
            return
        self.reply(200, path.read_bytes(), "application/pkix-crl")


class ForgingOcspResponder(Listener):
    """A handmade, hostile OCSP responder: ``answer`` makes each response from the request.

    :meth:`signed_by` signs answers (echoing the nonce) with a key of the test's choosing;
    :meth:`replaying` sends the same captured bytes to every request.
    """

    def __init__(self) -> None:
        self.answer: Callable[[bytes], bytes] = lambda _request: b""
        super().__init__(_ForgerHandler)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/ocsp"

    def replaying(self, captured: bytes) -> None:
        self.answer = lambda _request: captured

    def signed_by(
        self,
        signer: CertAndKey,
        *,
        responder_name: x509.Name | None = None,
        status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    ) -> None:
        """Answer ``status`` for whatever is asked, signed by ``signer``'s key, naming
        ``responder_name`` (default: the signer's subject) as the responder, with ``signer``'s
        certificate included."""
        cert, key = signer.cert, signer.private_key()
        named = cert if responder_name is None else _name_holder(responder_name, cert)

        def forge(request_der: bytes) -> bytes:
            request = ocsp.load_der_ocsp_request(request_der)
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
                issuer_name_hash=request.issuer_name_hash,
                issuer_key_hash=request.issuer_key_hash,
                serial_number=request.serial_number,
                algorithm=request.hash_algorithm,
                cert_status=status,
                this_update=now,
                next_update=now + dt.timedelta(minutes=5),
                revocation_time=now if status == ocsp.OCSPCertStatus.REVOKED else None,
                revocation_reason=None,
            )
            builder = builder.responder_id(ocsp.OCSPResponderEncoding.NAME, named)
            for ext in request.extensions:
                if isinstance(ext.value, x509.OCSPNonce):
                    builder = builder.add_extension(ext.value, critical=False)
            builder = builder.certificates([cert])
            return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

        self.answer = forge


def _name_holder(name: x509.Name, signer: x509.Certificate) -> x509.Certificate:
    """A throwaway certificate whose subject is ``name`` and whose key is ``signer``'s:
    cryptography takes a response's responder ID from a certificate (and checks that its key
    signs the response), and a forger wants to claim someone else's name."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )


class _ForgerHandler(Handler):
    def do_POST(self) -> None:
        owner = self.owner()
        assert isinstance(owner, ForgingOcspResponder)
        self.reply(200, owner.answer(self.read_body()), "application/ocsp-response")


class RefusingPort:
    """A 127.0.0.1 port that is bound but not listening: every connection is refused, for as
    long as this object is open (no other process can take the port meanwhile)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOPBACK, 0))
        self.port = int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/ocsp"

    def close(self) -> None:
        self._sock.close()


class SilentResponder:
    """A 127.0.0.1 port that accepts connections (the kernel completes them from the backlog)
    but never reads or answers: a responder that hangs, for timeout tests."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOPBACK, 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/ocsp"

    def close(self) -> None:
        self._sock.close()
