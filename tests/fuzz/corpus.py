"""The regression corpus: request bodies that once broke a service, replayed on every run.

Layout: ``tests/fuzz/corpus/<package.Service.Method>/<sha256[:16]>.bin``, e.g.
``x0tta6bl4.consensus.v1.KVService.LeaseGrant/3f2a....bin``. A file holds the request
message as sent (raw protobuf wire bytes, possibly invalid); for a client-streaming method it
holds every message of the call in gRPC's framing (:func:`tests.fuzz.wire.frames`). The name
is the SHA-256 of the file's bytes, so saving the same input twice keeps one file.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from tests.fuzz import wire
from tests.fuzz.apis import Method, by_corpus_name

CORPUS = Path(__file__).resolve().parent / "corpus"


@dataclasses.dataclass(frozen=True, slots=True)
class Case:
    method: Method
    messages: tuple[bytes, ...]
    path: Path


def encode(method: Method, messages: tuple[bytes, ...]) -> bytes:
    if method.client_streaming:
        return wire.frames(messages)
    if len(messages) != 1:
        raise ValueError(f"{method.path} takes one request message, not {len(messages)}")
    return messages[0]


def decode(method: Method, data: bytes) -> tuple[bytes, ...]:
    return tuple(wire.unframe(data)) if method.client_streaming else (data,)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def case_path(root: Path, method: Method, messages: tuple[bytes, ...]) -> Path:
    data = encode(method, messages)
    return root / method.corpus_name / f"{digest(data)}.bin"


def save(root: Path, method: Method, messages: tuple[bytes, ...]) -> Path:
    """Keep ``messages`` as a regression case of ``method``; its path."""
    path = case_path(root, method, messages)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(encode(method, messages))
    return path


def load(root: Path = CORPUS) -> list[Case]:
    """Every case under ``root``; ValueError naming a directory whose method no longer exists
    (rename or delete the directory along with the method)."""
    methods = by_corpus_name()
    cases: list[Case] = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []:
        method = methods.get(directory.name)
        if method is None:
            raise ValueError(f"{directory}: no method {directory.name} in the discovered APIs")
        for path in sorted(directory.glob("*.bin")):
            cases.append(Case(method, decode(method, path.read_bytes()), path))
    return cases
