"""Probes: classifiers trained on frozen features. Importing this module registers them."""

from ultrabench_eval.probes.base import Probe, ProbeResult
from ultrabench_eval.probes.linear import LinearProbe
from ultrabench_eval.registry import PROBES

__all__ = ["LinearProbe", "Probe", "ProbeResult"]

PROBES.register("linear", LinearProbe)
