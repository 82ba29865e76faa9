"""Typed clients of the suite's own APIs, shared by every service and the ``x0`` CLI.

- :mod:`.consensus`: the consensus KV (any member as seed, leader-following, safe retries,
  typed results and errors, leases with keep-alive, a watch that resumes without gaps);
- :mod:`.sync`: the CRDT store, with the causal context kept for the caller;
- :mod:`.versions`: immutable revisions of named documents with a compare-and-set pointer;
- :mod:`.single_actor`: "only one replica acts at a time", fenced by a lease key's revision;
- :mod:`.keys`: the key layout of the consensus store (one prefix per owning service).

This layer may import :mod:`x0tta6bl4.platform` and the services' generated ``v1`` APIs; the
services may import it; nothing here knows a service's internals (import-linter contracts).
"""
