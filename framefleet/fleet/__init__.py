"""Where workers live: local processes on loopback (default) or Ray actors on a Ray cluster."""

from framefleet.fleet.local import LocalFleet

__all__ = ["LocalFleet"]
