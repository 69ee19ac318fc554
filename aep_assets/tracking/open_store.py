"""Open an MLflow store in a process of its own: ``MLFLOW_TRACKING_URI=... python -m aep_assets.tracking.open_store``.

A database-backed store creates its tables and runs its schema migrations the first time it is opened: seconds
of pure Python. Run in the pipeline's own process, that work would hold the interpreter's lock against the
steps running beside it; here it takes a core of its own (and a new SQLite store, once migrated, is kept as the
template later new ones copy: ``sqlite_store.py``). The URI comes from the environment, because a
database URI may carry a password and a process's arguments are visible to every user of the machine.
"""

import os
from pathlib import Path

from .sqlite_store import TEMPLATE_ENV, keep_as_template


def main() -> None:
    if hasattr(os, "nice"):
        os.nice(10)  # background work: the run's own steps come first
    from mlflow import MlflowClient

    uri = os.environ["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)
    if os.environ.get(TEMPLATE_ENV):  # the first new SQLite store of this MLflow version: later ones copy it
        keep_as_template(uri, Path(os.environ[TEMPLATE_ENV]))


if __name__ == "__main__":
    main()
