# Every condition type, positively and negatively, through the whole decision: `holds` means a
# one-rule ALLOW set allows the call, `fails` that the same valid rule leaves it to default deny.
package x0tta6bl4.policy.conditions_test

import rego.v1

import data.x0tta6bl4.policy.rules

sa(name) := concat("", ["spiffe://x0tta6bl4.mesh/ns/local/sa/", name])

call := {
	"caller": sa("ops"),
	"namespace": "local",
	"service": "consensus",
	"grpc_service": "x0tta6bl4.consensus.v1.KVService",
	"method": "Put",
	"metadata": {},
	"time": "2026-11-27T10:00:00.000000Z",
}

one(when) := {"rules": [{"id": "r", "effect": "ALLOW", "when": when}]}

verdict(when, patch) := d if {
	d := rules.decision with data.x0tta6bl4.policy.ruleset as one(when)
		with input as object.union(call, patch)
}

valid(when) if count(rules.rule_errors) == 0 with data.x0tta6bl4.policy.ruleset as one(when)

holds(when, patch) if {
	valid(when)
	d := verdict(when, patch)
	d.allow == true
	d.decided_by == ["r"]
}

fails(when, patch) if {
	valid(when)
	d := verdict(when, patch)
	d.allow == false
	d.effect == "DEFAULT_DENY"
}

from(caller) := {"caller": caller}

at(t) := {"time": t}

# ── callers ───────────────────────────────────────────────────────────────────────────────────

test_no_condition_is_any if {
	holds({}, {})
	holds({}, from("spiffe://elsewhere.example/x"))
}

test_caller_exact if {
	holds({"callers": {"exact": [sa("healer"), sa("ops")]}}, {})
	fails({"callers": {"exact": [sa("ops")]}}, from(sa("opsx")))
	fails({"callers": {"exact": [sa("ops")]}}, from(sa("op")))
	fails({"callers": {"exact": [sa("ops")]}}, from("spiffe://x0tta6bl4.mesh/ns/local/sa/OPS"))
}

test_caller_glob_star_stays_in_one_segment if {
	w := {"callers": {"glob": ["spiffe://x0tta6bl4.mesh/ns/*/sa/ops"]}}
	holds(w, {})
	holds(w, from("spiffe://x0tta6bl4.mesh/ns/prod/sa/ops"))
	fails(w, from("spiffe://x0tta6bl4.mesh/ns/a/b/sa/ops"))
	fails(w, from("spiffe://x0tta6bl4.mesh/ns/local/sa/healer"))
	fails(w, from("spiffe://x0tta6bl4.mesh.evil/ns/local/sa/ops"))
}

test_caller_glob_double_star_crosses_segments if {
	w := {"callers": {"glob": ["spiffe://x0tta6bl4.mesh/**"]}}
	holds(w, {})
	holds(w, from("spiffe://x0tta6bl4.mesh/a/b/c/d"))
	fails(w, from("spiffe://x0tta6bl4.mesh"))
	fails(w, from("spiffe://x0tta6bl4.meshy/ns/local/sa/ops"))
	fails({"callers": {"glob": ["spiffe://x0tta6bl4.mesh/ns/**/sa/ops"]}}, from("spiffe://x0tta6bl4.mesh/ns/sa/ops"))
}

test_caller_glob_alternatives_and_single_characters if {
	holds({"callers": {"glob": ["spiffe://x0tta6bl4.mesh/ns/local/sa/{ops,healer}"]}}, {})
	fails({"callers": {"glob": ["spiffe://x0tta6bl4.mesh/ns/local/sa/{sync,healer}"]}}, {})
	holds({"callers": {"glob": ["spiffe://x0tta6bl4.mesh/ns/local/sa/o?s"]}}, {})
	fails({"callers": {"glob": ["spiffe://x0tta6bl4.mesh/ns/local/sa/o?"]}}, {})
}

