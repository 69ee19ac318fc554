"""Dagster components of aep_assets."""

from .propensity_model import PropensityModel

__all__ = ["PropensityModel"]
