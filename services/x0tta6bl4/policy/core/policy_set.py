"""A policy set: what an operator proposes and what one revision holds (pure).

The document (YAML or JSON, ``x0 policy propose -f rules.yaml``)::

    dry_run: false            # optional: evaluate and log the whole set, enforce the baseline
    rules:                    # the rule list of policy/rego/rules.rego (ALLOW/DENY/AUDIT)
      - id: ops-reads-kv
        effect: ALLOW
        when: {callers: {service_accounts: [ops]}, methods: [Range]}
    break_glass: []           # optional, see rules.rego
    modules:                  # optional Rego (file -> source), package x0tta6bl4.policy.custom.<x>
      extra.rego: |
        package x0tta6bl4.policy.custom.extra
        ...
    tests:                    # optional Rego tests run by `opa test` before activation
      extra_test.rego: |
        ...

The document's shape is checked here against the JSON Schema shipped with the package
(``policy/schema/policy-set.schema.json``; errors name the path in the document); each rule's
conditions are checked by the engine's own gate (``candidate_errors`` in validate.rego) during
validation. A revision stores :func:`canonical_bytes` (sorted-key JSON), so one content has one
hash. :func:`bundle_files` lays a revision out as the files of its OPA bundle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jsonschema
import yaml

ROOT = "x0tta6bl4/policy"
CUSTOM_PACKAGE = "x0tta6bl4.policy.custom"
MAX_DOCUMENT_BYTES = 1024 * 1024
_PACKAGE = re.compile(r"^package\s+([A-Za-z_][A-Za-z0-9_.]*)\s*$", re.MULTILINE)
# The engine's modules, shipped in policy/rego and put into every bundle (tests excluded).
ENGINE_MODULES = ("rules.rego", "conditions.rego", "validate.rego")


class PolicySetError(ValueError):
    """A problem of a policy-set document; ``path`` says where (``rules[3].effect``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True, slots=True)
class PolicySet:
    rules: tuple[Mapping[str, Any], ...] = ()
    break_glass: tuple[Mapping[str, Any], ...] = ()
    dry_run: bool = False
    modules: Mapping[str, str] = field(default_factory=dict)
    tests: Mapping[str, str] = field(default_factory=dict)

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"rules": [dict(r) for r in self.rules]}
        if self.break_glass:
            doc["break_glass"] = [dict(b) for b in self.break_glass]
        if self.dry_run:
            doc["dry_run"] = True
        if self.modules:
            doc["modules"] = dict(self.modules)
        if self.tests:
            doc["tests"] = dict(self.tests)
        return doc

    def rule_ids(self) -> list[str]:
        return [str(r.get("id")) for r in self.rules]