test_caller_trust_domain if {
	w := {"callers": {"trust_domains": ["x0tta6bl4.mesh"]}}
	holds(w, {})
	holds(w, from("spiffe://x0tta6bl4.mesh/anything/else"))
	fails(w, from("spiffe://x0tta6bl4.mesh.evil/ns/local/sa/ops"))
	fails(w, from("spiffe://partner.example/ns/local/sa/ops"))
	fails(w, from("https://x0tta6bl4.mesh/ns/local/sa/ops"))
	fails(w, from("spiffe:///ns/local/sa/ops"))
}

test_caller_namespace if {
	w := {"callers": {"namespaces": ["local", "prod"]}}
	holds(w, {})
	holds(w, from("spiffe://x0tta6bl4.mesh/ns/prod/sa/ops"))
	fails(w, from("spiffe://x0tta6bl4.mesh/ns/staging/sa/ops"))
	fails(w, from("spiffe://x0tta6bl4.mesh/ns/local/sa/ops/extra"))
	fails(w, from("spiffe://x0tta6bl4.mesh/sa/ops/ns/local"))
}

test_caller_service_account if {
	w := {"callers": {"service_accounts": ["ops"]}}
	holds(w, {})
	holds(w, from("spiffe://x0tta6bl4.mesh/ns/prod/sa/ops"))
	fails(w, from(sa("healer")))
	fails(w, from("spiffe://x0tta6bl4.mesh/ns/ops/sa/healer"))
}

test_namespaces_and_service_accounts_are_ours_unless_trust_domains_say if {
	partner := "spiffe://partner.example/ns/local/sa/ops"
	fails({"callers": {"service_accounts": ["ops"]}}, from(partner))
	fails({"callers": {"namespaces": ["local"]}}, from(partner))
	w := {"callers": {"trust_domains": ["partner.example"], "service_accounts": ["ops"]}}
	holds(w, from(partner))
	fails(w, {}) # ours is no longer in scope
}

test_caller_kinds_are_anded if {
	w := {"callers": {"namespaces": ["local"], "service_accounts": ["ops"]}}
	holds(w, {})
	fails(w, from(sa("healer")))
	fails(w, from("spiffe://x0tta6bl4.mesh/ns/prod/sa/ops"))
	both := {"callers": {"exact": [sa("ops")], "glob": ["spiffe://x0tta6bl4.mesh/ns/prod/**"]}}
	fails(both, {})
}

# ── services, gRPC services, methods ──────────────────────────────────────────────────────────

test_services if {
	holds({"services": ["sync", "consensus"]}, {})
	holds({"services": ["con*"]}, {})
	fails({"services": ["sync"]}, {})
	fails({"services": ["consensu"]}, {})
}

test_grpc_services if {
	holds({"grpc_services": ["x0tta6bl4.consensus.v1.KVService"]}, {})
	holds({"grpc_services": ["x0tta6bl4.*.v1.KVService"]}, {})
	holds({"grpc_services": ["x0tta6bl4.consensus.**"]}, {})
	fails({"grpc_services": ["x0tta6bl4.*.KVService"]}, {})
	fails({"grpc_services": ["x0tta6bl4.consensus.v1.*"]}, {"grpc_service": "x0tta6bl4.consensus.v1.raft.RaftService"})
	fails({"grpc_services": ["x0tta6bl4.sync.**"]}, {})
}

test_methods_by_name if {
	holds({"methods": ["Put"]}, {})
	holds({"methods": ["Get*", "Put"]}, {})
	holds({"methods": ["{Put,Delete}"]}, {})
	holds({"methods": ["Put"]}, {"grpc_service": "x0tta6bl4.sync.v1.SyncService"})
	fails({"methods": ["Get*"]}, {})
	fails({"methods": ["Pu"]}, {})
	fails({"methods": ["put"]}, {})
}

test_methods_by_full_name if {
	holds({"methods": ["x0tta6bl4.consensus.v1.KVService/Put"]}, {})
	holds({"methods": ["x0tta6bl4.consensus.v1.KVService/*"]}, {})
	holds({"methods": ["**/Put"]}, {})
	holds({"methods": ["x0tta6bl4.*.v1.KVService/{Put,Delete}"]}, {})
	fails({"methods": ["*/Put"]}, {}) # `*` does not cross the dots of the service name
	fails({"methods": ["x0tta6bl4.sync.v1.SyncService/Put"]}, {})
	fails({"methods": ["x0tta6bl4.consensus.v1.KVService/Get"]}, {})
}

