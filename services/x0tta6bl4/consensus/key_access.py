"""Enforcement of the key-range permissions on KV requests, before anything is proposed or
read: every key or range a command touches is checked for the caller of the RPC.

- ``Get``/``Range``/``Watch``: read of the key or the whole prefix;
- ``Put``/``Delete``: write of the key or the whole prefix (a put with a lease attaches the
  key to it: write covers that);
- ``Txn``: read of every compared key and every range operation, write of every put and
  delete, in both branches — refused whole if any one is missing, so a transaction cannot
  learn through a compare or its else branch what the caller may not read;
- lease keep-alive and revoke: write of every key attached to the lease (revoking deletes
  them); an error does not name those keys.

A refusal is ``PERMISSION_DENIED`` naming the key or range and the missing permission,
logged (``kv_denied``) and counted per caller (``x0tta6bl4_kv_permission_denied_total``).
"""

from __future__ import annotations

import structlog

from x0tta6bl4.consensus.core import kv_commands as cmd
from x0tta6bl4.consensus.key_permissions import Access, Denial, Permissions, prefix_end
from x0tta6bl4.consensus.key_permissions_source import PermissionSource
from x0tta6bl4.consensus.metrics import KV_DENIED
from x0tta6bl4.platform.errors import PermissionDenied
from x0tta6bl4.platform.peer import current_caller

log = structlog.get_logger(__name__)


def _span(key: bytes, prefix: bool) -> tuple[bytes, bytes | None]:
    return (key, prefix_end(key)) if prefix else (key, key + b"\x00")


def command_spans(command: cmd.Command) -> list[tuple[Access, bytes, bytes | None]]:
    """Every (access, start, end) a KV command touches."""
    match command:
        case cmd.Put(key=key):
            return [(Access.WRITE, *_span(key, False))]
        case cmd.DeleteRange(key=key, prefix=prefix):
            return [(Access.WRITE, *_span(key, prefix))]
        case cmd.Range(key=key, prefix=prefix):
            return [(Access.READ, *_span(key, prefix))]
        case cmd.Txn(compares=compares, success=success, failure=failure):
            spans = [(Access.READ, *_span(c.key, False)) for c in compares]
            for op in (*success, *failure):
                spans.extend(command_spans(op))
            return spans
    return []


class KeyAccess:
    """Checks KV commands against the permission set the source has loaded."""

    def __init__(self, source: PermissionSource | None) -> None:
        self._source = source

    def _permissions(self) -> Permissions | None:
        """The set in force, ``None`` when enforcement is off; refuses while none is loaded."""
        source = self._source
        if source is None or not source.settings.enforce:
            return None
        if source.permissions is None:
            raise PermissionDenied(
                "no key-range permissions loaded yet from the OPA sidecar: every KV request "
                "is refused until they are"
            )
        return source.permissions

    def _refuse(self, caller: str, denial: Denial, shown: str | None = None) -> None:
        KV_DENIED.labels(caller, "read" if denial.access is Access.READ else "write").inc()
        message = shown or denial.message(caller)
        log.warning("kv_denied", caller=caller, what=denial.what, access=denial.access.name)
        raise PermissionDenied(message)

    def check(self, command: cmd.Command) -> None:
        """Refuse ``command`` unless the caller may touch everything it touches."""
        permissions = self._permissions()
        if permissions is None:
            return
        caller = current_caller()
        for access, start, end in command_spans(command):
            denial = permissions.check(caller, access, start, end)
            if denial is not None:
                self._refuse(caller, denial)

    def check_lease_keys(self, lease_id: int, keys: tuple[bytes, ...]) -> None:
        """Refuse renewing or revoking a lease with a key the caller may not write."""
        permissions = self._permissions()
        if permissions is None:
            return
        caller = current_caller()
        for key in keys:
            denial = permissions.check_key(caller, Access.WRITE, key)
            if denial is not None:
                self._refuse(
                    caller,
                    denial,
                    f"{caller} may not renew or revoke lease {lease_id}: it holds keys the "
                    "caller may not write (key-range permissions of consensus)",
                )
