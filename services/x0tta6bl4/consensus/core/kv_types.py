"""Value types shared by the key-value state machine: key-values, watch events and limits."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .kv_codec import Reader, Writer

DEFAULT_MAX_KEY_BYTES = 1536  # 1.5 KiB
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024  # 1 MiB


@dataclass(frozen=True, slots=True)
class KvLimits:
    """Configurable limits. Every replica must use the same limits (they decide outcomes).

    - ``max_key_bytes`` / ``max_value_bytes``: size limits of keys and values.
    - ``max_txn_ops``: compares plus operations of one branch of a transaction.
    - ``dedup_per_client``: results remembered per client for retried writes.
    - ``dedup_clients``: clients remembered; the least recently active is forgotten first.
    """

    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    max_txn_ops: int = 128
    dedup_per_client: int = 32
    dedup_clients: int = 10_000


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One version of a key, as etcd's ``mvccpb.KeyValue``.

    ``create_revision`` is the revision that created the key (since its last deletion),
    ``mod_revision`` the revision of this version, ``version`` counts puts since creation
    (0 for a deletion marker). ``lease`` is 0 when the key is not bound to a lease.
    """

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0

    @staticmethod
    def tombstone(key: bytes, revision: int) -> KeyValue:
        """The ``kv`` of a DELETE event of ``key`` at ``revision`` (see :class:`Event`)."""
        return KeyValue(key, b"", 0, revision, 0, 0)

    def encode_into(self, w: Writer) -> None:
        """Append the deterministic encoding of this key-value."""
        w.blob(self.key).blob(self.value)
        w.uint(self.create_revision).uint(self.mod_revision).uint(self.version).uint(self.lease)

    @staticmethod
    def decode_from(r: Reader, field: str = "kv") -> KeyValue:
        """Read a key-value written by :meth:`encode_into`."""
        return KeyValue(
            key=r.blob(f"{field}.key"),
            value=r.blob(f"{field}.value"),
            create_revision=r.uint(f"{field}.create_revision"),
            mod_revision=r.uint(f"{field}.mod_revision"),
            version=r.uint(f"{field}.version"),
            lease=r.uint(f"{field}.lease"),
        )


class EventType(enum.IntEnum):
    """The kind of a watch event."""

    PUT = 0
    DELETE = 1


@dataclass(frozen=True, slots=True)
class Event:
    """A change of one key at one revision, in apply order.

    For ``DELETE``, ``kv`` holds the key and the deleting revision as ``mod_revision`` with an
    empty value and version 0. ``prev_kv`` is the version before the change, if there was one.
    """

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None

    @property
    def revision(self) -> int:
        """The revision at which the change happened."""
        return self.kv.mod_revision
