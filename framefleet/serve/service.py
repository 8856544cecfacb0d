"""The service-time distribution of a synthetic GPU task. Pure (stdlib only): the simulator and the fleet
config use it without importing the worker's web stack."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceTime:
    """Service-time distribution of the synthetic task, in seconds."""

    mean_s: float = 0.2
    spread_s: float = 0.05  # uniform: ± spread; lognormal: standard deviation
    kind: str = "uniform"  # "uniform" | "exponential" | "lognormal" | "constant"

    def sample(self, rng: random.Random) -> float:
        if self.kind == "constant":
            return self.mean_s
        if self.kind == "uniform":
            return max(0.0, rng.uniform(self.mean_s - self.spread_s, self.mean_s + self.spread_s))
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.mean_s)
        if self.kind == "lognormal":
            sigma2 = math.log(1 + (self.spread_s / self.mean_s) ** 2)
            return rng.lognormvariate(math.log(self.mean_s) - sigma2 / 2, math.sqrt(sigma2))
        raise ValueError(f"unknown service-time distribution {self.kind!r}")
