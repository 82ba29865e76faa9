"""The real ``opa`` command line as typed async calls: check, build, test and evaluation.

Each call starts the given ``opa`` binary (no shell) with bounded time, captures stdout and
stderr, and turns OPA's answer into values: a :class:`TestReport` for ``opa test``, the
evaluated values for ``opa eval``, the bundle bytes for ``opa build``. Whatever OPA refuses is
:class:`OpaFailed` carrying OPA's own messages with file, row and column where OPA gives them;
a run over its time limit is killed and reported as :class:`OpaTimeout`. Paths passed in are
loaded as OPA loads ``-d`` paths (a directory's ``data.json`` lands at its relative path).

    opa = Opa("/path/to/opa")
    await opa.check(["layout/"])                               # --strict by default
    report = await opa.test(["layout/", "tests/"])
    allowed = await opa.eval_many(["layout/"], "data.x0tta6bl4.mesh.allow", inputs)

:meth:`Opa.eval_many` evaluates one query for many inputs in a single ``opa`` process (one
compilation): the inputs travel as one input document and the query runs in a comprehension
``with input as`` each of them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT_S = 60.0
# "file.rego:12: rego_parse_error: unexpected eof token" (OPA's text form of an error).
_TEXT_ERROR = re.compile(
    r"^(?:\d+ errors? occurred(?: during loading)?: )?(?P<file>[^\s:][^:]*):(?P<row>\d+): "
    r"(?P<code>rego_[a-z_]+|[a-z_]+ error): (?P<message>.+)$"
)
_INPUTS_KEY = "x0tta6bl4_inputs"


@dataclass(frozen=True, slots=True)
class OpaMessage:
    """One error as OPA reports it; ``file`` is "" and ``row`` 0 where OPA names no place."""

    message: str
    code: str = ""
    file: str = ""
    row: int = 0
    col: int = 0

    def __str__(self) -> str:
        where = f"{self.file}:{self.row}: " if self.file else ""
        code = f"{self.code}: " if self.code else ""
        return f"{where}{code}{self.message}"


class OpaFailed(RuntimeError):
    """``opa <command>`` refused its job; ``errors`` are OPA's messages (at least one)."""

    def __init__(self, command: str, errors: Sequence[OpaMessage]) -> None:
        self.command = command
        self.errors = tuple(errors) or (OpaMessage("failed without a message"),)
        super().__init__(f"opa {command}: " + "; ".join(map(str, self.errors)))


class OpaTimeout(OpaFailed):
    def __init__(self, command: str, seconds: float) -> None:
        super().__init__(command, [OpaMessage(f"did not finish within {seconds:g} s (killed)")])
        self.seconds = seconds


@dataclass(frozen=True, slots=True)
class TestResult:
    """One Rego test: ``outcome`` is "pass", "fail", "error" or "skip" (a ``todo_`` test)."""

    package: str
    name: str
    file: str
    row: int
    outcome: str
    error: str = ""
    output: str = ""
    duration_s: float = 0.0

    @property
    def location(self) -> str:
        return f"{self.file}:{self.row}"


@dataclass(frozen=True, slots=True)
class TestReport:
    results: tuple[TestResult, ...]

    def _with(self, outcome: str) -> tuple[TestResult, ...]:
        return tuple(r for r in self.results if r.outcome == outcome)

    @property
    def passed(self) -> tuple[TestResult, ...]:
        return self._with("pass")

    @property
    def failed(self) -> tuple[TestResult, ...]:
        return self._with("fail")

    @property
    def errored(self) -> tuple[TestResult, ...]:
        return self._with("error")

    @property
    def skipped(self) -> tuple[TestResult, ...]:
        return self._with("skip")

    @property
    def ok(self) -> bool:
        return not self.failed and not self.errored


@dataclass(frozen=True, slots=True)
class _Run:
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float


def parse_errors(*outputs: bytes) -> list[OpaMessage]:
    """OPA's errors in its JSON form (``{"errors": [...]}``) or its text form, from any of the
    given outputs; one message with the raw text when neither form is recognised."""
    found: list[OpaMessage] = []
    texts: list[str] = []
    for raw in outputs:
        text = raw.decode(errors="replace").strip()
        if not text:
            continue
        texts.append(text)
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
            found += [_json_error(e) for e in doc["errors"]]
            continue
        for line in text.splitlines():
            match = _TEXT_ERROR.match(line.strip())
            if match:
                found.append(
                    OpaMessage(
                        message=match["message"],
                        code=match["code"],
                        file=match["file"],
                        row=int(match["row"]),
                    )
                )
    if not found and texts:
        found.append(OpaMessage(" / ".join(texts)[:4000]))
    return found


def _json_error(error: Any) -> OpaMessage:
    if not isinstance(error, dict):
        return OpaMessage(str(error))
    location = error.get("location") if isinstance(error.get("location"), dict) else {}
    assert isinstance(location, dict)
    return OpaMessage(
        message=str(error.get("message", "")),
        code=str(error.get("code", "")),
        file=str(location.get("file", "")),
        row=int(location.get("row", 0) or 0),
        col=int(location.get("col", 0) or 0),
    )


