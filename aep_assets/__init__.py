"""aep_assets: Adobe Experience Platform's AI/ML feature pipeline as Dagster assets."""