# ── metadata ──────────────────────────────────────────────────────────────────────────────────

tenant(t) := {"metadata": {"x0-tenant": t}}

test_metadata_equals if {
	w := {"metadata": {"x0-tenant": {"equals": "blue"}}}
	holds(w, tenant("blue"))
	fails(w, tenant("Blue"))
	fails(w, tenant("blue "))
	fails(w, {})
	holds({"metadata": {"x0-tenant": {"equals": ""}}}, tenant(""))
}

test_metadata_in if {
	w := {"metadata": {"x0-tenant": {"in": ["blue", "green"]}}}
	holds(w, tenant("green"))
	fails(w, tenant("red"))
	fails(w, {})
}

test_metadata_present if {
	holds({"metadata": {"x0-tenant": {"present": true}}}, tenant(""))
	fails({"metadata": {"x0-tenant": {"present": true}}}, {})
	holds({"metadata": {"x0-tenant": {"present": false}}}, {})
	fails({"metadata": {"x0-tenant": {"present": false}}}, tenant("blue"))
}

test_metadata_keys_are_anded if {
	w := {"metadata": {"x0-tenant": {"equals": "blue"}, "x0-request-id": {"present": true}}}
	holds(w, {"metadata": {"x0-tenant": "blue", "x0-request-id": "r1"}})
	fails(w, tenant("blue"))
	fails(w, {"metadata": {"x0-tenant": "red", "x0-request-id": "r1"}})
}

# ── time windows ──────────────────────────────────────────────────────────────────────────────

office := {"time_windows": [{
	"tz": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu", "fri"],
	"from": "09:00", "to": "17:30",
}]}

test_window_edges_in_winter if {
	# Friday 2026-11-27, CET = UTC+1
	fails(office, at("2026-11-27T07:59:59.999999Z"))
	holds(office, at("2026-11-27T08:00:00.000000Z")) # 09:00, from is inclusive
	holds(office, at("2026-11-27T16:29:59.999999Z"))
	fails(office, at("2026-11-27T16:30:00.000000Z")) # 17:30, to is exclusive
	fails(office, at("2026-11-28T10:00:00.000000Z")) # Saturday
}

test_window_follows_the_wall_clock_across_the_spring_dst_change if {
	# Friday 2026-03-27 is CET (UTC+1), Monday 2026-03-30 CEST (UTC+2).
	fails(office, at("2026-03-27T07:30:00.000000Z")) # 08:30 CET
	holds(office, at("2026-03-30T07:30:00.000000Z")) # 09:30 CEST
	holds(office, at("2026-03-27T16:15:00.000000Z")) # 17:15 CET
	fails(office, at("2026-03-30T16:15:00.000000Z")) # 18:15 CEST
	holds(office, at("2026-03-30T15:29:59.000000Z"))
	fails(office, at("2026-03-30T15:30:00.000000Z"))
}

test_window_in_the_skipped_hour_never_opens if {
	# Sunday 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00Z.
	gap := {"time_windows": [{"tz": "Europe/Berlin", "from": "02:00", "to": "03:00"}]}
	fails(gap, at("2026-03-29T00:59:59.999999Z")) # 01:59:59 CET
	fails(gap, at("2026-03-29T01:00:00.000000Z")) # 03:00 CEST
	fails(gap, at("2026-03-29T00:30:00.000000Z"))
	straddle := {"time_windows": [{"tz": "Europe/Berlin", "from": "02:30", "to": "03:30"}]}
	fails(straddle, at("2026-03-29T00:59:59.999999Z"))
	holds(straddle, at("2026-03-29T01:00:00.000000Z")) # opens at 03:00 CEST
	holds(straddle, at("2026-03-29T01:29:59.999999Z"))
	fails(straddle, at("2026-03-29T01:30:00.000000Z"))
}

