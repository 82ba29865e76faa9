"""Reading a service's Prometheus /metrics text (``ServiceProcess.metrics()``)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample named exactly ``name`` (e.g. ``..._total``)."""
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def metric(text: str, name: str, default: float | None = None, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``; ``default`` if there is
    none (an AssertionError if there is no default)."""
    found = [v for have, v in samples(text, name) if labels.items() <= have.items()]
    if not found:
        assert default is not None, f"metric {name}{labels or ''} not exported"
        return default
    return sum(found)