class Opa:
    """The ``opa`` binary at ``binary``; every call is bounded by ``timeout_s``."""

    def __init__(self, binary: str | os.PathLike[str], *, timeout_s: float = DEFAULT_TIMEOUT_S):
        path = Path(binary)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise ValueError(f"opa binary {str(path)!r} is not an executable file")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, not {timeout_s!r}")
        self.binary = str(path)
        self.timeout_s = timeout_s

    async def _run(self, command: str, args: Sequence[str], stdin: bytes | None = None) -> _Run:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            self.binary,
            command,
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), self.timeout_s)
        except TimeoutError:
            raise OpaTimeout(command, self.timeout_s) from None
        finally:
            if proc.returncode is None:  # timed out or cancelled: never leave it running
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        assert proc.returncode is not None
        return _Run(proc.returncode, out, err, time.perf_counter() - started)

    @staticmethod
    def _paths(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
        if not paths:
            raise ValueError("at least one path to load is required")
        return [os.fspath(p) for p in paths]

    async def check(self, paths: Sequence[str | os.PathLike[str]], *, strict: bool = True) -> None:
        """``opa check [--strict]``: every module parses and compiles; :class:`OpaFailed`."""
        args = ["--format", "json", *(["--strict"] if strict else []), *self._paths(paths)]
        run = await self._run("check", args)
        if run.returncode != 0:
            raise OpaFailed("check", parse_errors(run.stdout, run.stderr))

    async def build(self, bundle_dir: str | os.PathLike[str]) -> bytes:
        """``opa build --bundle DIR``: the built bundle (.tar.gz) of a bundle directory (its
        ``.manifest`` roots are enforced); :class:`OpaFailed` if OPA cannot build it."""
        with tempfile.TemporaryDirectory(prefix="x0-opa-build-") as out_dir:
            target = Path(out_dir) / "bundle.tar.gz"
            run = await self._run("build", ["--bundle", os.fspath(bundle_dir), "-o", str(target)])
            if run.returncode != 0 or not target.exists():
                raise OpaFailed("build", parse_errors(run.stdout, run.stderr))
            return target.read_bytes()

    async def test(self, paths: Sequence[str | os.PathLike[str]]) -> TestReport:
        """``opa test --format json``: every test's outcome. Modules that do not load or
        compile are :class:`OpaFailed`; failing tests are not (see :attr:`TestReport.ok`)."""
        run = await self._run("test", ["--format", "json", *self._paths(paths)])
        try:
            doc = json.loads(run.stdout)
        except ValueError:
            doc = None
        if run.returncode not in (0, 2) or not isinstance(doc, list):
            raise OpaFailed("test", parse_errors(run.stdout, run.stderr))
        return TestReport(tuple(_test_result(entry) for entry in doc if isinstance(entry, dict)))

    async def eval(
        self,
        paths: Sequence[str | os.PathLike[str]],
        query: str,
        input_doc: Any = None,
    ) -> Any:
        """The value of ``query`` (a Rego expression), ``None`` when it is undefined."""
        args = ["--format", "json", *(a for p in self._paths(paths) for a in ("-d", p))]
        stdin = None
        if input_doc is not None:
            args.append("--stdin-input")
            stdin = json.dumps(input_doc).encode()
        run = await self._run("eval", [*args, query], stdin)
        try:
            doc = json.loads(run.stdout)
        except ValueError:
            doc = None
        if run.returncode != 0 or not isinstance(doc, dict) or "errors" in doc:
            raise OpaFailed("eval", parse_errors(run.stdout, run.stderr))
        results = doc.get("result") or []
        if not results:
            return None
        return results[0]["expressions"][0]["value"]

    async def eval_many(
        self,
        paths: Sequence[str | os.PathLike[str]],
        query: str,
        inputs: Sequence[Mapping[str, Any]],
    ) -> list[Any]:
        """``query`` evaluated with ``input`` bound to each of ``inputs``, in one ``opa``
        process; position by position, ``None`` where the query is undefined for that input."""
        if not inputs:
            return []
        wrapped = (
            f"{{x0_i: x0_v | some x0_i, x0_x in input.{_INPUTS_KEY}; "
            f"x0_v := ({query}) with input as x0_x}}"
        )
        values = await self.eval(paths, wrapped, {_INPUTS_KEY: list(inputs)})
        if not isinstance(values, dict):
            raise OpaFailed("eval", [OpaMessage(f"unexpected answer {values!r:.200}")])
        return [values.get(str(i)) for i in range(len(inputs))]


def _test_result(entry: Mapping[str, Any]) -> TestResult:
    location = entry.get("location") if isinstance(entry.get("location"), dict) else {}
    assert isinstance(location, dict)
    error = entry.get("error")
    if error:
        outcome = "error"
    elif entry.get("fail"):
        outcome = "fail"
    elif entry.get("skip"):
        outcome = "skip"
    else:
        outcome = "pass"
    message = ""
    if isinstance(error, dict):
        message = str(error.get("message", error))
    elif error:
        message = str(error)
    output = entry.get("output")  # print() output, base64 (Go []byte)
    text = ""
    if isinstance(output, str):
        try:
            text = base64.b64decode(output, validate=True).decode(errors="replace")
        except ValueError:
            text = output
    return TestResult(
        package=str(entry.get("package", "")).removeprefix("data."),
        name=str(entry.get("name", "")),
        file=str(location.get("file", "")),
        row=int(location.get("row", 0) or 0),
        outcome=outcome,
        error=message,
        output=text,
        duration_s=float(entry.get("duration", 0) or 0) / 1e9,
    )