test_window_in_the_repeated_hour_opens_twice if {
	# Sunday 2026-10-25: 03:00 CEST falls back to 02:00 CET at 01:00Z.
	twice := {"time_windows": [{"tz": "Europe/Berlin", "days": ["sun"], "from": "02:00", "to": "03:00"}]}
	fails(twice, at("2026-10-24T23:59:59.999999Z")) # 01:59:59 CEST
	holds(twice, at("2026-10-25T00:00:00.000000Z")) # 02:00 CEST
	holds(twice, at("2026-10-25T00:59:59.999999Z")) # 02:59:59 CEST
	holds(twice, at("2026-10-25T01:00:00.000000Z")) # 02:00 CET, again
	holds(twice, at("2026-10-25T01:59:59.999999Z"))
	fails(twice, at("2026-10-25T02:00:00.000000Z")) # 03:00 CET
}

test_window_days_are_the_days_of_its_time_zone if {
	# Sunday 2026-11-29 23:30Z is Monday 00:30 in Berlin.
	monday_berlin := {"time_windows": [{"tz": "Europe/Berlin", "days": ["mon"], "from": "00:00", "to": "01:00"}]}
	holds(monday_berlin, at("2026-11-29T23:30:00.000000Z"))
	monday_utc := {"time_windows": [{"tz": "UTC", "days": ["mon"], "from": "00:00", "to": "01:00"}]}
	fails(monday_utc, at("2026-11-29T23:30:00.000000Z"))
	holds(monday_utc, at("2026-11-30T00:30:00.000000Z"))
	fails(office, at("2026-11-29T23:30:00.000000Z")) # Monday, but 00:30
	fails(office, at("2026-11-28T23:30:00.000000Z")) # Sunday 00:30 in Berlin
}

test_window_defaults_to_utc_and_every_day if {
	w := {"time_windows": [{"from": "10:00", "to": "11:00"}]}
	holds(w, at("2026-11-29T10:00:00.000000Z")) # a Sunday
	fails(w, at("2026-11-29T11:00:00.000000Z"))
	holds(w, at("2026-11-27T10:00:00+00:00"))
	holds(w, at("2026-11-27T11:30:00+01:00"))
}

test_window_crossing_midnight_belongs_to_the_day_it_opens if {
	night := {"time_windows": [{"tz": "Europe/Berlin", "days": ["fri"], "from": "22:00", "to": "06:00"}]}
	fails(night, at("2026-11-27T20:59:59.000000Z")) # Fri 21:59:59
	holds(night, at("2026-11-27T21:00:00.000000Z")) # Fri 22:00
	holds(night, at("2026-11-27T23:30:00.000000Z")) # Sat 00:30
	holds(night, at("2026-11-28T04:59:59.999999Z")) # Sat 05:59:59
	fails(night, at("2026-11-28T05:00:00.000000Z")) # Sat 06:00
	fails(night, at("2026-11-27T04:00:00.000000Z")) # Fri 05:00: opened Thursday
	fails(night, at("2026-11-28T21:30:00.000000Z")) # Sat 22:30
}

test_window_crossing_midnight_wraps_the_week if {
	sunday_night := {"time_windows": [{"tz": "UTC", "days": ["sun"], "from": "22:00", "to": "06:00"}]}
	holds(sunday_night, at("2026-11-30T03:00:00.000000Z")) # Monday 03:00
	fails(sunday_night, at("2026-11-24T03:00:00.000000Z")) # Tuesday 03:00
	holds(sunday_night, at("2026-11-29T23:00:00.000000Z"))
	fails(sunday_night, at("2026-11-29T03:00:00.000000Z")) # Sunday 03:00: opened Saturday
}

test_window_crossing_midnight_on_the_dst_night if {
	# Saturday 2026-03-28 22:00 CET to Sunday 06:00 CEST: one hour shorter.
	night := {"time_windows": [{"tz": "Europe/Berlin", "days": ["sat"], "from": "22:00", "to": "06:00"}]}
	holds(night, at("2026-03-28T21:00:00.000000Z"))
	holds(night, at("2026-03-29T03:59:59.999999Z")) # 05:59:59 CEST
	fails(night, at("2026-03-29T04:00:00.000000Z")) # 06:00 CEST
}

