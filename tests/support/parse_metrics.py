"""Parses Prometheus text exposition on stdin with the official Python client's parser and
prints every sample as one JSON object per line: {"family", "type", "name", "labels", "value"}.

A line the parser rejects makes it exit non-zero with the parser's message (the test fails).
Used by tests/metrics.rs; needs `pip install prometheus_client` (.ci/run installs it).
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
try:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            print(json.dumps({
                "family": family.name,
                "type": family.type,
                "name": sample.name,
                "labels": sample.labels,
                "value": sample.value,
            }))
except Exception as err:  # the parser raises ValueError (and others) on bad input
    print(f"parse_metrics.py: {type(err).__name__}: {err}", file=sys.stderr)
    sys.exit(1)
