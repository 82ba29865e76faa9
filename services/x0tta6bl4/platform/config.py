"""Service configuration from ``X0_*`` environment variables and an optional file.

Precedence: environment over file over defaults. Every value is validated at start-up, and all
problems are reported at once, each naming the setting (``X0_GRPC_ADDR: ...``).

The optional file (``X0_CONFIG_FILE``) is YAML or JSON mapping the same names without the prefix,
in lower case (``grpc_addr: 127.0.0.1:7001``), plus one section per service for that service's
own settings, named like its variables without the prefix (``consensus: {raft_node_id: 2}`` is
``X0_RAFT_NODE_ID=2`` for the consensus service only; see :mod:`.config_sections`). One file can
configure the whole suite: each service reads the common settings and its own section.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from x0tta6bl4.platform.errors import ConfigError

T = TypeVar("T")

SERVICES = ("identity", "policy", "consensus", "sync", "healer", "ops")
TRUST_DOMAIN = "x0tta6bl4.mesh"
_LOG_LEVELS = ("debug", "info", "warning", "error")
EVENT_LOOPS = ("uvloop", "asyncio")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+\Z")


@dataclasses.dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:  # an IPv6 address
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated settings of one service process."""

    service: str
    namespace: str = "local"
    trust_domain: str = TRUST_DOMAIN
    grpc_addr: HostPort = HostPort("127.0.0.1", 0)
    http_addr: HostPort = HostPort("127.0.0.1", 0)
    spiffe_socket: str = ""
    opa_url: str = "http://127.0.0.1:8181"
    authz_timeout_s: float = 0.25
    authz_cache_ttl_s: float = 1.0
    max_connection_age_s: float = 300.0
    drain_timeout_s: float = 15.0
    svid_timeout_s: float = 60.0
    state_dir: str = ""
    log_level: str = "info"
    event_loop: str = "uvloop"
    # service -> its members' addresses (one for most services; every member of consensus)
    dependencies: dict[str, tuple[HostPort, ...]] = dataclasses.field(default_factory=dict)
    dependency_probe_interval_s: float = 2.0
    redis_url: str = ""
    redis_timeout_s: float = 1.0
    # this service's section of X0_CONFIG_FILE (names without X0_, lower case -> text)
    file_section: dict[str, str] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def spiffe_id(self) -> str:
        return spiffe_id_for(self.service, self.namespace, self.trust_domain)

    @property
    def dns_name(self) -> str:
        return dns_name_for(self.service, self.namespace)


def spiffe_id_for(service: str, namespace: str = "local", trust_domain: str = TRUST_DOMAIN) -> str:
    """The SPIFFE ID of a workload: ``spiffe://<td>/ns/<namespace>/sa/<service>``."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service}"


def dns_name_for(service: str, namespace: str = "local") -> str:
    """The DNS SAN a service's server SVID carries, which clients verify (``<svc>.<ns>.svc``)."""
    return f"{service}.{namespace}.svc"


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_PORT = re.compile(r"^[0-9]{1,5}\Z")


def parse_host_port(value: str, *, allow_port_zero: bool = True) -> HostPort:
    """``host:port`` with a hostname, an IPv4 address or a bracketed IPv6 address
    (``[::1]:7001``); port 0 means "any free port" unless disallowed.

    Strict on purpose: an address also ends up in member lists and dial targets, so nothing
    else (spaces, ``=``, ``,``, a bare IPv6 address, an unclosed bracket) is accepted.
    """
    if not value or any(ch.isspace() for ch in value):
        raise ValueError(f"expected host:port without spaces, got {value!r}")
    if value.startswith("["):
        host, closed, rest = value[1:].partition("]")
        if not closed:
            raise ValueError(f"unclosed '[' in {value!r}: expected [ipv6]:port")
        if not rest.startswith(":"):
            raise ValueError(f"expected [ipv6]:port, got {value!r}")
        port = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    else:
        host, sep, port = value.rpartition(":")
        if not sep or not host:
            raise ValueError(f"expected host:port, got {value!r}")
        if ":" in host:
            raise ValueError(f"an IPv6 host must be in brackets ([::1]:port), got {value!r}")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError(f"{host!r} is not an IPv4 address") from None
        elif not _HOSTNAME.match(host):
            raise ValueError(
                f"host {host!r} is not a hostname, an IPv4 or a [bracketed] IPv6 address"
            )
    low = 0 if allow_port_zero else 1
    if not _PORT.match(port) or not low <= int(port) <= 65535:
        raise ValueError(f"port must be {low}-65535, got {port!r}")
    return HostPort(host, int(port))