test_whole_day_window if {
	w := {"time_windows": [{"tz": "Europe/Berlin", "days": ["fri"], "from": "00:00", "to": "24:00"}]}
	holds(w, at("2026-11-26T23:00:00.000000Z")) # Fri 00:00
	holds(w, at("2026-11-27T22:59:59.999999Z")) # Fri 23:59:59
	fails(w, at("2026-11-27T23:00:00.000000Z")) # Sat 00:00
}

test_any_window_is_enough if {
	w := {"time_windows": [
		{"tz": "UTC", "from": "01:00", "to": "02:00"},
		{"tz": "Asia/Tokyo", "from": "19:00", "to": "20:00"},
	]}
	holds(w, at("2026-11-27T10:30:00.000000Z")) # 19:30 in Tokyo
	fails(w, at("2026-11-27T12:00:00.000000Z"))
}

# ── source CIDRs ──────────────────────────────────────────────────────────────────────────────

src(address) := {"source_address": address}

test_cidr_ipv4_edges if {
	w := {"source_cidrs": ["10.0.0.0/8"]}
	holds(w, src("10.0.0.0:443"))
	holds(w, src("10.255.255.255:443"))
	fails(w, src("9.255.255.255:443"))
	fails(w, src("11.0.0.0:443"))
	holds(w, src("10.1.2.3")) # no port
	one_host := {"source_cidrs": ["192.0.2.1/32"]}
	holds(one_host, src("192.0.2.1:1"))
	fails(one_host, src("192.0.2.2:1"))
	fails(one_host, src("192.0.2.0:1"))
}

test_cidr_ipv6_edges if {
	w := {"source_cidrs": ["2001:db8::/32"]}
	holds(w, src("[2001:db8::]:443"))
	holds(w, src("[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:443"))
	fails(w, src("[2001:db9::]:443"))
	fails(w, src("[2001:db7:ffff:ffff:ffff:ffff:ffff:ffff]:443"))
	holds(w, src("2001:db8::1")) # bare, no port
	holds(w, src("[2001:DB8::1]:443"))
	loopback := {"source_cidrs": ["::1/128"]}
	holds(loopback, src("[::1]:5000"))
	holds(loopback, src("[::1]"))
	fails(loopback, src("[::2]:5000"))
	fails(loopback, src("127.0.0.1:5000"))
	holds({"source_cidrs": ["fe80::/10"]}, src("[fe80::1%eth0]:5000")) # zone dropped
}

test_cidr_grpc_peer_strings if {
	holds({"source_cidrs": ["127.0.0.0/8"]}, src("ipv4:127.0.0.1:60282"))
	holds({"source_cidrs": ["::1/128"]}, src("ipv6:%5B::1%5D:32950"))
	fails({"source_cidrs": ["0.0.0.0/0", "::/0"]}, src("unix:/run/x0tta6bl4/ops.sock"))
}

test_cidr_ipv4_mapped_ipv6 if {
	holds({"source_cidrs": ["10.0.0.0/8"]}, src("[::ffff:10.1.2.3]:443"))
	holds({"source_cidrs": ["10.0.0.0/8"]}, src("ipv6:%5B::ffff:10.1.2.3%5D:443"))
	fails({"source_cidrs": ["::/0"]}, src("10.1.2.3:443")) # ::/0 is IPv6 only
	fails({"source_cidrs": ["0.0.0.0/0"]}, src("[::1]:443"))
}

test_cidr_without_a_usable_address_matches_nothing if {
	w := {"source_cidrs": ["0.0.0.0/0", "::/0"]}
	fails(w, {})
	fails(w, src(""))
	fails(w, src("not-an-ip:80"))
	fails(w, src("10.1.2.3:http"))
	fails(w, src("010.1.2.3:80"))
	fails(w, src("[::1]x"))
	fails(w, src("10.1.2.3:80:90"))
}

test_conditions_are_anded if {
	w := {"services": ["consensus"], "methods": ["Put"], "callers": {"service_accounts": ["ops"]}, "source_cidrs": ["10.0.0.0/8"]}
	holds(w, src("10.0.0.1:1"))
	fails(w, src("192.0.2.1:1"))
	fails(w, object.union(src("10.0.0.1:1"), {"method": "Get"}))
}
