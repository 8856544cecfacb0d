"""The gateway's Prometheus metrics (served at /metrics with an admin key)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)


class GatewayMetrics:
    """The gateway's Prometheus metrics, in a registry of its own (several gateways may live in one process)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "framefleet_gateway_requests", "Requests by outcome", ["source", "target", "outcome"], registry=r
        )
        self.rejections = Counter("framefleet_gateway_rejections", "Rejections by reason", ["reason"], registry=r)
        self.choices = Counter(
            "framefleet_gateway_region_choices", "How the target region was chosen (balance.pick_region)", ["rule"],
            registry=r,
        )  # fmt: skip
        self.second_tries = Counter("framefleet_gateway_second_tries", "Immediate in-region second tries", registry=r)
        self.spills = Counter(
            "framefleet_gateway_spills", "Requests sent out of their source region because it was full (spill policy)",
            ["source", "target", "rule"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "framefleet_gateway_latency_seconds", "Latency of served requests", ["source"], buckets=LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.cross = Counter("framefleet_gateway_served_cross_region", "Served outside the source region", registry=r)
        self.local = Counter("framefleet_gateway_served_local", "Served in the source region", registry=r)
        self.cross_share = Gauge(
            "framefleet_gateway_cross_region_share", "Share of served requests that crossed regions", registry=r
        )
        self.table_version = Gauge("framefleet_gateway_routing_table_version", "Routing table version", registry=r)
        self.fraction = Gauge("framefleet_gateway_route_fraction", "Routing fraction", ["source", "target"], registry=r)
        self.n_cross = self.n_local = 0

    def served(self, cross: bool) -> None:
        (self.cross if cross else self.local).inc()
        if cross:
            self.n_cross += 1
        else:
            self.n_local += 1
        self.cross_share.set(self.n_cross / (self.n_cross + self.n_local))
