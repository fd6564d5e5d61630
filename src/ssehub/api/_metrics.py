"""GET /metrics: the hub's counters in Prometheus' text format, the same from every shell."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from ssehub.hub import Hub

__all__ = ["CONTENT_TYPE", "Traffic", "metrics_text"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(slots=True)
class Traffic:
    """What a shell counts of its connections; the API reports it."""

    connections: int = 0
    open_streams: int = 0
    rejected: dict[int, int] = field(default_factory=dict)

    def count_rejection(self, status: int) -> None:
        self.rejected[status] = self.rejected.get(status, 0) + 1


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def metrics_text(hub: Hub, traffic: Traffic, largest_topics: int = 0) -> str:
    """The metrics; O(1) in the number of topics, unless per-topic series are asked for the
    `largest_topics` topics with the most history (`--metrics-topics`), which visits them all.
    """
    stats = hub.stats
    topics, retained = await hub.store.history_totals()
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, int]]) -> None:
        lines.append(f"# HELP ssehub_{name} {help_text}")
        lines.append(f"# TYPE ssehub_{name} {kind}")
        lines.extend(f"ssehub_{name}{labels} {value}" for labels, value in samples)

    metric("open_streams", "gauge", "Event streams open now.", [("", traffic.open_streams)])
    metric("connections", "gauge", "HTTP connections open now.", [("", traffic.connections)])
    metric("events_published_total", "counter", "Events published.", [("", stats.published)])
    metric("events_delivered_total", "counter", "Event deliveries.", [("", stats.delivered)])
    metric("replays_total", "counter", "Resumes served from history.", [("", stats.replays)])
    metric("resets_total", "counter", "Resumes answered with a reset.", [("", stats.resets)])
    metric(
        "slow_consumers_dropped_total",
        "counter",
        "Subscribers closed for falling behind.",
        [("", stats.slow_dropped)],
    )
    metric(
        "requests_rejected_total",
        "counter",
        "Requests answered with an error, by status.",
        [(f'{{status="{status}"}}', count) for status, count in sorted(traffic.rejected.items())],
    )
    metric("topics", "gauge", "Topics with retained history.", [("", topics)])
    metric(
        "history_events",
        "gauge",
        "Events retained, counted once per topic that retains them.",
        [("", retained)],
    )
    if largest_topics:
        sizes = await hub.store.history_sizes()
        largest = heapq.nlargest(largest_topics, sizes.items(), key=lambda item: item[1])
        metric(
            "topic_history_events",
            "gauge",
            f"Events retained by each of the {largest_topics} topics that retain the most.",
            [(f'{{topic="{_label(topic)}"}}', size) for topic, size in largest],
        )
    return "\n".join(lines) + "\n"
