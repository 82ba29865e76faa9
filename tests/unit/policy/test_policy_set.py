from __future__ import annotations

import hashlib
import json

import pytest

from x0tta6bl4.policy.core.policy_set import (
    ROOT,
    PolicySet,
    PolicySetError,
    bundle_files,
    canonical_bytes,
    from_canonical,
    manifest,
    parse_policy_set,
    rule_diff,
)

DOC = """
rules:
  - id: ops-reads
    effect: ALLOW
    when: {callers: {service_accounts: [ops]}, methods: [Range]}
  - id: no-outsiders
    effect: DENY
    when: {callers: {trust_domains: [elsewhere.test]}}
modules:
  extra.rego: |
    package x0tta6bl4.policy.custom.extra
    import rego.v1
    deny contains "never" if false
tests:
  extra_test.rego: |
    package x0tta6bl4.policy.custom.extra_test
    import rego.v1
    test_nothing if true
"""


def test_a_document_parses_and_round_trips_through_its_canonical_form() -> None:
    ps = parse_policy_set(DOC)
    assert ps.rule_ids() == ["ops-reads", "no-outsiders"]
    assert from_canonical(canonical_bytes(ps)) == ps
    # YAML and the equivalent JSON are one content, one hash
    as_json = json.dumps(ps.to_document(), indent=4)
    assert canonical_bytes(parse_policy_set(as_json)) == canonical_bytes(ps)


@pytest.mark.parametrize(
    ("doc", "path", "problem"),
    [
        ("rules: [{id: a, effect: MAYBE, when: {}}]", "rules[0].effect", "MAYBE"),
        ("rules: 3", "rules", "not of type 'array'"),
        ("rules: []\nextra: 1", "(document)", "'extra' was unexpected"),
        ("rules: [{id: a, effect: ALLOW}]", "rules[0]", "'when' is a required property"),
        ("{}", "(document)", "'rules' is a required property"),
        (
            "rules: [{id: a, effect: ALLOW, when: {}}, {id: a, effect: DENY, when: {}}]",
            "rules",
            "used twice",
        ),
        (
            "rules: []\nmodules: {a.rego: 'package foo'}",
            "modules.a.rego",
            "x0tta6bl4.policy.custom",
        ),
        ("rules: []\nmodules: {a.rego: 'no package'}", "modules.a.rego", "one package"),
        ("rules: []\nmodules: {a_test.rego: 'package x0tta6bl4.policy.custom.a'}", "modules", ""),
        ("rules: []\ntests: {a.rego: 'package t'}", "tests", ""),
        ("rules: [\n", "(document)", "neither YAML nor JSON"),
        (
            "rules: []\nbreak_glass: [{id: b, token_sha256: XYZ, expires: x, justification: j,"
            " callers: ['*']}]",
            "break_glass[0].token_sha256",
            "does not match",
        ),
    ],
)
def test_a_bad_document_is_refused_naming_where(doc: str, path: str, problem: str) -> None:
    with pytest.raises(PolicySetError) as raised:
        parse_policy_set(doc)
    assert raised.value.path == path
    assert problem in str(raised.value)


def test_an_oversized_document_is_refused_before_parsing() -> None:
    with pytest.raises(PolicySetError, match="over 1048576"):
        parse_policy_set(b"rules: []\n#" + b"x" * (1 << 20))


def test_bundle_files_hold_the_engine_the_modules_and_the_ruleset_under_one_root() -> None:
    ps = parse_policy_set(DOC)
    files = bundle_files(ps, 7)
    assert all(path.startswith(ROOT + "/") for path in files)
    assert f"{ROOT}/rules.rego" in files and f"{ROOT}/custom/extra.rego" in files
    assert not any(path.endswith("_test.rego") for path in files)
    data = json.loads(files[f"{ROOT}/ruleset/data.json"])
    assert data["version"] == 7 and [r["id"] for r in data["rules"]] == ps.rule_ids()
    sha = hashlib.sha256(canonical_bytes(ps)).hexdigest()
    assert manifest(7, sha) == {"revision": f"7-{sha[:12]}", "roots": [ROOT]}


def test_rule_diff_names_added_removed_and_changed_entries() -> None:
    old = parse_policy_set(DOC)
    rules = [dict(r) for r in old.rules]
    rules[0]["effect"] = "AUDIT"
    new = PolicySet(
        rules=(rules[0], {"id": "fresh", "effect": "ALLOW", "when": {}}),
        modules={},
        tests=dict(old.tests),
    )
    changes = {(c.rule_id, c.change) for c in rule_diff(old, new)}
    assert changes == {
        ("ops-reads", "changed"),
        ("fresh", "added"),
        ("no-outsiders", "removed"),
        ("module:extra.rego", "removed"),
    }
    assert rule_diff(old, old) == []
