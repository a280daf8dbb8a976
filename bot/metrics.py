"""Prometheus metrics of the moderator, free of Telegram and of the web app that serves them (bot/web/ops.py).

The metric objects are created unregistered and added to each scrape registry (`scrape_registry`), so several
apps in one process (tests) never collide in prometheus_client's global registry. The use cases record events
here, one place per event: verdicts where they are stored (`bot.moderation.classification`), labels where they
are recorded (`bot.moderation.labelling`). Names follow Prometheus' rules: base units, `_total` counters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

VERDICTS = Counter(
    "moderator_verdicts_total",
    "Verdicts stored, by task and predicted label.",
    ["task", "label"],
    registry=None,
)
VERDICT_LATENCY = Histogram(
    "moderator_verdict_latency_seconds",
    "Seconds from a review reaching the moderator to its verdicts (every task) being stored.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=None,
)
UPDATES = Counter(
    "moderator_telegram_updates_total",
    "Telegram updates stored new in the inbox, by kind (message, edited_message, callback_query, ...).",
    ["kind"],
    registry=None,
)
TELEGRAM_ERRORS = Counter(
    "moderator_telegram_errors_total",
    "Telegram calls that failed (each failed attempt, retried or not), by method and error class.",
    ["method", "error"],
    registry=None,
)
LABELS = Counter(
    "moderator_labels_total",
    "People's labels recorded or changed, by task and kind (confirmation or correction) and where they came from.",
    ["task", "kind", "source"],
    registry=None,
)


def record_verdict(*, task: str, label: str) -> None:
    VERDICTS.labels(task=task, label=label).inc()


def record_updates(payloads: Iterable[Mapping[str, object]]) -> None:
    """Count Telegram updates by kind: the one field of each beside `update_id`."""
    for payload in payloads:
        kind = next((key for key in payload if key != "update_id"), "unknown")
        UPDATES.labels(kind=kind).inc()


def record_telegram_error(*, method: str, error: str) -> None:
    TELEGRAM_ERRORS.labels(method=method, error=error).inc()


def record_label(*, task: str, confirmation: bool, source: str) -> None:
    LABELS.labels(task=task, kind="confirmation" if confirmation else "correction", source=source).inc()


class ScrapeSnapshot(Collector):
    """What is read from the database and the served models at each scrape: set, then collected right away."""

    def __init__(self) -> None:
        self.queue_depth: Mapping[str, int] = {}
        self.served: Mapping[str, int | None] = {}  # task -> version id served (None: no model)
        self.runs: Mapping[tuple[str, str], int] = {}  # (task, status) -> training runs, from the database

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily(
            "moderator_review_queue_items", "Items waiting in the review queue, by task.", labels=["task"]
        )
        for task, count in sorted(self.queue_depth.items()):
            depth.add_metric([task], count)
        yield depth
        # From the database, so runs executed by any process (the bot, `moderator retrain`) count; runs are never
        # deleted, so each count only grows. Status `succeeded` is a promotion, `rejected` the gate's refusal.
        runs = CounterMetricFamily(
            "moderator_training_runs",
            "Training runs by task and status (from the database).",
            labels=["task", "status"],
        )
        for (task, status), count in sorted(self.runs.items()):
            runs.add_metric([task, status], count)
        yield runs
        info = InfoMetricFamily("moderator_model", "The model version each task serves.", labels=["task"])
        for task, version_id in sorted(self.served.items()):
            info.add_metric([task], {"version": "none" if version_id is None else str(version_id)})
        yield info


def scrape_registry(snapshot: ScrapeSnapshot) -> CollectorRegistry:
    """A registry with the process's metrics, the moderator's counters and `snapshot`."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    for collector in (VERDICTS, VERDICT_LATENCY, LABELS, UPDATES, TELEGRAM_ERRORS, snapshot):
        registry.register(collector)
    return registry
