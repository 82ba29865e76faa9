"""The files of one policy revision laid out as its sidecar would load them, in a temp dir.

A :class:`Layout` holds the sidecar's static files (platform/rego: authz.rego, mesh.rego,
log_mask.rego, the kv data) in ``static/``, the revision's bundle (``bundle_files`` plus its
``.manifest``) in ``bundle/``, the engine modules alone in ``engine/`` (for the engine's gate and
the baseline tests, which run without any ruleset), the revision's own tests in
``tests/candidate/`` and the suite's baseline tests (platform/rego/*_test.rego,
policy/rego/*_test.rego) in ``tests/baseline/``. :meth:`Layout.show` rewrites the temporary
paths in OPA's messages to the names an operator knows: ``modules/x.rego``,
``tests/x_test.rego``, ``platform/rego/mesh.rego``, ``policy/rego/rules.rego``.
:func:`with_layout` writes one, runs a coroutine on it and removes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TypeVar

from x0tta6bl4.policy.core.policy_set import (
    ENGINE_MODULES,
    PolicySet,
    bundle_files,
    canonical_bytes,
    manifest,
)

T = TypeVar("T")
_FILE_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.rego\Z")


def _copy_tree(source: Traversable, target: Path, *, tests: bool) -> None:
    """Copy a packaged directory: the test modules only (tests=True) or all but them."""
    for entry in source.iterdir():
        if entry.is_dir():
            _copy_tree(entry, target / entry.name, tests=tests)
        elif entry.name.endswith("_test.rego") == tests and entry.name.endswith((".rego", ".json")):
            target.mkdir(parents=True, exist_ok=True)
            (target / entry.name).write_bytes(entry.read_bytes())


def _write(root: Path, files: Mapping[str, bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


class Layout:
    """The directories of one revision's evaluation, written once under ``root``."""

    def __init__(self, root: Path, policy_set: PolicySet, version: int) -> None:
        self.root = root
        self.static = root / "static"
        self.engine = root / "engine"
        self.bundle = root / "bundle"
        self.candidate_tests = root / "tests" / "candidate"
        self.baseline_tests = root / "tests" / "baseline"
        for name in [*policy_set.modules, *policy_set.tests]:
            if not _FILE_NAME.match(name):
                raise ValueError(f"module or test name {name!r} is not a plain .rego file name")
        platform_rego = resources.files("x0tta6bl4.platform") / "rego"
        policy_rego = resources.files("x0tta6bl4.policy") / "rego"
        _copy_tree(platform_rego, self.static, tests=False)
        _copy_tree(platform_rego, self.baseline_tests / "platform", tests=True)
        _copy_tree(policy_rego, self.baseline_tests / "policy", tests=True)
        files = bundle_files(policy_set, version)
        sha = hashlib.sha256(canonical_bytes(policy_set)).hexdigest()
        files[".manifest"] = json.dumps(manifest(version, sha)).encode()
        _write(self.bundle, files)
        _write(self.engine, {n: files[f"x0tta6bl4/policy/{n}"] for n in ENGINE_MODULES})
        self.candidate_tests.mkdir(parents=True, exist_ok=True)
        _write(self.candidate_tests, {n: s.encode() for n, s in policy_set.tests.items()})
        self.has_tests = bool(policy_set.tests)
        self._shown = [
            (self.bundle / "x0tta6bl4" / "policy" / "custom", "modules"),
            (self.bundle / "x0tta6bl4" / "policy" / "ruleset", "ruleset"),
            (self.bundle / "x0tta6bl4" / "policy", "policy/rego"),
            (self.engine, "policy/rego"),
            (self.static, "platform/rego"),
            (self.candidate_tests, "tests"),
            (self.baseline_tests / "platform", "platform/rego"),
            (self.baseline_tests / "policy", "policy/rego"),
        ]

    @property
    def sidecar(self) -> list[Path]:
        """What a sidecar running this revision loads."""
        return [self.static, self.bundle]

    def show(self, text: str) -> str:
        """``text`` with the layout's paths replaced by the names an operator knows."""
        for path, name in self._shown:
            text = text.replace(f"{path}/", f"{name}/").replace(str(path), name)
        return text


async def with_layout(
    policy_set: PolicySet, version: int, use: Callable[[Layout], Awaitable[T]]
) -> T:
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="x0-policy-"))
    try:
        layout = await asyncio.to_thread(Layout, root, policy_set, version)
        return await use(layout)
    finally:
        await asyncio.to_thread(shutil.rmtree, root, True)
