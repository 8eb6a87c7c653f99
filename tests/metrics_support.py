"""Reading a running registry's Prometheus metrics (`serve --metrics-port`)."""

from __future__ import annotations

import re
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from support import Registry

METRICS_LINE = re.compile(r"Prometheus metrics on http://127\.0\.0\.1:(\d+)/metrics$")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def metrics_ports(registry: Registry) -> list[int]:
    """The metrics ports the registry (or each of its replicas) announced."""
    found = []
    for line in registry.output:
        match = METRICS_LINE.search(line.rstrip("\n"))
        if match:
            found.append(int(match.group(1)))
    return found


def scrape(port: int) -> Samples:
    """Every sample of one scrape: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))
