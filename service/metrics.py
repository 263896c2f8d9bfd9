"""The service's own Prometheus metrics, on a registry per app (tests build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics

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
