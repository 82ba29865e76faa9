# One matcher per condition type of a rule's "when" (semantics: the header of rules.rego).
# A condition not given holds; a given one holds only when the call satisfies it. This is the
# per-call hot path: every rule is tried for every call, so keep it lean (rules.rego header).
package x0tta6bl4.policy.rules

import rego.v1

home_trust_domain := "x0tta6bl4.mesh"

has_key(obj, key) if _ = obj[key]

default metadata := {}

metadata := input.metadata

now_ns := time.parse_rfc3339_ns(input.time)

# What object.get gives for a rarer condition that is not given: a set, which JSON data cannot
# hold (so no value a rule could contain reads as "not given").
absent := {"absent"}

# The hot path: every rule is tried on every call. Cheapest and most selective first, and the
# first three inline, a missing one read as the glob "**" (user functions cost several µs a
# call here). A condition this engine does not know (a typo, or a newer policy service) makes
# the rule match nothing instead of being ignored; checked last, only for rules that match.
rule_matches(rule) if {
	when := rule.when
	some service in object.get(when, "services", ["**"])
	glob.match(service, ["."], input.service)
	some grpc_service in object.get(when, "grpc_services", ["**"])
	glob.match(grpc_service, ["."], input.grpc_service)
	some method in object.get(when, "methods", ["**"])
	method_matches(method)
	callers_hold(object.get(when, "callers", {"glob": ["**"]}))
	metadata_holds(object.get(when, "metadata", absent))
	source_holds(object.get(when, "source_cidrs", absent))
	time_windows_hold(object.get(when, "time_windows", absent))
	count(object.keys(when) - condition_keys) == 0
}

# ── callers ───────────────────────────────────────────────────────────────────────────────────

# The caller's trust domain, for any spiffe://<td>[/<path>].
caller_trust_domain := td if {
	startswith(input.caller, "spiffe://")
	td := split(substring(input.caller, count("spiffe://"), -1), "/")[0]
	td != ""
}

# Namespace and service account of spiffe://<td>/ns/<ns>/sa/<sa>, exactly that shape.
caller_workload := {"namespace": parts[2], "service_account": parts[4]} if {
	parts := split(substring(input.caller, count("spiffe://"), -1), "/")
	caller_trust_domain
	count(parts) == 5
	parts[1] == "ns"
	parts[3] == "sa"
	parts[2] != ""
	parts[4] != ""
}

callers_hold(callers) if {
	is_object(callers)
	count(callers) > 0
	every kind, list in callers {
		caller_kind_holds(kind, list, callers)
	}
}

caller_kind_holds("exact", list, _) if input.caller in list

caller_kind_holds("glob", list, _) if {
	some pattern in list
	glob.match(pattern, ["/"], input.caller)
}

caller_kind_holds("trust_domains", list, _) if caller_trust_domain in list

caller_kind_holds("namespaces", list, callers) if {
	caller_in_scope(callers)
	caller_workload.namespace in list
}

caller_kind_holds("service_accounts", list, callers) if {
	caller_in_scope(callers)
	caller_workload.service_account in list
}

caller_kind_holds("same_namespace", true, callers) if {
	caller_in_scope(callers)
	caller_workload.namespace == input.namespace
}

# namespaces/service_accounts are names within the rule's trust domains (default: ours).
caller_in_scope(callers) if caller_trust_domain in callers.trust_domains

caller_in_scope(callers) if {
	not has_key(callers, "trust_domains")
	caller_trust_domain == home_trust_domain
}

# ── services, gRPC services, methods ──────────────────────────────────────────────────────────

method_matches(pattern) if {
	contains(pattern, "/")
	glob.match(pattern, [".", "/"], concat("/", [input.grpc_service, input.method]))
}

method_matches(pattern) if {
	not contains(pattern, "/")
	glob.match(pattern, ["."], input.method)
}

# ── metadata ──────────────────────────────────────────────────────────────────────────────────

