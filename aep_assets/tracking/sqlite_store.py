"""A new SQLite MLflow store without its migrations: a copy of an empty store of the same MLflow version.

Opening a new database store runs every one of MLflow's schema migrations: seconds of a core, on every new
deployment (and in every test that starts from nothing). The first store a machine creates for an MLflow
version is kept, empty, under the user's cache (``AEP_ASSETS_CACHE_DIR``, else ``$XDG_CACHE_HOME/aep_assets``,
else ``~/.cache/aep_assets``); a later new store starts as a copy of it. Only SQLite files are copied: a
database server's schema is the server's.
"""

import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

DATABASE_STORES = ("sqlite", "postgresql", "mysql", "mssql")  # MLflow's SQLAlchemy stores (a URI may add +driver)
TEMPLATE_ENV = "AEP_ASSETS_MLFLOW_TEMPLATE"  # where the child that migrates a new store keeps it as the template


def sqlite_path(tracking_uri: str) -> Path | None:
    """The file of a ``sqlite:///`` store; None for any other store (or SQLite in memory)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def may_need_migrating(tracking_uri: str) -> bool:
    """Whether opening the store may create its tables or migrate them: any database store, except a SQLite file
    that already has its tables (an existing one at an older schema is MLflow's to report, with its fix)."""
    if tracking_uri.split(":", 1)[0].split("+", 1)[0] not in DATABASE_STORES:
        return False
    path = sqlite_path(tracking_uri)
    if path is None or not path.is_file():
        return True
    return not _has_tables(path)


def template_path() -> Path | None:
    """The empty store kept for this MLflow version; None when the installed MLflow's version is unknown."""
    for distribution in ("mlflow", "mlflow-skinny"):
        try:
            version = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
        try:
            cache = os.environ.get("AEP_ASSETS_CACHE_DIR") or Path(
                os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "aep_assets")
        except RuntimeError:  # no home directory (a bare container user): no template, each store migrates
            return None
        return Path(cache, f"{distribution}-{version}-empty.db")
    return None


def seed_from_template(tracking_uri: str, artifact_root: str | None) -> bool:
    """Start a new SQLite store as a copy of the kept empty one; False (nothing done) when there is none to copy
    or the store is not a new SQLite file. The copy's default experiment keeps its artifacts where a migrated
    new store's would: ``<artifact_root>/0``, or ``./mlruns/0``."""
    path, template = sqlite_path(tracking_uri), template_path()
    if path is None or path.exists() or template is None or not template.is_file():
        return False
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    location = (Path(artifact_root, "0").resolve().as_uri() if artifact_root
                else str(Path.cwd() / "mlruns" / "0"))
    now = int(datetime.now(UTC).timestamp() * 1000)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _copy(template, partial)
        with closing(sqlite3.connect(partial)) as db, db:
            db.execute("UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
                       "WHERE experiment_id = 0", (location, now, now))
        os.replace(partial, path)  # a run beside this one sees no store or a whole one
    except (OSError, sqlite3.Error):  # e.g. no folder can be made there: opening the store says so in the step
        if partial.parent.is_dir():
            partial.unlink(missing_ok=True)
        return False
    return True


def keep_as_template(tracking_uri: str, template: Path) -> None:
    """Keep a just-migrated, still empty SQLite store as the template of later ones (the first one wins)."""
    path = sqlite_path(tracking_uri)
    if path is None or template.exists() or not _has_tables(path):
        return
    partial = template.with_name(f".{template.name}.{os.getpid()}.partial")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        _copy(path, partial)
        os.replace(partial, template)
    except (OSError, sqlite3.Error):  # no template this time: the next new store migrates and tries again
        if partial.parent.is_dir():
            partial.unlink(missing_ok=True)


def _copy(source: Path, target: Path) -> None:
    # SQLite's backup API: a consistent copy even if the source is open elsewhere.
    with closing(sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)) as src, \
            closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _has_tables(path: Path) -> bool:
    """Whether the file holds MLflow's tables; a file SQLite cannot read does not (MLflow then says why)."""
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'")
            return found.fetchone() is not None
    except sqlite3.Error:
        return False
