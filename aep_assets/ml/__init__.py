"""Training, evaluation and scoring of the propensity model. No Dagster, no AEP."""
