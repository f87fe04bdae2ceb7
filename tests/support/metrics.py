"""Reading a process's /metrics the way Prometheus does: over HTTP, parsed with
prometheus_client's own parser of the text format."""

import requests
from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape: ``value(sample name, **labels)`` (0.0 if there is no such series)."""

    def __init__(self, text):
        self.samples = {}
        self.families = {}
        for family in text_string_to_metric_families(text):
            self.families[family.name] = family
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name, **labels):
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name, **labels):
        return (name, frozenset(labels.items())) in self.samples

    def series(self, name):
        """Every label set of ``name`` with its value."""
        return [(dict(labels), value) for (n, labels), value in self.samples.items() if n == name]


def scrape(url):
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return Scrape(response.text)