metadata_holds({"absent"}) := true

metadata_holds(tests) if {
	is_object(tests)
	count(tests) > 0
	every key, test in tests {
		metadata_test_holds(key, test)
	}
}

metadata_test_holds(key, test) if metadata[key] == test.equals

metadata_test_holds(key, test) if metadata[key] in test.in

metadata_test_holds(key, test) if {
	test.present == true
	has_key(metadata, key)
}

metadata_test_holds(key, test) if {
	test.present == false
	not has_key(metadata, key)
}

# ── time windows ──────────────────────────────────────────────────────────────────────────────

time_windows_hold({"absent"}) := true

time_windows_hold(windows) if {
	some window in windows
	window_holds(window)
}

weekdays := ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

weekday_index := {"Monday": 0, "Tuesday": 1, "Wednesday": 2, "Thursday": 3, "Friday": 4, "Saturday": 5, "Sunday": 6}

# "HH:MM" -> seconds since midnight ("24:00" -> 86400).
clock_seconds(hhmm) := ((to_number(substring(hhmm, 0, 2)) * 60) + to_number(substring(hhmm, 3, 2))) * 60

window_tz(window) := object.get(window, "tz", "UTC")

window_days(window) := object.get(window, "days", weekdays)

window_holds(window) if {
	count(object.keys(window) - window_keys) == 0
	tz := window_tz(window)
	[h, m, s] := time.clock([now_ns, tz])
	now := (((h * 60) + m) * 60) + s
	today := weekday_index[time.weekday([now_ns, tz])]
	within(window, now, today)
}

# A window within one day.
within(window, now, today) if {
	from := clock_seconds(window.from)
	to := clock_seconds(window.to)
	from < to
	from <= now
	now < to
	weekdays[today] in window_days(window)
}

# A window crossing midnight, the part before it: opened today.
within(window, now, today) if {
	from := clock_seconds(window.from)
	from > clock_seconds(window.to)
	from <= now
	weekdays[today] in window_days(window)
}

# ... and the part after it: opened yesterday.
within(window, now, today) if {
	to := clock_seconds(window.to)
	clock_seconds(window.from) > to
	now < to
	weekdays[(today + 6) % 7] in window_days(window)
}

# ── source address ────────────────────────────────────────────────────────────────────────────

source_holds({"absent"}) := true

source_holds(cidrs) if {
	ip := source_ip
	some cidr in cidrs
	net.cidr_contains(cidr, ip)
}

# The address without gRPC's "ipv4:"/"ipv6:" scheme (whose IPv6 form is percent-encoded).
# Anything else that is no IP ("unix:/run/x.sock") leaves source_ip undefined.
source_hostport := substring(addr, 5, -1) if {
	addr := input.source_address
	is_string(addr)
	startswith(addr, "ipv4:")
} else := urlquery.decode(substring(addr, 5, -1)) if {
	addr := input.source_address
	is_string(addr)
	startswith(addr, "ipv6:")
} else := addr if {
	addr := input.source_address
	is_string(addr)
}

# "[v6]:port" or "[v6]"
source_host := substring(hp, 1, end - 1) if {
	hp := source_hostport
	startswith(hp, "[")
	end := indexof(hp, "]")
	end > 1
	regex.match(`^(:[0-9]+)?$`, substring(hp, end + 1, -1))
} else := host if {
	# "v4:port"
	hp := source_hostport
	not startswith(hp, "[")
	[host, port] := split(hp, ":")
	regex.match(`^[0-9]+$`, port)
} else := hp if {
	# a bare IPv4 or IPv6 address
	hp := source_hostport
	not startswith(hp, "[")
	count(split(hp, ":")) != 2
}

# The source IP, zone ("%eth0") dropped, defined only when it is an IP address.
source_ip := ip if {
	ip := split(source_host, "%")[0]
	is_boolean(net.cidr_contains("::/0", ip))
}