def _schema() -> dict[str, Any]:
    text = (resources.files("x0tta6bl4.policy") / "schema" / "policy-set.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def schema_text() -> str:
    """The published JSON Schema of a policy-set document."""
    return json.dumps(_schema(), indent=2, sort_keys=True)


def _path(parts: Sequence[object]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def parse_policy_set(raw: bytes | str) -> PolicySet:
    """The policy set in a YAML or JSON document; :class:`PolicySetError` naming the first
    problem's path otherwise."""
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > MAX_DOCUMENT_BYTES:
        raise PolicySetError("(document)", f"is {len(data)} bytes, over {MAX_DOCUMENT_BYTES}")
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as err:
        raise PolicySetError("(document)", f"is neither YAML nor JSON: {err}") from None
    return from_document(doc)


def from_document(doc: object) -> PolicySet:
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        first = errors[0]
        raise PolicySetError(_path(list(first.absolute_path)), first.message)
    assert isinstance(doc, dict)
    modules: dict[str, str] = dict(doc.get("modules", {}))
    for name, source in modules.items():
        packages = _PACKAGE.findall(source)
        where = f"modules.{name}"
        if len(packages) != 1:
            raise PolicySetError(where, "must hold exactly one package statement")
        package = packages[0]
        if not package.startswith(CUSTOM_PACKAGE + ".") or package.count(".") != 3:
            raise PolicySetError(
                where, f"package {package} must be {CUSTOM_PACKAGE}.<name> (one segment)"
            )
    ids = [str(r["id"]) for r in doc["rules"]] + [str(b["id"]) for b in doc.get("break_glass", [])]
    for i, rule_id in enumerate(ids):
        if rule_id in ids[:i]:
            raise PolicySetError("rules", f"id {rule_id!r} is used twice")
    return PolicySet(
        rules=tuple(doc["rules"]),
        break_glass=tuple(doc.get("break_glass", ())),
        dry_run=bool(doc.get("dry_run", False)),
        modules=modules,
        tests=dict(doc.get("tests", {})),
    )


def canonical_bytes(policy_set: PolicySet) -> bytes:
    """The stored form of a revision: sorted-key compact JSON (one content, one hash)."""
    return json.dumps(policy_set.to_document(), sort_keys=True, separators=(",", ":")).encode()


def from_canonical(raw: bytes) -> PolicySet:
    return from_document(json.loads(raw))


def ruleset_data(policy_set: PolicySet, version: int) -> dict[str, Any]:
    """``data.x0tta6bl4.policy.ruleset`` for the bundle of revision ``version``."""
    return {
        "version": version,
        "dry_run": policy_set.dry_run,
        "rules": [dict(r) for r in policy_set.rules],
        "break_glass": [dict(b) for b in policy_set.break_glass],
    }


def engine_sources() -> dict[str, str]:
    """The engine modules shipped with the package, by file name."""
    base = resources.files("x0tta6bl4.policy") / "rego"
    return {name: (base / name).read_text() for name in ENGINE_MODULES}


def bundle_files(policy_set: PolicySet, version: int) -> dict[str, bytes]:
    """Every file of revision ``version``'s bundle but ``.manifest`` and signatures, by path
    inside the bundle: the engine, the user's modules under ``custom/`` and the ruleset."""
    files = {f"{ROOT}/{name}": text.encode() for name, text in engine_sources().items()}
    for name, source in sorted(policy_set.modules.items()):
        files[f"{ROOT}/custom/{name}"] = source.encode()
    files[f"{ROOT}/ruleset/data.json"] = json.dumps(
        ruleset_data(policy_set, version), sort_keys=True
    ).encode()
    return files


def manifest(version: int, sha256: str) -> dict[str, Any]:
    """The bundle's ``.manifest``: revision ``<number>-<first 12 hex of the content hash>``."""
    return {"revision": bundle_revision(version, sha256), "roots": [ROOT]}


def bundle_revision(version: int, sha256: str) -> str:
    return f"{version}-{sha256[:12]}"


@dataclass(frozen=True, slots=True)
class RuleChange:
    rule_id: str
    change: str  # "added" | "removed" | "changed"
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


def rule_diff(old: PolicySet, new: PolicySet) -> list[RuleChange]:
    """Rule by rule (break-glass entries and modules too, as ``break_glass:<id>`` and
    ``module:<file>``), in the new set's order, then removals."""

    def keyed(ps: PolicySet) -> dict[str, Mapping[str, Any]]:
        out: dict[str, Mapping[str, Any]] = {str(r["id"]): r for r in ps.rules}
        out |= {f"break_glass:{b['id']}": b for b in ps.break_glass}
        out |= {f"module:{n}": {"source": s} for n, s in ps.modules.items()}
        out |= {f"test:{n}": {"source": s} for n, s in ps.tests.items()}
        if ps.dry_run:
            out["set:dry_run"] = {"dry_run": True}
        return out

    before, after = keyed(old), keyed(new)
    changes = [
        RuleChange(k, "added", None, v)
        if k not in before
        else RuleChange(k, "changed", before[k], v)
        for k, v in after.items()
        if k not in before or before[k] != v
    ]
    changes += [RuleChange(k, "removed", v, None) for k, v in before.items() if k not in after]
    return changes
