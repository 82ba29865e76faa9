"""A service's own settings: its ``X0_*`` variables, else its section of ``X0_CONFIG_FILE``.

The platform's settings are the same for every service (:mod:`.config`); a service's own ones
(``X0_RAFT_*`` of consensus, ``X0_SYNC_*`` of sync, ...) are read by that service's settings
loader through a :class:`ServiceEnviron`: a read-only mapping of variable names that answers
from the environment first and then from the service's file section, where the same names
are written without the ``X0_`` prefix in lower case::

    # X0_CONFIG_FILE=/etc/x0tta6bl4/suite.yaml
    opa_url: http://127.0.0.1:8181
    consensus:
      raft_node_id: 2
      kv_authz_refresh_s: 5

It remembers which names were asked for, so after every loader of the service ran,
:meth:`ServiceEnviron.unknown` names each key of the section that no loader knows — a
misspelt file setting is an error at start-up, like a misspelt common one. Each default stays
written once, in the loader that reads the variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from x0tta6bl4.platform.config import Settings

PREFIX = "X0_"


class ServiceEnviron(Mapping[str, str]):
    """Environment over ``settings.file_section``; records the names read."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self._service = settings.service
        self._env = os.environ if environ is None else environ
        self._section = {
            PREFIX + name.upper(): value for name, value in settings.file_section.items()
        }
        self._read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self._read.add(key)
        if key in self._env:
            return self._env[key]
        return self._section[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._read.add(key)
        return key in self._env or key in self._section

    def __iter__(self) -> Iterator[str]:
        yield from self._env
        yield from (k for k in self._section if k not in self._env)

    def __len__(self) -> int:
        return len(self._env) + sum(1 for k in self._section if k not in self._env)

    def unknown(self) -> list[str]:
        """Problems for the section's settings that no loader asked for."""
        return [
            f"X0_CONFIG_FILE: {self._service}.{key[len(PREFIX) :].lower()}: unknown setting "
            f"of {self._service} (as a variable: {key})"
            for key in sorted(self._section)
            if key not in self._read
        ]
