"""Identity validation benchmark: the certificate validator with warm OCSP and CRL caches, side
by side with the bare chain check of ``cryptography.x509.verification`` on the same chains (the
floor), in one run.

``make bench-identity`` runs it (``ARGS=--quick``: shorter runs). Real parts: the openssl test
PKI of tests/support/pki.py (root -> intermediate -> X.509-SVID leaves, each leaf publishing
the real ``openssl ocsp`` responder and a DER CRL on 127.0.0.1; the intermediate a PEM CRL).
The chains are PEM (leaf + intermediate), as a caller sends them. Systems:

* ``validator`` - :class:`CertificateValidator` under the default policy: parse, X.509-SVID
  profile, chain, pins (none), OCSP and both CRLs from its caches (warmed once before the
  clock starts; the listeners' request counts show that the timed loop fetched nothing);
* ``validator_no_revocation`` - the same on leaves that publish no OCSP responder or CRL (what
  the revocation cache lookups cost, by difference);
* ``floor_parse_and_verify`` - what any caller of ``cryptography`` must do at least: load the
  PEM chain, build a client verifier over the (prebuilt) store at the current time, verify;
* ``floor_verify_only`` - ``verify`` alone on parsed certificates with one verifier built
  beforehand (the lower bound of the lower bound).

Each system validates the chains round-robin for a fixed time, one call after another on one
core, ``--repeats`` interleaved runs, the best kept -> validations/s and p50/p99 latency of a
single call. Writes the ``validation`` section of ``bench-results/identity.json`` (other
sections are kept) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.pki import TestPki, validator  # noqa: E402
from x0tta6bl4.identity.validation import CertificateValidator  # noqa: E402

SYSTEMS = ("validator", "validator_no_revocation", "floor_parse_and_verify", "floor_verify_only")
LEAVES = 16

Call = Callable[[bytes], Awaitable[None]]


def floor_parse_and_verify(store: Store) -> Call:
    async def call(chain: bytes) -> None:
        leaf, *intermediates = x509.load_pem_x509_certificates(chain)
        verifier = (
            PolicyBuilder().store(store).time(dt.datetime.now(dt.UTC)).build_client_verifier()
        )
        verifier.verify(leaf, intermediates)

    return call


def floor_verify_only(store: Store, chains: list[bytes]) -> Call:
    verifier = PolicyBuilder().store(store).time(dt.datetime.now(dt.UTC)).build_client_verifier()
    parsed = {c: x509.load_pem_x509_certificates(c) for c in chains}

    async def call(chain: bytes) -> None:  # a coroutine like the others: same call overhead
        leaf, *intermediates = parsed[chain]
        verifier.verify(leaf, intermediates)

    return call


def validating(v: CertificateValidator) -> Call:
    async def call(chain: bytes) -> None:
        verdict = await v.validate(chain)
        if not verdict.valid:
            raise RuntimeError(f"a benchmark chain did not validate:\n{verdict}")

    return call


async def run(call: Call, chains: list[bytes], seconds: float) -> dict[str, float]:
    """Call round-robin for ``seconds``; throughput and latency percentiles."""
    for chain in chains:  # warm: caches, stores, code paths
        await call(chain)
    latencies: list[int] = []
    clock = time.perf_counter_ns
    started = clock()
    deadline = started + int(seconds * 1e9)
    i = 0
    while True:
        t0 = clock()
        await call(chains[i % len(chains)])
        t1 = clock()
        latencies.append(t1 - t0)
        i += 1
        if t1 >= deadline:
            break
    elapsed = (clock() - started) / 1e9
    latencies.sort()
    return {
        "validations": len(latencies),
        "seconds": elapsed,
        "per_s": len(latencies) / elapsed,
        "p50_us": latencies[len(latencies) // 2] / 1e3,
        "p99_us": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1e3,
        "mean_us": statistics.fmean(latencies) / 1e3,
    }


async def measure(pki: TestPki, seconds: float, repeats: int) -> dict[str, Any]:
    revoking = [pki.chain_pem(pki.issue(f"bench-{i}")) for i in range(LEAVES)]
    plain = [
        pki.chain_pem(pki.issue(f"bench-plain-{i}", ocsp_url=None, crl_url=None))
        for i in range(LEAVES)
    ]
    store = Store([pki.root_ca.me.cert])
    best: dict[str, dict[str, float]] = {}
    fetched_while_timed = {"ocsp": 0, "crl": 0}
    async with validator(pki.bundles) as v:
        calls: dict[str, tuple[Call, list[bytes]]] = {
            "validator": (validating(v), revoking),
            "validator_no_revocation": (validating(v), plain),
            "floor_parse_and_verify": (floor_parse_and_verify(store), revoking),
            "floor_verify_only": (floor_verify_only(store, revoking), revoking),
        }
        for chain in revoking:  # warm the OCSP and CRL caches before any clock runs
            await v.validate(chain)
        for repeat in range(repeats):
            for system in SYSTEMS:
                call, chains = calls[system]
                before = (pki.ocsp.requests, pki.crls.requests)
                result = await run(call, chains, seconds)
                fetched_while_timed["ocsp"] += pki.ocsp.requests - before[0]
                fetched_while_timed["crl"] += pki.crls.requests - before[1]
                print(
                    f"  run {repeat + 1}/{repeats} {system:<24} {result['per_s']:>9.0f}/s  "
                    f"p99 {result['p99_us']:>7.0f} us",
                    flush=True,
                )
                if system not in best or result["per_s"] > best[system]["per_s"]:
                    best[system] = result
    return {
        "systems": best,
        "chains": {"count": LEAVES, "certificates_each": 2, "encoding": "PEM"},
        "requests_during_timed_runs": fetched_while_timed,
        "seconds_per_run": seconds,
        "repeats": repeats,
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }


def table(results: dict[str, Any]) -> str:
    systems = results["systems"]
    floor = systems["floor_parse_and_verify"]["per_s"]
    head = f"{'system':<26} {'validations/s':>13} {'p50':>9} {'p99':>9} {'vs floor':>9}"
    lines = [head, "-" * len(head)]
    for name in SYSTEMS:
        r = systems[name]
        lines.append(
            f"{name:<26} {r['per_s']:>13,.0f} {r['p50_us']:>7.0f}us {r['p99_us']:>7.0f}us "
            f"{r['per_s'] / floor:>8.2f}x"
        )
    asked = results["requests_during_timed_runs"]
    lines.append(
        f"(OCSP/CRL requests during the timed runs: {asked['ocsp']}/{asked['crl']}; "
        f"'vs floor' = throughput / floor_parse_and_verify)"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description="identity certificate validator vs bare cryptography chain verification"
    )
    parser.add_argument("--quick", action="store_true", help="1 s runs instead of 5 s")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs, best kept")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "identity.json")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 5.0
    print(f"identity validation bench: {LEAVES} chains, {seconds:g} s per run", flush=True)
    t0 = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="x0-bench-validation-") as tmp,
        TestPki(Path(tmp)) as pki,
    ):
        results = asyncio.run(measure(pki, seconds, args.repeats))
    print(
        f"\nidentity validation ({time.perf_counter() - t0:.0f}s): one process, one call at a "
        f"time, best of {args.repeats} interleaved runs; load average "
        f"{results['load_average']:.1f} on {results['cpus']} CPUs"
    )
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(args.out.read_text()) if args.out.exists() else {}
    existing["validation"] = results
    args.out.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    asked = results["requests_during_timed_runs"]
    return 1 if asked["ocsp"] or asked["crl"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
