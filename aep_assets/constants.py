"""Names shared by assets, checks, jobs and tests."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("AEP_ASSETS_DATA_DIR", PROJECT_ROOT / "data")).resolve()

# groups
PLATFORM, SYNTHETIC, FEATURES, MODEL, SCORING, ACTIVATION = (
    "platform", "synthetic", "features", "model", "scoring", "activation")

# storage keys
SIMULATION_PREFIX = "simulation"
SIMULATION_TRUTH_KEY = "simulation/truth.parquet"
TRAINING_EXPORT_POINTER = "exports/training_export.json"
SCORING_EXPORT_POINTER = "exports/scoring_features.json"
EDA_EXPORT_POINTER = "exports/eda_report.json"
MODEL_POINTER = "models/current.json"
SCORES_POINTER = "scores/current.json"  # the scores AEP holds
SCORES_CANDIDATE = "scores/candidate.json"  # scored, not yet written back

# AEP names
FEATURE_TABLE_PREFIX = "aep_assets_feature_table"
SCORING_TABLE_PREFIX = "aep_assets_scoring_features"
EDA_TABLE_PREFIX = "aep_assets_eda_report"
TRAINING_EXPORT_FLOW = "aep_assets training export"
SCORING_EXPORT_FLOW = "aep_assets scoring export"
EDA_EXPORT_FLOW = "aep_assets eda export"
AUDIENCE_FLOW = "aep_assets audience activation"
AUDIENCE_NAMES = {"high": "aep_assets high propensity", "medium": "aep_assets medium propensity",
                  "low": "aep_assets low propensity"}
