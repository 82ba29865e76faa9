"""A test PKI made with the Debian ``openssl`` CLI, with its OCSP responder and CRLs served on
127.0.0.1.

:class:`TestPki` builds, in a temporary directory: a root CA and an intermediate CA
(``openssl req`` / ``openssl ca`` with an ``index.txt`` and ``serial``), X.509-SVID leaves
(``URI:spiffe://...`` SAN, AIA OCSP URL and CRL distribution point on 127.0.0.1), a delegated
OCSP responder certificate (id-kp-OCSPSigning) issued by the intermediate, and an unrelated
"other" CA (trust domain ``other.test``) whose key forges answers and which can stand for a
federated trust domain. Revocation is ``openssl ca -revoke``; CRLs are ``openssl ca -gencrl``
(the root's served as PEM, the intermediate's as DER and as PEM, plus a stale one whose
nextUpdate has passed, made with ``-crl_lastupdate``/``-crl_nextupdate``).

OCSP is answered by the real ``openssl ocsp`` responder (``-index -CA -rsigner -rkey -nmin``).
OpenSSL 3.0's ``-port`` takes only a number and binds every interface, so instead each HTTP POST
arriving at a 127.0.0.1 listener is handed to ``openssl ocsp -reqin ... -respout ...``: the
same responder code, one process per request, no socket outside loopback. That responder, the
CRL server and the handmade hostile responders are in :mod:`tests.support.pki_http`.

:func:`validator` gives a :class:`CertificateValidator` with fresh caches over a PKI's bundles
(a real :class:`HttpFetcher`), and :class:`ManualClock` lets a test stand at a nextUpdate.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import subprocess
import tempfile
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from tests.support.pki_http import (
    OPENSSL,
    CrlServer,
    ForgingOcspResponder,
    Listener,
    OpensslOcspResponder,
    RefusingPort,
    SilentResponder,
    openssl,
)
from x0tta6bl4.identity.validation import CertificateValidator, HttpFetcher, parse_policies
from x0tta6bl4.identity.validation.validator import utc_now

TRUST_DOMAIN = "pki.test"
OTHER_TRUST_DOMAIN = "other.test"

_CA_CONFIG = """\
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = {dir}
database = $dir/index.txt
serial = $dir/serial
crlnumber = $dir/crlnumber
new_certs_dir = $dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
default_days = 30
default_crl_hours = 1
policy = policy_any
unique_subject = no
copy_extensions = none
crl_extensions = crl_ext
[ policy_any ]
organizationName = optional
commonName = supplied
[ crl_ext ]
authorityKeyIdentifier = keyid:always
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused
[ v3_root ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
subjectAltName = URI:spiffe://{trust_domain}
"""


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ")


@dataclasses.dataclass
class CertAndKey:
    name: str
    cert_path: Path
    key_path: Path

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key


@dataclasses.dataclass
class Leaf(CertAndKey):
    spiffe_id: str = ""
    intermediates: tuple[CertAndKey, ...] = ()


class OpensslCa:
    """One CA directory driven by ``openssl ca`` (database, serial, CRL number)."""

    def __init__(self, root: Path, name: str, trust_domain: str) -> None:
        self.dir = root / name
        (self.dir / "newcerts").mkdir(parents=True)
        (self.dir / "index.txt").write_text("")
        (self.dir / "index.txt.attr").write_text("unique_subject = no\n")
        (self.dir / "serial").write_text("1000\n")
        (self.dir / "crlnumber").write_text("1000\n")
        self.config = self.dir / "openssl.cnf"
        self.config.write_text(_CA_CONFIG.format(dir=self.dir, trust_domain=trust_domain))
        self.me = CertAndKey(name, self.dir / "ca.pem", self.dir / "ca.key")

    @property
    def index(self) -> Path:
        return self.dir / "index.txt"

    def self_sign(self, subject: str) -> None:
        openssl(
            "req", "-x509", "-config", self.config, "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.me.key_path,
            "-out", self.me.cert_path, "-subj", subject, "-days", "30", "-extensions", "v3_root",
        )  # fmt: skip

    def issue(self, name: str, subject: str, extensions: str, *, out_dir: Path) -> CertAndKey:
        """A new P-256 key and a certificate for it with ``extensions`` (an ext section body)."""
        issued = CertAndKey(name, out_dir / f"{name}.pem", out_dir / f"{name}.key")
        csr, ext = out_dir / f"{name}.csr", out_dir / f"{name}.ext"
        ext.write_text("[ ext ]\n" + extensions)
        openssl(
            "req", "-new", "-config", self.config, "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", issued.key_path,
            "-out", csr, "-subj", subject,
        )  # fmt: skip
        openssl(
            "ca", "-batch", "-config", self.config, "-extfile", ext, "-extensions", "ext",
            "-in", csr, "-out", issued.cert_path, "-notext", "-days", "30",
        )  # fmt: skip
        return issued

    def revoke(self, issued: CertAndKey, reason: str = "keyCompromise") -> None:
        openssl("ca", "-config", self.config, "-revoke", issued.cert_path, "-crl_reason", reason)

    def gencrl(
        self, out: Path, *, der: bool, window: tuple[dt.datetime, dt.datetime] | None = None
    ) -> None:
        """Write a CRL of every revocation so far (PEM or DER); ``window`` = (thisUpdate,
        nextUpdate) to date it, else now .. now + 1 h."""
        pem = out.with_suffix(".pem.tmp")
        dates = ["-crlhours", "1"]
        if window is not None:
            dates = ["-crl_lastupdate", _stamp(window[0]), "-crl_nextupdate", _stamp(window[1])]
        openssl("ca", "-config", self.config, "-gencrl", *dates, "-out", pem)
        if der:
            openssl("crl", "-in", pem, "-outform", "DER", "-out", out)
            pem.unlink()
        else:
            pem.replace(out)


class TestPki:
    """The whole test PKI, its OCSP responder and CRL server; ``close()`` stops them."""

    __test__ = False  # not a pytest class

    def __init__(self, root: Path | None = None, *, trust_domain: str = TRUST_DOMAIN) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="pki-"))
        self.trust_domain = trust_domain
        self.leaves_dir = self.root / "leaves"
        self.leaves_dir.mkdir(parents=True)
        self.crls = CrlServer(self.root / "crl")
        self._closing: list[Listener | RefusingPort | SilentResponder] = [self.crls]
        try:
            self.root_ca = OpensslCa(self.root, "root", trust_domain)
            self.root_ca.self_sign("/O=x0tta6bl4 test/CN=Test Root CA")
            self.intermediate_ca = OpensslCa(self.root, "intermediate", trust_domain)
            self._issue_intermediate()
            self.responder = self.responder_certificate("ocsp-responder")
            self.other_ca = OpensslCa(self.root, "other", OTHER_TRUST_DOMAIN)
            self.other_ca.self_sign("/O=Somebody Else/CN=Other CA")
            self.ocsp = OpensslOcspResponder(
                self.intermediate_ca, self.responder, self.root / "ocsp-work"
            )
            self._closing.append(self.ocsp)
            self.publish_crls()
            self._check_ready()
        except BaseException:
            self.close()
            raise

    @property
    def bundles(self) -> dict[str, list[x509.Certificate]]:
        """Trust domain -> authorities, as the validator takes them."""
        return {self.trust_domain: [self.root_ca.me.cert]}

    @property
    def federated_bundles(self) -> dict[str, list[x509.Certificate]]:
        """:attr:`bundles` plus the other CA as the bundle of trust domain ``other.test``."""
        return {**self.bundles, OTHER_TRUST_DOMAIN: [self.other_ca.me.cert]}

    def _issue_intermediate(self) -> None:
        ca = self.intermediate_ca
        issued = self.root_ca.issue(
            "intermediate",
            "/O=x0tta6bl4 test/CN=Test Intermediate CA",
            "basicConstraints = critical,CA:TRUE,pathlen:0\n"
            "keyUsage = critical,keyCertSign,cRLSign\n"
            "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
            f"subjectAltName = URI:spiffe://{self.trust_domain}\n"
            f"crlDistributionPoints = URI:{self.crls.url('root.crl')}\n",
            out_dir=self.root / "root",
        )
        issued.cert_path.replace(ca.me.cert_path)
        issued.key_path.replace(ca.me.key_path)

    def responder_certificate(self, name: str, *, ocsp_signing: bool = True) -> CertAndKey:
        """A delegated OCSP responder certificate issued by the intermediate (with the
        id-kp-OCSPSigning extended key usage unless ``ocsp_signing`` is false)."""
        usage = "OCSPSigning" if ocsp_signing else "clientAuth"
        return self.intermediate_ca.issue(
            name,
            f"/O=x0tta6bl4 test/CN=Test OCSP Responder {name}",
            "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n"
            f"extendedKeyUsage = {usage}\nsubjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid\nnoCheck = ignored\n",
            out_dir=self.leaves_dir,
        )

    def issue(
        self,
        name: str,
        *,
        ocsp_url: str | None = "",
        crl_url: str | None = "",
        spiffe_id: str | None = None,
        federated: bool = False,
    ) -> Leaf:
        """An X.509-SVID leaf from the intermediate (``federated``: straight from the other
        CA, in trust domain ``other.test``). ``ocsp_url``/``crl_url``: ``""`` = the PKI's own
        responder / the intermediate's CRL, ``None`` = no such extension."""
        trust_domain = OTHER_TRUST_DOMAIN if federated else self.trust_domain
        spiffe_id = spiffe_id or f"spiffe://{trust_domain}/ns/test/sa/{name}"
        ext = (
            "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n"
            "extendedKeyUsage = serverAuth,clientAuth\nsubjectKeyIdentifier = hash\n"
            f"authorityKeyIdentifier = keyid\nsubjectAltName = URI:{spiffe_id}\n"
        )
        if ocsp_url is not None:
            ext += f"authorityInfoAccess = OCSP;URI:{ocsp_url or self.ocsp.url}\n"
        if crl_url is not None:
            ext += f"crlDistributionPoints = URI:{crl_url or self.crls.url('intermediate.crl')}\n"
        ca = self.other_ca if federated else self.intermediate_ca
        issued = ca.issue(name, f"/O=x0tta6bl4 test/CN={name}", ext, out_dir=self.leaves_dir)
        intermediates = () if federated else (self.intermediate_ca.me,)
        return Leaf(issued.name, issued.cert_path, issued.key_path, spiffe_id, intermediates)

    def chain_pem(self, leaf: Leaf) -> bytes:
        """The leaf and its intermediates (not the root), PEM."""
        return b"".join(c.pem for c in (leaf, *leaf.intermediates))

    def chain_der(self, leaf: Leaf) -> bytes:
        """The leaf and its intermediates (not the root), concatenated DER."""
        return b"".join(
            c.cert.public_bytes(serialization.Encoding.DER) for c in (leaf, *leaf.intermediates)
        )

    def revoke(self, leaf: CertAndKey, reason: str = "keyCompromise") -> None:
        """Revoke in the intermediate's database (the OCSP responder sees it at once); call
        :meth:`publish_crls` to put it on the CRLs."""
        self.intermediate_ca.revoke(leaf, reason)

    def publish_crls(self) -> None:
        """(Re)write root.crl (PEM), intermediate.crl (DER), intermediate-pem.crl (the same as
        PEM) and stale.crl (PEM, its nextUpdate an hour ago)."""
        now = dt.datetime.now(dt.UTC)
        self.root_ca.gencrl(self.crls.directory / "root.crl", der=False)
        self.intermediate_ca.gencrl(self.crls.directory / "intermediate.crl", der=True)
        self.intermediate_ca.gencrl(self.crls.directory / "intermediate-pem.crl", der=False)
        stale = (now - dt.timedelta(hours=3), now - dt.timedelta(hours=1))
        self.intermediate_ca.gencrl(self.crls.directory / "stale.crl", der=False, window=stale)

    def ocsp_request_for(self, leaf: CertAndKey, nonce: bytes | None) -> bytes:
        """A DER OCSP request about ``leaf`` (issued by the intermediate), with ``nonce``."""
        builder = ocsp.OCSPRequestBuilder().add_certificate(
            leaf.cert, self.intermediate_ca.me.cert, hashes.SHA1()
        )
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        return builder.build().public_bytes(serialization.Encoding.DER)

    def post(self, url: str, body: bytes) -> bytes:
        """POST ``body`` as an OCSP request to ``url``; the answer's body."""
        req = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/ocsp-request"}
        )
        with urllib.request.urlopen(req, timeout=30) as response:
            return bytes(response.read())

    def _check_ready(self) -> None:
        """One request to each listener (they listen from construction on, so there is
        nothing to wait for): fail at once, naming the part, if openssl or a server is broken."""
        with urllib.request.urlopen(self.crls.url("root.crl"), timeout=30) as response:
            if response.status != 200:
                raise RuntimeError(f"the test PKI's CRL server answered {response.status}")
        body = self.post(self.ocsp.url, self.ocsp_request_for(self.responder, b"ready"))
        status = ocsp.load_der_ocsp_response(body).response_status
        if status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise RuntimeError(f"the test PKI's openssl OCSP responder answered {status.name}")
        self.ocsp.hits.clear()
        self.crls.hits.clear()

    def forger(self) -> ForgingOcspResponder:
        """A new hostile responder on 127.0.0.1 (closed with the PKI)."""
        forger = ForgingOcspResponder()
        self._closing.append(forger)
        return forger

    def refusing(self) -> RefusingPort:
        """A responder URL on 127.0.0.1 where every connection is refused (responder down)."""
        port = RefusingPort()
        self._closing.append(port)
        return port

    def silent(self) -> SilentResponder:
        """A responder URL on 127.0.0.1 that accepts and never answers (responder hung)."""
        port = SilentResponder()
        self._closing.append(port)
        return port

    def close(self) -> None:
        for part in reversed(self._closing):
            part.close()
        self._closing.clear()

    def __enter__(self) -> TestPki:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class ManualClock:
    """The validator's clock, moved by the test (starts at the real time): lets a test stand
    at a nextUpdate or a notAfter instead of waiting for it."""

    def __init__(self, now: dt.datetime | None = None) -> None:
        self.now = now or dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


