"""Multi-version key index: every version of every key since the compaction point.

Guarantees:

- The store revision increases by one for each write batch that changes at least one key
  (:meth:`MvccIndex.write_batch`); writes inside a batch are ordered by a sub-revision.
- :meth:`MvccIndex.range` at any revision in ``[compact_revision, revision]`` returns exactly
  the keys that were live at that revision, sorted by key.
- :meth:`MvccIndex.compact` keeps, for each key, the newest version at or below the
  compaction revision (if live) and everything after it, so reads at the compaction
  revision and later, and events after it, are unaffected.
- :meth:`MvccIndex.events_since` reconstructs the watch events of every revision after the
  compaction point from the retained versions, in apply order.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

from .kv_codec import Reader, Writer
from .kv_errors import Compacted, DecodeError, FutureRevision, InvalidArgument
from .kv_types import Event, EventType, KeyValue


class _Version(NamedTuple):
    """One entry of a key's history; ``kv`` is None for a deletion (tombstone)."""

    main: int
    sub: int
    kv: KeyValue | None


def _main_of(v: _Version) -> int:
    return v.main


class MvccIndex:
    """The versions of all keys, the current revision and the compaction point."""

    def __init__(self) -> None:
        self._history: dict[bytes, list[_Version]] = {}
        self._keys: list[bytes] = []  # sorted keys of _history
        self._live: dict[bytes, KeyValue] = {}
        self._revision = 0
        self._compact_revision = 0
        self._pending: int | None = None  # revision being written, if in a batch
        self._sub = 0

    # -- state ------------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The revision of the last write batch that changed a key (0 for an empty store)."""
        return self._revision

    @property
    def compact_revision(self) -> int:
        """Reads below this revision fail with :class:`Compacted`."""
        return self._compact_revision

    def get(self, key: bytes) -> KeyValue | None:
        """The live version of ``key`` including writes of the open batch."""
        return self._live.get(key)

    # -- writing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def write_batch(self) -> Iterator[None]:
        """A write batch: its writes carry revision + 1, and the revision advances on exit iff
        the batch wrote something (also when the block raises)."""
        assert self._pending is None, "write batch already open"
        self._pending = self._revision + 1
        self._sub = 0
        try:
            yield
        finally:
            if self._sub > 0:
                self._revision = self._pending
            self._pending = None

    def _append(self, key: bytes, kv: KeyValue | None) -> None:
        assert self._pending is not None, "write outside a batch"
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = []
            bisect.insort(self._keys, key)
        history.append(_Version(self._pending, self._sub, kv))
        self._sub += 1

    def put(self, key: bytes, value: bytes, lease: int) -> tuple[KeyValue, KeyValue | None]:
        """Write a new version of ``key``; returns (new, previous live version)."""
        assert self._pending is not None, "write outside a batch"
        prev = self._live.get(key)
        if prev is None:
            kv = KeyValue(key, value, self._pending, self._pending, 1, lease)
        else:
            kv = KeyValue(key, value, prev.create_revision, self._pending, prev.version + 1, lease)
        self._append(key, kv)
        self._live[key] = kv
        return kv, prev

    def delete(self, key: bytes) -> KeyValue | None:
        """Delete ``key`` if live; returns the deleted version (None: nothing happened)."""
        prev = self._live.pop(key, None)
        if prev is not None:
            self._append(key, None)
        return prev

    # -- reading ----------------------------------------------------------------------------

    def _keys_in(self, key: bytes, prefix: bool, start: bytes = b"") -> Iterator[bytes]:
        if not prefix:
            if key in self._history and key >= start:
                yield key
            return
        keys = self._keys
        for i in range(bisect.bisect_left(keys, max(key, start)), len(keys)):
            k = keys[i]
            if not k.startswith(key):
                return
            yield k

    def live_keys(self, key: bytes, prefix: bool) -> list[bytes]:
        """Sorted live keys equal to ``key`` or, with ``prefix``, starting with it."""
        return [k for k in self._keys_in(key, prefix) if k in self._live]

    def check_revision(self, revision: int, field: str) -> int:
        """Resolve ``revision`` (0 = current) or raise naming ``field``."""
        if revision == 0:
            return self._revision
        if revision > self._revision:
            raise FutureRevision(
                field, f"revision {revision} is newer than the current revision {self._revision}"
            )
        if revision < self._compact_revision:
            raise Compacted(
                field,
                f"revision {revision} has been compacted (compacted at {self._compact_revision})",
            )
        return revision

    def _at(self, key: bytes, revision: int) -> KeyValue | None:
        history = self._history[key]
        i = bisect.bisect_right(history, revision, key=_main_of)
        return history[i - 1].kv if i else None

    def range(
        self,
        key: bytes,
        prefix: bool,
        revision: int,
        limit: int,
        field: str = "range.revision",
        start: bytes = b"",
    ) -> tuple[tuple[KeyValue, ...], int, bool]:
        """(kvs up to ``limit`` (0 = all), total count, more) at ``revision`` (0 = live view),
        of the keys at or after ``start``."""
        lookup: Callable[[bytes], KeyValue | None]
        if revision == 0:
            lookup = self._live.get
        else:
            rev = self.check_revision(revision, field)

            def lookup(k: bytes) -> KeyValue | None:
                return self._at(k, rev)

        found: list[KeyValue] = []
        count = 0
        for k in self._keys_in(key, prefix, start):
            kv = lookup(k)
            if kv is not None:
                count += 1
                if not limit or len(found) < limit:
                    found.append(kv)
        return tuple(found), count, count > len(found)

    def events_since(self, start_revision: int, key: bytes, prefix: bool) -> list[Event]:
        """Events at revisions ≥ ``start_revision`` for the key (or prefix), in apply order.

        Raises :class:`Compacted` if ``start_revision`` ≤ the compaction revision: the history
        needed to produce every event (with its previous version) is gone.
        """
        if start_revision < 1:
            raise InvalidArgument("watch.start_revision", "must be at least 1")
        if start_revision <= self._compact_revision:
            raise Compacted(
                "watch.start_revision",
                f"revision {start_revision} has been compacted "
                f"(events are kept after revision {self._compact_revision})",
            )
        collected: list[tuple[int, int, Event]] = []
        for k in self._keys_in(key, prefix):
            history = self._history[k]
            i = bisect.bisect_left(history, start_revision, key=_main_of)
            prev = history[i - 1].kv if i else None
            for v in history[i:]:
                if v.kv is None:
                    assert prev is not None
                    tomb = KeyValue.tombstone(k, v.main)
                    collected.append((v.main, v.sub, Event(EventType.DELETE, tomb, prev)))
                else:
                    collected.append((v.main, v.sub, Event(EventType.PUT, v.kv, prev)))
                prev = v.kv
        collected.sort(key=lambda t: (t[0], t[1]))
        return [e for _, _, e in collected]

    # -- compaction -------------------------------------------------------------------------

    def compact(self, revision: int) -> None:
        """Forget versions not needed to read at ``revision`` or later (caller checks range)."""
        assert self._compact_revision < revision <= self._revision
        emptied = False
        for key in list(self._history):
            history = self._history[key]
            i = bisect.bisect_right(history, revision, key=_main_of)
            if i == 0:
                continue
            keep_from = i - 1 if history[i - 1].kv is not None else i
            if keep_from:
                del history[:keep_from]
            if not history:
                del self._history[key]
                emptied = True
        if emptied:
            self._keys = sorted(self._history)
        self._compact_revision = revision

    # -- snapshot ---------------------------------------------------------------------------

    def encode_into(self, w: Writer) -> None:
        """Deterministic encoding: revisions, then every key's history in key order."""
        w.uint(self._revision).uint(self._compact_revision).uint(len(self._keys))
        for key in self._keys:
            history = self._history[key]
            w.blob(key).uint(len(history))
            for v in history:
                w.uint(v.main).uint(v.sub).boolean(v.kv is not None)
                if v.kv is not None:
                    w.blob(v.kv.value).uint(v.kv.create_revision).uint(v.kv.version)
                    w.uint(v.kv.lease)

    @staticmethod
    def decode_from(r: Reader) -> MvccIndex:
        """Rebuild an index from :meth:`encode_into` output."""
        idx = MvccIndex()
        idx._revision = r.uint("snapshot.revision")
        idx._compact_revision = r.uint("snapshot.compact_revision")
        for _ in range(r.count("snapshot.keys", 1 << 40)):
            key = r.blob("snapshot.key")
            if idx._keys and key <= idx._keys[-1]:
                raise DecodeError("snapshot.key", "keys are not in strictly increasing order")
            history: list[_Version] = []
            for _ in range(r.count("snapshot.history", 1 << 40)):
                main, sub = r.uint("snapshot.main"), r.uint("snapshot.sub")
                kv = None
                if r.boolean("snapshot.live"):
                    value = r.blob("snapshot.value")
                    create, version = r.uint("snapshot.create"), r.uint("snapshot.version")
                    kv = KeyValue(key, value, create, main, version, r.uint("snapshot.lease"))
                history.append(_Version(main, sub, kv))
            idx._history[key] = history
            idx._keys.append(key)
            if history and history[-1].kv is not None:
                idx._live[key] = history[-1].kv
        return idx
