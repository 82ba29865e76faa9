"""The policy service's Prometheus metrics, defined once for its modules.

Sidecar status (:mod:`.sidecar_status`):

- ``x0tta6bl4_policy_sidecar_revision{instance,bundle}`` — the number of the bundle revision a
  sidecar reports active (our revisions read ``"<number>-<12 hex>"``; another form sets
  nothing);
- ``x0tta6bl4_policy_sidecar_load_errors_total{instance,bundle}`` — bundle download or
  activation errors a sidecar reported, each failed attempt counted once however often its
  status repeats it;
- ``x0tta6bl4_policy_sidecar_last_report_timestamp_seconds{instance}`` — when a sidecar last
  reported (alert on ``time() - ... > N``).

Decision logs (:mod:`.decision_log`):

- ``x0tta6bl4_policy_decisions_total{result,effect}`` — decisions received (``result``: allow or
  deny; ``effect`` the decision's effect, ``BOOLEAN`` for a bare-boolean result);
- ``x0tta6bl4_policy_rule_decisions_total{rule}`` — decisions each rule id (``decided_by``)
  took part in; at most :data:`MAX_RULE_LABELS` distinct ids, later ones count as ``_other``;
- ``x0tta6bl4_policy_decisions_dropped_total{reason}`` — decision events not kept:
  ``retention_count`` / ``retention_age`` (trimmed from the log), ``malformed`` (an event of an
  upload that is no decision event), ``redis_unavailable`` (in an upload refused with 503
  because Redis failed — OPA keeps and re-sends those, so they are not lost unless the
  sidecar's own buffer overflows, which its ``decision_logs_dropped_*`` counters show);
- ``x0tta6bl4_policy_decision_uploads_total{code}`` — decision-log uploads by HTTP answer.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

MAX_RULE_LABELS = 500
OTHER_RULE = "_other"
DROP_REASONS = ("retention_count", "retention_age", "redis_unavailable", "malformed")

SIDECAR_REVISION = Gauge(
    "x0tta6bl4_policy_sidecar_revision",
    "Number of the bundle revision a sidecar reports active.",
    ["instance", "bundle"],
)
SIDECAR_LOAD_ERRORS = Counter(
    "x0tta6bl4_policy_sidecar_load_errors",
    "Bundle download/activation errors reported by sidecars (each failed attempt once).",
    ["instance", "bundle"],
)
SIDECAR_LAST_REPORT = Gauge(
    "x0tta6bl4_policy_sidecar_last_report_timestamp_seconds",
    "Unix time of a sidecar's last status report.",
    ["instance"],
)

DECISIONS = Counter(
    "x0tta6bl4_policy_decisions",
    "Authorisation decisions received in sidecar decision logs, by result and effect.",
    ["result", "effect"],
)
RULE_DECISIONS = Counter(
    "x0tta6bl4_policy_rule_decisions",
    "Decisions each rule id decided (decided_by); ids past the label cap count as _other.",
    ["rule"],
)
DECISIONS_DROPPED = Counter(
    "x0tta6bl4_policy_decisions_dropped",
    "Decision-log events not kept, by reason.",
    ["reason"],
)
DECISION_UPLOADS = Counter(
    "x0tta6bl4_policy_decision_uploads",
    "Decision-log uploads received, by HTTP status answered.",
    ["code"],
)
for _reason in DROP_REASONS:  # export every reason from the start, at 0
    DECISIONS_DROPPED.labels(_reason)


class RuleLabels:
    """Bounds the ``rule`` label: the first ``limit`` distinct ids keep their name."""

    def __init__(self, limit: int = MAX_RULE_LABELS) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def label(self, rule: str) -> str:
        if rule in self._seen:
            return rule
        if len(self._seen) >= self._limit:
            return OTHER_RULE
        self._seen.add(rule)
        return rule


RULE_LABELS = RuleLabels()