@contextlib.asynccontextmanager
async def validator(
    bundles: dict[str, list[x509.Certificate]],
    policies: dict[str, Any] | None = None,
    *,
    clock: Callable[[], dt.datetime] | None = None,
    timeout_s: float = 10.0,
) -> AsyncIterator[CertificateValidator]:
    """A :class:`CertificateValidator` with fresh caches over ``bundles`` and the policies
    parsed from the config mapping ``policies``, fetching with a real :class:`HttpFetcher`."""
    fetcher = HttpFetcher(timeout_s=timeout_s)
    try:
        yield CertificateValidator(
            lambda: bundles, parse_policies(policies), fetcher, clock or utc_now
        )
    finally:
        await fetcher.aclose()


def b64_spki_pin(cert: x509.Certificate) -> str:
    """The base64 SHA-256 SPKI pin of ``cert`` (computed with openssl, as an operator would)."""
    pem = cert.public_bytes(serialization.Encoding.PEM)
    spki = subprocess.run(
        [OPENSSL, "x509", "-pubkey", "-noout"], input=pem, capture_output=True, check=True
    ).stdout
    der = subprocess.run(
        [OPENSSL, "pkey", "-pubin", "-outform", "DER"], input=spki, capture_output=True, check=True
    ).stdout
    digest = subprocess.run(
        [OPENSSL, "dgst", "-sha256", "-binary"], input=der, capture_output=True, check=True
    ).stdout
    return base64.b64encode(digest).decode()
