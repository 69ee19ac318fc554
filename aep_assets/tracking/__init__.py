"""Model tracking and registry (MLflow)."""
