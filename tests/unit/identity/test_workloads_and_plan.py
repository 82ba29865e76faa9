"""Workload validation, the stored form, SPIFFE ID syntax and the reconcile plan (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from x0tta6bl4.identity.core.reconcile_plan import entry_id, is_owned, plan
from x0tta6bl4.identity.core.revocations import Revocation, opa_data
from x0tta6bl4.identity.core.spiffe_id import parse_spiffe_id
from x0tta6bl4.identity.core.workloads import (
    FieldError,
    Selector,
    Workload,
    check_workload,
    decode_record,
    encode_record,
    parse_selector,
)

TD = "x0tta6bl4.mesh"
AGENT = "spiffe://x0tta6bl4.mesh/spire/agent/join_token/abc"


def _w(name: str = "web", **changes: object) -> Workload:
    w = Workload(
        spiffe_id=f"spiffe://{TD}/ns/local/sa/{name}",
        parent_id=AGENT,
        selectors=(Selector("unix", "uid:1000"),),
        x509_svid_ttl_s=3600,
        dns_names=(f"{name}.local.svc",),
    )
    return dataclasses.replace(w, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is empty"),
        ("http://x0tta6bl4.mesh/a", "scheme must be 'spiffe'"),
        ("spiffe:/x0tta6bl4.mesh/a", "not a URI"),
        ("spiffe:///a", "has no trust domain"),
        ("spiffe://X0.mesh/a", "lower-case"),
        ("spiffe://td:8080/a", "must not contain a port"),
        ("spiffe://u@td/a", "must not contain user info"),
        ("spiffe://td/a?x=1", "a query"),
        ("spiffe://td/a#f", "a fragment"),
        ("spiffe://td/a%20b", "percent-encoding"),
        ("spiffe://td/a/", "is empty"),
        ("spiffe://td/", "must not end with '/'"),
        ("spiffe://td/a//b", "segment 2 is empty"),
        ("spiffe://td/a/../b", "must not be '..'"),
        ("spiffe://td/./b", "must not be '.'"),
        ("spiffe://td/a b", "may hold only"),
        ("spiffe://td/" + "a" * 2048, "longer than 2048"),
    ],
)
def test_bad_spiffe_ids_say_what_is_wrong(value: str, problem: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_spiffe_id(value)
    assert problem in str(err.value)


def test_good_spiffe_ids() -> None:
    assert str(parse_spiffe_id("spiffe://x0tta6bl4.mesh/ns/local/sa/web")) == (
        "spiffe://x0tta6bl4.mesh/ns/local/sa/web"
    )
    assert parse_spiffe_id("spiffe://td").path == ""
    with pytest.raises(ValueError, match="needs a path"):
        parse_spiffe_id("spiffe://td", require_path=True)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"spiffe_id": "spiffe://other.td/ns/local/sa/web"}, "workload.spiffe_id"),
        ({"spiffe_id": "spiffe://x0tta6bl4.mesh"}, "workload.spiffe_id"),
        ({"parent_id": "agent-1"}, "workload.parent_id"),
        ({"parent_id": f"spiffe://{TD}/ns/local/sa/web"}, "workload.parent_id"),
        ({"selectors": ()}, "workload.selectors"),
        ({"selectors": (Selector("Unix", "uid:1"),)}, "workload.selectors[0].type"),
        (
            {"selectors": (Selector("unix", "uid:1"), Selector("unix", ""))},
            "workload.selectors[1].value",
        ),
        ({"x509_svid_ttl_s": 59}, "workload.x509_svid_ttl_seconds"),
        ({"x509_svid_ttl_s": 31 * 24 * 3600}, "workload.x509_svid_ttl_seconds"),
        ({"x509_svid_ttl_s": -1}, "workload.x509_svid_ttl_seconds"),
        ({"dns_names": ("ok.svc", "not a name")}, "workload.dns_names[1]"),
        ({"dns_names": tuple(f"d{i}.svc" for i in range(33))}, "workload.dns_names"),
        ({"hint": "a\nb"}, "workload.hint"),
    ],
)
def test_a_bad_field_is_named(changes: dict[str, object], field: str) -> None:
    with pytest.raises(FieldError) as err:
        check_workload(_w(**changes), TD)
    assert err.value.field == field


def test_selectors_are_sorted_and_unique_dns_names_keep_their_order() -> None:
    w = check_workload(
        _w(
            selectors=(
                Selector("unix", "uid:2"),
                Selector("unix", "uid:1"),
                Selector("unix", "uid:2"),
            ),
            dns_names=("b.svc", "a.svc", "B.svc"),
        ),
        TD,
    )
    assert w.selectors == (Selector("unix", "uid:1"), Selector("unix", "uid:2"))
    assert w.dns_names == ("b.svc", "a.svc")


def test_selector_values_may_hold_colons() -> None:
    assert parse_selector("k8s:ns:default", "s") == Selector("k8s", "ns:default")
    with pytest.raises(FieldError, match="expected type:value"):
        parse_selector("unix", "s")


def test_the_stored_form_round_trips() -> None:
    w = check_workload(_w(hint="web", admin=True), TD)
    record = decode_record(encode_record(w, "spiffe://td/op", 12.5), 7, 3)
    assert (record.workload, record.revision, record.create_revision) == (w, 7, 3)
    assert (record.author, record.updated_at) == ("spiffe://td/op", 12.5)
    with pytest.raises(ValueError, match="not a stored workload"):
        decode_record(b"{}", 1, 1)


def test_the_plan_creates_updates_and_deletes_only_owned_entries() -> None:
    keep, edit, new, gone = _w("keep"), _w("edit"), _w("new"), _w("gone")
    foreign = ("a-bootstrap-entry", _w("consensus"))
    actual = [
        (entry_id(keep.spiffe_id), keep),
        (entry_id(edit.spiffe_id), dataclasses.replace(edit, x509_svid_ttl_s=60)),
        (entry_id(gone.spiffe_id), gone),
        foreign,
    ]
    p = plan([keep, edit, new], set(), actual)
    assert [w.spiffe_id for _, w in p.create] == [new.spiffe_id]
    assert [w for _, w in p.update] == [edit]
    assert p.delete == ((entry_id(gone.spiffe_id), gone.spiffe_id),)
    assert plan([keep], set(), [(entry_id(keep.spiffe_id), keep), foreign]).empty


def test_a_banned_workload_loses_its_entry_and_gets_none() -> None:
    w, banned = _w("web"), _w("evil")
    p = plan([w, banned], {banned.spiffe_id}, [(entry_id(banned.spiffe_id), banned)])
    assert [x.spiffe_id for _, x in p.create] == [w.spiffe_id]
    assert p.delete == ((entry_id(banned.spiffe_id), banned.spiffe_id),)


def test_selector_order_and_dns_case_are_not_drift() -> None:
    w = _w(selectors=(Selector("unix", "uid:1"), Selector("unix", "gid:1")))
    seen = dataclasses.replace(
        w, selectors=tuple(reversed(w.selectors)), dns_names=("WEB.local.svc",)
    )
    assert plan([w], set(), [(entry_id(w.spiffe_id), seen)]).empty


def test_entry_ids_are_owned_stable_and_distinct() -> None:
    a, b = entry_id("spiffe://td/a"), entry_id("spiffe://td/b")
    assert is_owned(a) and a == entry_id("spiffe://td/a") and a != b
    assert not is_owned("3f1c7d8e-0000-4000-8000-000000000000")


def test_revocations_in_force_become_opa_data() -> None:
    revs = [
        Revocation("spiffe://td/a", "stolen", "op", 100.0),
        Revocation("spiffe://td/b", "drill", "op", 100.0, until=200.0),
        Revocation("spiffe://td/c", "over", "op", 100.0, until=150.0),
    ]
    assert opa_data(revs, 160.0) == {
        "spiffe://td/a": {"reason": "stolen", "until": ""},
        "spiffe://td/b": {"reason": "drill", "until": "1970-01-01T00:03:20.000000Z"},
    }
