"""Validation policies: which revocation checks and pins apply, and the input limits (pure).

The service loads its policies from configuration, a mapping of policy name to fields (YAML or
JSON); every field is optional and defaults as in :class:`ValidationPolicy`::

    policies:
      default: {}                      # built in if absent: OCSP + CRL where published, hard-fail
      partner:
        check_ocsp: true
        ocsp_soft_fail: true           # an unreachable responder is a soft_fail, not a fail
        ocsp_responder_url: http://ocsp.partner.example/   # overrides the leaf's AIA
        check_crl: true
        crl_soft_fail: false
        crl_urls: [http://pki.partner.example/ca.crl]      # besides the distribution points
        spki_pins: [sha256/6XGgTzc..., 3a1f...64 hex digits]   # any cert of the chain
        spiffe_id_pins: [spiffe://partner.example/ns/prod/*]
        max_chain_len: 10
        max_input_bytes: 262144

:func:`parse_policies` turns that mapping into policies; each bad field is a ``ValueError``
whose message starts with ``policies.<name>.<field>``.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from x0tta6bl4.identity.validation.pins import check_spiffe_id_pin, spki_pin_digest

DEFAULT_POLICY = "default"
MAX_INPUT_BYTES = 256 * 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CHAIN_LEN_LIMIT = 64
_INPUT_LIMIT = 16 * 1024 * 1024


class PolicyFieldError(ValueError):
    """A policy field is invalid; ``field`` names it (prefixed by the parser's location)."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """How a chain is validated beyond the trust bundle and the X.509-SVID profile.

    OCSP and CRL checks apply where the chain publishes a responder or distribution points (or
    the policy configures them); where it publishes none they are skipped. An answer that
    cannot be had (responder down, timeout, HTTP error, unverifiable or stale answer) fails
    the verdict unless the matching ``*_soft_fail`` is set; a revocation always fails it.
    Empty pin sets mean no pinning (the pin checks are skipped), never "accept all".
    Construction validates every field (``PolicyFieldError`` naming it).
    """

    name: str = DEFAULT_POLICY
    check_ocsp: bool = True
    check_crl: bool = True
    ocsp_soft_fail: bool = False
    crl_soft_fail: bool = False
    ocsp_responder_url: str | None = None
    crl_urls: tuple[str, ...] = ()
    spki_pins: frozenset[str] = field(default_factory=frozenset)
    spiffe_id_pins: frozenset[str] = field(default_factory=frozenset)
    max_chain_len: int = 10
    max_input_bytes: int = MAX_INPUT_BYTES

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise PolicyFieldError("name", "must be 1-64 letters, digits, '_', '.', '-'")
        for flag in ("check_ocsp", "check_crl", "ocsp_soft_fail", "crl_soft_fail"):
            if not isinstance(getattr(self, flag), bool):
                raise PolicyFieldError(flag, f"must be true or false, got {getattr(self, flag)!r}")
        if self.ocsp_responder_url is not None:
            _check_url("ocsp_responder_url", self.ocsp_responder_url)
        for i, url in enumerate(self.crl_urls):
            _check_url(f"crl_urls[{i}]", url)
        for pin in sorted(self.spki_pins):
            try:
                spki_pin_digest(pin)
            except ValueError as err:
                raise PolicyFieldError("spki_pins", str(err)) from None
        for pin in sorted(self.spiffe_id_pins):
            try:
                check_spiffe_id_pin(pin)
            except ValueError as err:
                raise PolicyFieldError("spiffe_id_pins", str(err)) from None
        _check_int("max_chain_len", self.max_chain_len, 1, _CHAIN_LEN_LIMIT)
        _check_int("max_input_bytes", self.max_input_bytes, 1, _INPUT_LIMIT)


_FIELDS = {f.name for f in fields(ValidationPolicy)} - {"name"}


def parse_policy(name: str, raw: Mapping[str, Any], *, where: str = "policies") -> ValidationPolicy:
    """The policy ``name`` from its config mapping; ``PolicyFieldError`` naming
    ``<where>.<name>.<field>`` for a bad or unknown field."""
    prefix = f"{where}.{name}"
    if not isinstance(raw, Mapping):
        raise PolicyFieldError(prefix, f"must be a mapping of fields, got {type(raw).__name__}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _FIELDS:
            raise PolicyFieldError(f"{prefix}.{key}", f"unknown field (known: {_known()})")
        values[key] = _coerce(f"{prefix}.{key}", key, value)
    try:
        return ValidationPolicy(name=name, **values)
    except PolicyFieldError as err:
        location = prefix if err.field == "name" else f"{prefix}.{err.field}"
        raise PolicyFieldError(location, err.problem) from None


def parse_policies(
    raw: Mapping[str, Any] | None, *, where: str = "policies"
) -> dict[str, ValidationPolicy]:
    """Every policy of the config mapping ``name -> fields``, plus the built-in ``default``
    unless the mapping defines its own; ``PolicyFieldError`` naming the first bad field."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise PolicyFieldError(
            where, f"must be a mapping of policy names, got {type(raw).__name__}"
        )
    policies = {DEFAULT_POLICY: ValidationPolicy()}
    for name, body in raw.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise PolicyFieldError(
                f"{where}.{name}", "a policy name must be 1-64 letters, digits, '_', '.', '-'"
            )
        policies[name] = parse_policy(name, body if body is not None else {}, where=where)
    return policies


def _coerce(location: str, key: str, value: Any) -> Any:
    if key in ("crl_urls", "spki_pins", "spiffe_id_pins"):
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise PolicyFieldError(location, f"must be a list of strings, got {value!r}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise PolicyFieldError(f"{location}[{i}]", f"must be a string, got {item!r}")
        return tuple(value) if key == "crl_urls" else frozenset(value)
    if key == "ocsp_responder_url":
        if value is not None and not isinstance(value, str):
            raise PolicyFieldError(location, f"must be a URL string, got {value!r}")
        return value or None
    if key in ("max_chain_len", "max_input_bytes"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise PolicyFieldError(location, f"must be an integer, got {value!r}")
        return value
    if not isinstance(value, bool):
        raise PolicyFieldError(location, f"must be true or false, got {value!r}")
    return value


def _check_url(name: str, url: str) -> None:
    if not isinstance(url, str):
        raise PolicyFieldError(name, f"must be a URL string, got {url!r}")
    problem = f"must be an http:// or https:// URL with a host, got {url!r}"
    if not url.isascii() or not url.isprintable() or " " in url:
        raise PolicyFieldError(name, problem + " (spaces, control or non-ASCII characters)")
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # ValueError for a port out of range or not a number
    except ValueError as err:
        raise PolicyFieldError(name, f"{problem} ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PolicyFieldError(name, problem)


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PolicyFieldError(name, f"must be an integer from {low} to {high}, got {value!r}")


def _known() -> str:
    return ", ".join(sorted(_FIELDS))
