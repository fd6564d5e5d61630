"""/metrics against Prometheus' naming rules (https://prometheus.io/docs/practices/naming/),
read from a real hub: the rules README's Operations section promises."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
from support.hub_process import HubProcess

NAME = re.compile(r"ssehub_[a-z][a-z0-9_]*")
SAMPLE = re.compile(r'(ssehub_[a-z0-9_]+)(\{[a-z_]+="(?:[^"\\]|\\.)*"\})? (\d+)')


def test_every_family_is_named_typed_and_documented(start_hub: Callable[..., HubProcess]) -> None:
    url = start_hub("--metrics-topics", "2").url
    assert httpx.post(f"{url}/publish", data={"topic": "t", "data": "x"}).status_code == 200
    assert httpx.get(f"{url}/nope").status_code == 404  # a rejected request: a labelled sample
    answer = httpx.get(f"{url}/metrics")
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    helps: set[str] = set()
    types: dict[str, str] = {}
    sampled: set[str] = set()
    for line in answer.text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
        else:
            match = SAMPLE.fullmatch(line)
            assert match, f"not a sample: {line!r}"
            sampled.add(match.group(1))
    assert set(types) == helps
    assert sampled <= set(types)  # no sample without its family
    assert {"ssehub_requests_rejected_total", "ssehub_topic_history_events"} <= sampled
    for name, kind in types.items():
        assert NAME.fullmatch(name), name
        assert kind in ("counter", "gauge"), name
        # Counters, and only counters, end in _total; no gauge counts a total.
        assert name.endswith("_total") == (kind == "counter"), name
        # Units are base units (seconds, bytes), and the suffixes of histograms and summaries
        # are theirs alone.
        not_base = r"_(ms|milliseconds|minutes|hours|kb|mb|kilobytes|megabytes)(_total)?$"
        assert not re.search(not_base, name), name
        assert not re.search(r"_(count|sum|bucket)$", name), name
