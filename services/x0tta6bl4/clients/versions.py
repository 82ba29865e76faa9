"""Versioned documents on the consensus KV: immutable revisions of a named document and a
"current" pointer moved only by compare-and-set. Policy sets and runbooks both use it.

Keys, under the owning service's prefix (``/x0/<owner>/docs/<name>/``):

- ``rev/<number, 12 digits>``: one revision, written once, never changed — JSON with the
  content (base64), its SHA-256, the parent revision, the author's SPIFFE ID, a message and
  the time;
- ``head``: the highest revision number (allocation: a new revision is written in the same
  transaction that moves ``head`` from what the writer read, so two writers never share a
  number);
- ``current``: the active revision number, moved by :meth:`Documents.activate` only if it
  still is what the caller expected (``Conflict`` otherwise).

:meth:`Documents.rollback` writes a *new* revision with an earlier revision's content and
activates it in one transaction (like ``kubectl rollout undo``): history only grows.
"""

from __future__ import annotations

import base64
import datetime as dt
import difflib
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from x0tta6bl4.clients import keys
from x0tta6bl4.clients.consensus import ConsensusClient
from x0tta6bl4.clients.consensus_types import (
    EventType,
    KeyValue,
    mod_revision_is,
    put_op,
    value_is,
    version_is,
)
from x0tta6bl4.clients.errors import ClientError, Conflict, NotFound
from x0tta6bl4.consensus.v1 import kv_pb2

MAX_ATTEMPTS = 16


@dataclass(frozen=True, slots=True)
class Revision:
    name: str
    number: int
    content: bytes
    sha256: str
    parent: int
    author: str
    message: str
    created_at: dt.datetime

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "number": self.number,
                "sha256": self.sha256,
                "parent": self.parent,
                "author": self.author,
                "message": self.message,
                "created_at": self.created_at.isoformat(),
                "content": base64.b64encode(self.content).decode(),
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, name: str, raw: bytes) -> Revision:
        d = json.loads(raw)
        content = base64.b64decode(d["content"])
        if hashlib.sha256(content).hexdigest() != d["sha256"]:
            raise ValueError(f"revision {d['number']} of {name}: content does not match sha256")
        return cls(
            name,
            int(d["number"]),
            content,
            str(d["sha256"]),
            int(d["parent"]),
            str(d["author"]),
            str(d["message"]),
            dt.datetime.fromisoformat(d["created_at"]),
        )


def _number(kv: KeyValue | None) -> int:
    return int(kv.value) if kv is not None else 0


def _unchanged(key: bytes, kv: KeyValue | None) -> kv_pb2.Compare:
    """A compare that holds while ``key`` is as read (``kv``; absent if ``None``)."""
    if kv is None:
        return version_is(key, "=", 0)
    return mod_revision_is(key, "=", kv.mod_revision)


