"""One fuzz campaign against running processes: replay the corpus, then send generated
requests for a time budget, and report what came back.

Several workers send at once, each taking the next request from one seeded generator, so a
seed gives the same sequence of requests (which worker sends which varies). Every body passes
:class:`~tests.fuzz.safety.Safety` first. An answer with a status in
:data:`~tests.fuzz.send.BAD_CODES` is a finding, and its request is saved to the corpus. A
watcher checks every process of the suite while requests fly; when one is gone the campaign
stops, and the requests in flight to it and the last few it got are saved as suspects.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

from grpc import aio

from tests.fuzz import corpus
from tests.fuzz.apis import Method
from tests.fuzz.generate import Generator
from tests.fuzz.safety import Safety
from tests.fuzz.send import UNARY_TIMEOUT_S, Outcome, send
from x0tta6bl4.devstack.procs import ManagedProcess

# Services whose bodies the safety rules cannot vet (raw Raft messages, CRDT deltas): they
# must refuse the operator, or they are not fuzzed at all.
PEER_ONLY = frozenset(
    {"x0tta6bl4.consensus.v1.RaftService", "x0tta6bl4.sync.v1.ReplicationService"}
)
PEER_ONLY_WEIGHT = 0.2
RECENT_PER_TARGET = 8
UNPARSEABLE = b"\x01"  # refused by every request type: harmless even if authorised


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """One serving process and a channel to it as the operator."""

    name: str
    service: str
    process: ManagedProcess
    channel: aio.Channel


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    method: str
    code: str
    details: str
    sha: str
    target: str
    strategy: str
    saved: Path | None

    def __str__(self) -> str:
        where = f" -> {self.saved}" if self.saved else ""
        return (
            f"{self.method} on {self.target}: {self.code} {self.details!r} "
            f"(input {self.sha}, {self.strategy}){where}"
        )


@dataclasses.dataclass
class Report:
    seed: int
    budget_s: float
    sent: int = 0
    elapsed_s: float = 0.0
    counts: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    per_method: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    per_method_code: collections.Counter[tuple[str, str]] = dataclasses.field(
        default_factory=collections.Counter
    )
    replayed: int = 0
    findings: list[Finding] = dataclasses.field(default_factory=list)
    deaths: list[str] = dataclasses.field(default_factory=list)
    not_denied: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        counts = ", ".join(f"{code} {n}" for code, n in self.counts.most_common())
        return (
            f"fuzz: {self.sent} requests ({self.replayed} replayed from the corpus) in "
            f"{self.elapsed_s:.0f} s, seed {self.seed} (X0_FUZZ_SEED={self.seed} to repeat): "
            f"{counts}; {len(self.findings)} findings, {len(self.deaths)} processes gone"
        )

    def table(self) -> str:
        """Requests per method and status, one method a line."""
        lines = []
        for path in sorted(self.per_method):
            codes = sorted((c, n) for (p, c), n in self.per_method_code.items() if p == path)
            lines.append(f"  {path}: " + ", ".join(f"{c} {n}" for c, n in codes))
        return "\n".join(lines)


class Campaign:
    def __init__(
        self,
        methods: Sequence[Method],
        targets: Sequence[Target],
        watched: Sequence[ManagedProcess],
        safety: Safety,
        *,
        seed: int,
        corpus_root: Path,
        workers: int = 8,
    ) -> None:
        self._methods = list(methods)
        self._targets = list(targets)
        self._watched = list(watched)
        self._safety = safety
        self._generator = Generator(seed)
        self._rng = self._generator.rng
        self._corpus = corpus_root
        self._workers = workers
        self._stop = asyncio.Event()
        self._in_flight: dict[str, dict[int, tuple[Method, tuple[bytes, ...]]]] = {}
        self._recent: dict[str, collections.deque[tuple[Method, tuple[bytes, ...]]]] = {}
        self._skip: set[str] = set()
        self.report = Report(seed, 0.0)

    def targets_for(self, method: Method) -> list[Target]:
        served_by = method.served_by
        found = [t for t in self._targets if served_by is None or t.service == served_by]
        if not found:
            raise LookupError(f"{method.path}: no running {served_by} process to send it to")
        return found

    async def check_peer_only(self) -> None:
        """Each peer-only service must deny the operator (asked with a body nothing parses)."""
        for method in self._methods:
            if method.service not in PEER_ONLY:
                continue
            for target in self.targets_for(method):
                outcome = await self._call(target, method, (UNPARSEABLE,), "peer-only check")
                if outcome.code != "PERMISSION_DENIED":
                    self.report.not_denied.append(f"{method.path} on {target.name}: {outcome}")
                    self._skip.add(method.service)

    async def replay(self, cases: Sequence[corpus.Case]) -> None:
        for case in cases:
            if case.method.service in self._skip:
                continue
            messages = self._safety.make_safe(case.method, case.messages)
            for target in self.targets_for(case.method):
                await self._call(target, case.method, messages, f"corpus {case.path.name}")
                self.report.replayed += 1

    async def fuzz(self, budget_s: float) -> Report:
        self.report.budget_s = budget_s
        started = time.monotonic()
        deadline = started + budget_s
        watcher = asyncio.create_task(self._watch())
        try:
            await asyncio.gather(*(self._worker(deadline) for _ in range(self._workers)))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        self._check_processes()
        self.report.elapsed_s = time.monotonic() - started
        return self.report

    async def _worker(self, deadline: float) -> None:
        methods = [m for m in self._methods if m.service not in self._skip]
        weights = [PEER_ONLY_WEIGHT if m.service in PEER_ONLY else 1.0 for m in methods]
        while not self._stop.is_set() and time.monotonic() < deadline:
            method = self._rng.choices(methods, weights)[0]
            request = self._generator.request(method)
            target = self._rng.choice(self.targets_for(method))
            messages = self._safety.make_safe(method, request.messages)
            await self._call(target, method, messages, request.strategy)

    async def _call(
        self, target: Target, method: Method, messages: tuple[bytes, ...], strategy: str
    ) -> Outcome:
        flying = self._in_flight.setdefault(target.name, {})
        recent = self._recent.setdefault(target.name, collections.deque(maxlen=RECENT_PER_TARGET))
        token = id(messages)
        flying[token] = (method, messages)
        recent.append((method, messages))
        try:
            outcome = await send(target.channel, method, messages, UNARY_TIMEOUT_S)
        except Exception as err:  # the harness itself failed: report it, keep going
            outcome = Outcome(f"CLIENT_ERROR {type(err).__name__}", str(err))
        finally:
            flying.pop(token, None)
        self.report.sent += 1
        self.report.counts[outcome.code] += 1
        self.report.per_method[method.path] += 1
        self.report.per_method_code[method.path, outcome.code] += 1
        if outcome.bad or outcome.code.startswith("CLIENT_ERROR"):
            saved = corpus.save(self._corpus, method, messages) if outcome.bad else None
            self.report.findings.append(
                Finding(
                    method.path,
                    outcome.code,
                    outcome.details[:300],
                    corpus.digest(corpus.encode(method, messages)),
                    target.name,
                    strategy,
                    saved,
                )
            )
        return outcome

    async def _watch(self) -> None:
        while not self._stop.is_set():
            if self._check_processes():
                self._stop.set()
                return
            await asyncio.sleep(0.25)  # a poll interval, not a wait for some state

    def _check_processes(self) -> bool:
        """Record every watched process that is gone (once); whether any is."""
        gone = False
        for process in self._watched:
            if process.running() or any(process.name in d for d in self.report.deaths):
                continue
            gone = True
            code = process.popen.returncode if process.popen is not None else None
            suspects = self._save_suspects(process.name)
            self.report.deaths.append(
                f"{process.name} exited with {code}; suspects saved: {suspects}\n"
                f"{process.log_tail(20)}"
            )
        return gone

    def _save_suspects(self, process_name: str) -> list[str]:
        target = next((t for t in self._targets if t.process.name == process_name), None)
        if target is None:
            return []
        recent = self._recent.get(target.name, ())
        inputs = [*self._in_flight.get(target.name, {}).values(), *recent]
        return sorted({str(corpus.save(self._corpus, m, msgs)) for m, msgs in inputs})
