"""Reading a Prometheus scrape in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, by name and sorted labels."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(scrape: Samples, name: str, **labels: str) -> float:
    """The sample *name* with exactly *labels* (0 when absent)."""
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


def label_values(scrape: Samples, name: str, label: str) -> set[str]:
    """The values *label* takes in the samples of *name*."""
    return {dict(key)[label] for (n, key) in scrape if n == name and label in dict(key)}