class Documents:
    """The named documents of one owner (e.g. ``Documents(kv, "policy", author)``)."""

    def __init__(self, client: ConsensusClient, owner: str, author: str) -> None:
        self._client = client
        self._owner = owner
        self.author = author

    def _key(self, name: str, *parts: str) -> bytes:
        return keys.key(self._owner, "docs", name, *parts)

    def _rev_key(self, name: str, number: int) -> bytes:
        return self._key(name, "rev", f"{number:012d}")

    async def _append(
        self,
        name: str,
        content: bytes,
        message: str,
        *,
        activate_expected: int | None,
        author: str | None = None,
    ) -> Revision:
        head_key, current_key = self._key(name, "head"), self._key(name, "current")
        for _ in range(MAX_ATTEMPTS):
            head = await self._client.get(head_key)
            current = await self._client.get(current_key)
            number = _number(head) + 1
            revision = Revision(
                name,
                number,
                content,
                hashlib.sha256(content).hexdigest(),
                _number(current),
                author or self.author,
                message,
                dt.datetime.now(dt.UTC),
            )
            compares = [_unchanged(head_key, head)]
            ops = [
                put_op(head_key, str(number).encode()),
                put_op(self._rev_key(name, number), revision.to_json()),
            ]
            if activate_expected is not None:
                if _number(current) != activate_expected:
                    raise self._conflict(name, activate_expected, _number(current))
                compares.append(_unchanged(current_key, current))
                ops.append(put_op(current_key, str(number).encode()))
            if (await self._client.txn(compares, ops)).succeeded:
                return revision
        raise Conflict(
            "KVService/Txn",
            grpc.StatusCode.ABORTED,
            f"{name}: {MAX_ATTEMPTS} attempts to write a revision all raced another writer",
        )

    @staticmethod
    def _conflict(name: str, expected: int, actual: int) -> Conflict:
        return Conflict(
            "KVService/Txn",
            grpc.StatusCode.FAILED_PRECONDITION,
            f"{name}: the current revision is {actual}, not the expected {expected}",
        )

    async def propose(
        self, name: str, content: bytes, message: str = "", *, author: str | None = None
    ) -> Revision:
        """A new immutable revision (not active until :meth:`activate`); ``author`` (default:
        this store's) is the SPIFFE ID recorded as its writer."""
        return await self._append(name, content, message, activate_expected=None, author=author)

    async def get(self, name: str, number: int) -> Revision:
        kv = await self._client.get(self._rev_key(name, number))
        if kv is None:
            raise NotFound(
                "KVService/Get", grpc.StatusCode.NOT_FOUND, f"{name}: no revision {number}"
            )
        return Revision.from_json(name, kv.value)

    async def current_number(self, name: str) -> int:
        """The active revision's number (0: none yet)."""
        return _number(await self._client.get(self._key(name, "current")))

    async def current(self, name: str) -> Revision | None:
        number = await self.current_number(name)
        return await self.get(name, number) if number else None

    async def activate(self, name: str, number: int, *, expected: int) -> Revision:
        """Make ``number`` the current revision if the current one is ``expected`` (0: none):
        ``Conflict`` naming the actual one if not, ``NotFound`` if ``number`` does not exist."""
        revision = await self.get(name, number)
        current_key = self._key(name, "current")
        compare = (
            version_is(current_key, "=", 0)
            if expected == 0
            else value_is(current_key, "=", str(expected).encode())
        )
        result = await self._client.txn(
            [compare, version_is(self._rev_key(name, number), ">", 0)],
            [put_op(current_key, str(number).encode())],
        )
        if not result.succeeded:
            raise self._conflict(name, expected, await self.current_number(name))
        return revision

    async def rollback(
        self, name: str, to: int, *, expected: int, author: str | None = None
    ) -> Revision:
        """A new revision with revision ``to``'s content, activated if the current one is
        ``expected``, in one transaction."""
        earlier = await self.get(name, to)
        return await self._append(
            name,
            earlier.content,
            f"rollback to revision {to}",
            activate_expected=expected,
            author=author,
        )

    async def head(self, name: str) -> int:
        """The highest revision number written (0: none)."""
        return _number(await self._client.get(self._key(name, "head")))

    async def newest(self, name: str, *, below: int = 0, limit: int = 50) -> list[Revision]:
        """Up to ``limit`` revisions numbered below ``below`` (0: from the newest), newest
        first, in one read."""
        top = (await self.head(name)) if below <= 0 else below - 1
        if top <= 0 or limit <= 0:
            return []
        first = max(1, top - limit + 1)
        prefix = keys.prefix(self._owner, "docs", name, "rev")
        result = await self._client.range(
            prefix, limit=top - first + 1, start_key=self._rev_key(name, first)
        )
        return [Revision.from_json(name, kv.value) for kv in reversed(result.kvs)]

    async def history(self, name: str) -> list[Revision]:
        """Every revision, oldest first."""
        prefix = keys.prefix(self._owner, "docs", name, "rev")
        result = await self._client.range(prefix)
        return [Revision.from_json(name, kv.value) for kv in result.kvs]

    async def diff(self, name: str, a: int, b: int) -> list[str]:
        """The unified diff (text, line by line) from revision ``a`` to revision ``b``."""
        old, new = await self.get(name, a), await self.get(name, b)
        try:
            before, after = old.content.decode(), new.content.decode()
        except UnicodeDecodeError:
            raise ClientError(
                "diff", grpc.StatusCode.INVALID_ARGUMENT, f"{name}: content is not UTF-8 text"
            ) from None
        return list(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=f"{name}@{a}",
                tofile=f"{name}@{b}",
            )
        )

    async def watch(self, name: str) -> AsyncIterator[int]:
        """The current revision number each time it moves (0 if the pointer was deleted)."""
        async for event in self._client.watch(self._key(name, "current")):
            yield 0 if event.type is EventType.DELETE else int(event.kv.value)
