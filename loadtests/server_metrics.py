"""The service's own view of a load test: its Prometheus `/metrics` read before and after,
subtracted, and latency quantiles read off the histogram's buckets.

With several workers each process keeps its own metrics and a scrape reaches one of them;
the gate serves its candidate with one worker unless told otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


def scrape(url: str) -> Samples:
    return parse(httpx.get(url.rstrip("/") + "/metrics", timeout=10).text)


def parse(text: str) -> Samples:
    """Prometheus text exposition as {(sample name, sorted labels): value}."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def delta(before: Samples, after: Samples) -> Samples:
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts, upper bounds in seconds (the last is +Inf)."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]

    @property
    def total(self) -> float:
        return self.counts[-1] if self.counts else 0.0

    def quantile(self, q: float) -> float:
        """Seconds; linear within a bucket, as Prometheus' histogram_quantile. Beyond the last
        finite bound it answers that bound (a lower bound of the truth)."""
        if self.total == 0:
            return float("nan")
        rank = q * self.total
        lower_bound, lower_count = 0.0, 0.0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            if count >= rank:
                if bound == float("inf"):
                    return lower_bound
                width = count - lower_count
                share = (rank - lower_count) / width if width else 1.0
                return lower_bound + (bound - lower_bound) * share
            lower_bound, lower_count = bound, count
        return lower_bound

    def cdf(self) -> list[tuple[float, float]]:
        """(bound in seconds, share at or below), finite bounds only: for plotting."""
        return [
            (b, c / self.total)
            for b, c in zip(self.bounds, self.counts, strict=True)
            if b != float("inf") and self.total
        ]


def histogram(samples: Samples, name: str, **labels: str) -> Histogram:
    """One histogram's buckets; several series matching `labels` are added up."""
    buckets: dict[float, float] = defaultdict(float)
    for (sample, sample_labels), value in samples.items():
        if sample != f"{name}_bucket":
            continue
        found = dict(sample_labels)
        if all(found.get(k) == v for k, v in labels.items()):
            buckets[float(found["le"])] += value
    bounds = tuple(sorted(buckets))
    return Histogram(bounds, tuple(buckets[b] for b in bounds))


def counter(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the series of counter `name` whose labels include `labels`."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == f"{name}_total"
        and all(dict(sample_labels).get(k) == v for k, v in labels.items())
    )


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {
        dict(labels)[label]
        for (sample, labels), value in samples.items()
        if sample == name and label in dict(labels) and value
    }


def add(histograms: list[Histogram]) -> Histogram:
    """Histograms with the same buckets, added up (several endpoints as one)."""
    present = [h for h in histograms if h.bounds]
    if not present:
        return Histogram((), ())
    bounds = present[0].bounds
    if any(h.bounds != bounds for h in present):
        raise ValueError("histograms with different buckets cannot be added")
    return Histogram(bounds, tuple(sum(c) for c in zip(*(h.counts for h in present), strict=True)))


def loaded_models(samples: Samples, role: str) -> dict[str, str]:
    """{version: sha256} of the models the service reports loaded in `role`."""
    return {
        dict(labels)["version"]: dict(labels)["sha256"]
        for (name, labels), value in samples.items()
        if name == "skewless_model_info" and dict(labels).get("role") == role and value
    }
