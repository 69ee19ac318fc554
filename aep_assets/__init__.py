"""aep_assets: Adobe Experience Platform's AI/ML feature pipeline as Dagster assets, one YAML file per model."""


def __getattr__(name: str):
    # ``type: aep_assets.PropensityModel`` in a defs.yaml; imported lazily so that the plain packages (the
    # scoring jobs that Pipes hands to a subprocess or Spark executors, the AEP client) load without Dagster.
    if name == "PropensityModel":
        from .components import PropensityModel

        return PropensityModel
    raise AttributeError(f"module 'aep_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "PropensityModel"])
