"""Synthetic AEP profiles and experience events with known ground truth. No I/O, no Dagster.

Follows Adobe's CMLE notebooks (reference/cmle.md §1.5): the same 13 event types, rates,
dependencies and propensity deltas, with the dependent-event cascade fixed to append children.
"""

from .behaviour import Simulation, SimulationConfig, simulate
from .taxonomy import EVENT_TYPES

__all__ = ["EVENT_TYPES", "Simulation", "SimulationConfig", "simulate"]
