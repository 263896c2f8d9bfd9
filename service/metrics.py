"""The service's own Prometheus metrics, on a registry per app (tests build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# The ``*_created`` series double every counter and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.results_accepted = Counter(
            "relay_results_accepted_total",
            "Submissions answered 202 (created) or 200 (same body again).",
            ["outcome"],
            registry=r,
        )
        self.request_errors = Counter(
            "relay_request_errors_total",
            "API requests answered with an error, by error code.",
            ["code"],
            registry=r,
        )
        self.results_deleted = Counter(
            "relay_results_deleted_total", "Results removed through the API.", registry=r
        )
        self.results_purged = Counter(
            "relay_results_purged_total", "Results removed by retention.", registry=r
        )
        self.deliveries = Counter(
            "relay_deliveries_total",
            "Results settled by the worker, by outcome (delivered, orphaned) and route.",
            ["outcome", "route"],
            registry=r,
        )
        self.attempts = Counter(
            "relay_delivery_attempts_total",
            "Requests to Discord, by status class (2xx, 4xx, 429, 5xx, error).",
            ["status_class"],
            registry=r,
        )
        self.rate_limited = Counter(
            "relay_rate_limited_total",
            "429 answers from Discord, by scope (user, shared, global, cloudflare).",
            ["scope"],
            registry=r,
        )
        self.ambiguous = Counter(
            "relay_ambiguous_attempts_total",
            "Requests sent without an answer: the message may have been posted.",
            registry=r,
        )
        self.reconciled = Counter(
            "relay_reconciled_total",
            "Webhook parts sent without an answer that the bot found posted in the channel "
            "(recorded delivered, not sent again).",
            registry=r,
        )
        self.pending = Gauge("relay_results_pending", "Results waiting for delivery.", registry=r)
        self.oldest_pending_age = Gauge(
            "relay_oldest_pending_age_seconds",
            "Age of the oldest pending result (0 when none).",
            registry=r,
        )
        self.latency = Histogram(
            "relay_accept_to_delivered_seconds",
            "Time from accept to the last part delivered.",
            buckets=(0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=r,
        )
        self.session_closed = Counter(
            "discord_session_closed_total",
            "Interactions that could not be used, by stage (expired before sending, "
            "refused by Discord, run: the token ran out under a live run).",
            ["stage"],
            registry=r,
        )
        self.runs = Counter(
            "relay_runs_total",
            "Runs that reached a status (running when started, then handed_off, finished, "
            "failed, abandoned).",
            ["status"],
            registry=r,
        )
        self.handoffs = Counter(
            "relay_run_handoffs_total",
            "Runs handed over from the interaction to the channel.",
            registry=r,
        )
        self.progress_edits = Counter(
            "relay_progress_edits_total",
            "Progress messages posted or edited, by route (interaction: @original; webhook).",
            ["route"],
            registry=r,
        )
        self.progress_coalesced = Counter(
            "relay_progress_coalesced_total",
            "Progress updates never shown: a later one replaced them before an edit was allowed.",
            registry=r,
        )
        self.runs_abandoned = Counter(
            "relay_runs_abandoned_total",
            "Runs abandoned: no progress and no result for their timeout.",
            registry=r,
        )
        self.persisted = Counter(
            "workflow_results_persisted_total",
            "Results kept as orphaned for retrieval, by reason.",
            ["reason"],
            registry=r,
        )