def parse_peer_address(value: str) -> HostPort:
    """A peer's ``host:port``: a real port, never 0."""
    return parse_host_port(value, allow_port_zero=False)


def int_between(low: int, high: int = 1 << 62) -> Callable[[str], int]:
    """A parser of whole numbers in [low, high]."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"expected an integer, got {value!r}") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}, got {number}")
        return number

    return parse


def seconds_between(low: float, high: float) -> Callable[[str], float]:
    """A parser of a number of seconds in [low, high]."""

    def parse(value: str) -> float:
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"expected seconds, got {value!r}") from None
        if not low <= seconds <= high:
            raise ValueError(f"must be between {low:g} and {high:g} seconds, got {value}")
        return seconds

    return parse


class EnvReader:
    """Reads a service's own ``X0_*`` variables, collecting every problem by name.

    ``get`` returns the default for a missing or empty variable and for an invalid one (whose
    problem is recorded); the caller raises ``ConfigError(reader.problems)`` at the end.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def get(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self.environ.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except ValueError as err:
            self.problems.append(f"{name}: {err}")
            return default

    def directory(self, name: str, default: Path) -> Path:
        """A directory (made later if missing), ``default`` when unset; either way, a path that
        exists and is not a directory is a problem named after ``name``."""
        raw = self.environ.get(name, "").strip()
        path = Path(raw) if raw else default
        if path.exists() and not path.is_dir():
            self.problems.append(f"{name}: {path} exists and is not a directory")
        return path


def parse_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None
    if not number > 0:
        raise ValueError(f"must be > 0, got {value!r}")
    return number


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None
    if not number >= 0:
        raise ValueError(f"must be >= 0, got {value!r}")
    return number


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")
        return value.lower()

    return parse


def _dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(f"must be a DNS label (lower-case letters, digits, '-'), got {value!r}")
    return value


def _trust_domain(value: str) -> str:
    if not _TRUST_DOMAIN.match(value):
        raise ValueError(f"must be a trust domain name like {TRUST_DOMAIN}, got {value!r}")
    return value


def _url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _socket(value: str) -> str:
    path = value.removeprefix("unix://").removeprefix("unix:")
    if not path.startswith("/"):
        raise ValueError(f"must be an absolute unix socket path (unix:///path), got {value!r}")
    return path


def _dependencies(value: str) -> dict[str, tuple[HostPort, ...]]:
    """``policy=h:p,consensus=h1:p1|h2:p2|h3:p3``: each service once, its members by ``|``."""
    deps: dict[str, tuple[HostPort, ...]] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, addrs = item.partition("=")
        if not sep or name not in SERVICES:
            raise ValueError(
                f"expected service=host:port[|host:port...] items (services: "
                f"{', '.join(SERVICES)}), got {item!r}"
            )
        if name in deps:
            raise ValueError(f"{name} is named twice; list its members as host:port|host:port")
        members = tuple(parse_peer_address(a) for a in addrs.split("|"))
        if len(set(members)) != len(members):
            raise ValueError(f"{name} lists a member twice: {addrs!r}")
        deps[name] = members
    return deps


def _redis_url(value: str) -> str:
    if not re.match(r"^(rediss?://[^/\s]+(/[0-9]+)?|unix:///\S+)\Z", value):
        raise ValueError(
            "must be redis://host:port[/db], rediss://host:port[/db] or unix:///path, "
            f"got {value!r}"
        )
    return value


def _text(value: str) -> str:
    return value


# setting name (without prefix) -> parser
_PARSERS: dict[str, Callable[[str], Any]] = {
    "namespace": _dns_label,
    "trust_domain": _trust_domain,
    "grpc_addr": parse_host_port,
    "http_addr": parse_host_port,
    "spiffe_socket": _socket,
    "opa_url": _url,
    "authz_timeout_s": _positive_float,
    "authz_cache_ttl_s": _non_negative_float,
    "max_connection_age_s": _positive_float,
    "drain_timeout_s": _positive_float,
    "svid_timeout_s": _positive_float,
    "state_dir": _text,
    "log_level": _one_of(_LOG_LEVELS),
    "event_loop": _one_of(EVENT_LOOPS),
    "dependencies": _dependencies,
    "dependency_probe_interval_s": _positive_float,
    "redis_url": _redis_url,
    "redis_timeout_s": _positive_float,
}


def env_name(setting: str) -> str:
    return "X0_" + setting.upper()


def _read_file(path: str) -> tuple[dict[str, Any], list[str]]:
    try:
        text = Path(path).read_text()
    except OSError as err:
        return {}, [f"X0_CONFIG_FILE: cannot read {path}: {err.strerror}"]
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        return {}, [f"X0_CONFIG_FILE: {path} is not valid YAML/JSON: {err}"]
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        return {}, [f"X0_CONFIG_FILE: {path} must hold a mapping of setting names to values"]
    return data, []


def _file_text(value: Any) -> str:
    """A file value as the text an environment variable would hold (YAML ``true`` -> "true")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _section(service: str, key: str, value: Any) -> tuple[dict[str, str], list[str]]:
    """The ``key`` service's section of the file as text by lower-case name (empty unless it
    is this ``service``'s own; every section must still be a mapping of single values)."""
    if not isinstance(value, dict):
        return {}, [f"X0_CONFIG_FILE: section {key!r} must be a mapping of {key}'s settings"]
    section: dict[str, str] = {}
    problems: list[str] = []
    for name, item in value.items():
        if isinstance(item, (dict, list)):
            problems.append(f"X0_CONFIG_FILE: {key}.{name}: expected a single value")
        else:
            section[str(name).lower()] = _file_text(item)
    return (section if key == service else {}), problems


def load_settings(service: str, environ: Mapping[str, str] | None = None) -> Settings:
    """Build validated settings for ``service``; raise ConfigError naming every bad value."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    if service not in SERVICES:
        problems.append(f"service: unknown service {service!r} (known: {', '.join(SERVICES)})")

    raw: dict[str, str] = {}
    origin: dict[str, str] = {}
    section: dict[str, str] = {}
    if env.get("X0_CONFIG_FILE"):
        file_values, file_problems = _read_file(env["X0_CONFIG_FILE"])
        problems += file_problems
        for key, value in file_values.items():
            name = str(key).lower()
            if name in SERVICES:
                own, section_problems = _section(service, name, value)
                section.update(own)
                problems += section_problems
                continue
            if name not in _PARSERS:
                problems.append(f"X0_CONFIG_FILE: unknown setting {key!r}")
                continue
            raw[name] = _file_text(value)
            origin[name] = f"{name} (in X0_CONFIG_FILE)"
    for key, value in env.items():
        if not key.startswith("X0_") or key == "X0_CONFIG_FILE":
            continue
        name = key[3:].lower()
        if name in _PARSERS:
            raw[name] = value
            origin[name] = key
    if "spiffe_socket" not in raw and env.get("SPIFFE_ENDPOINT_SOCKET"):
        raw["spiffe_socket"] = env["SPIFFE_ENDPOINT_SOCKET"]
        origin["spiffe_socket"] = "SPIFFE_ENDPOINT_SOCKET"

    values: dict[str, Any] = {}
    for name, text in raw.items():
        try:
            values[name] = _PARSERS[name](text.strip())
        except ValueError as err:
            problems.append(f"{origin[name]}: {err}")
    if "spiffe_socket" not in values and "spiffe_socket" not in raw:
        problems.append(
            "X0_SPIFFE_SOCKET: not set (nor SPIFFE_ENDPOINT_SOCKET); the Workload "
            "API socket is required"
        )
    if problems:
        raise ConfigError(problems)
    return Settings(service=service, file_section=section, **values)
