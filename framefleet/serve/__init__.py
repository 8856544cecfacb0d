"""Serving. For now the pure policy that the live fleet and the simulator share: `retry` and `traffic`."""

from framefleet.serve.retry import Decision, Jitter, Outcome, RetryBudget, RetryPolicy, decide
from framefleet.serve.traffic import RegionReport, RoutingTable, TrafficConfig, TrafficManager, plan_routes

__all__ = [
    "Decision",
    "Jitter",
    "Outcome",
    "RegionReport",
    "RetryBudget",
    "RetryPolicy",
    "RoutingTable",
    "TrafficConfig",
    "TrafficManager",
    "decide",
    "plan_routes",
]
