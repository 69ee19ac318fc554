"""Dagster resources: ``aep`` (local sandbox or real AEP) and ``storage`` (local directory or S3).

The keys are the same in both modes. ``build_resources()`` picks the implementations from the
environment: ``AEP_CLIENT_ID`` set means real AEP, ``AEP_STORAGE=s3`` means S3, and
AEP's exports are read from its Data Landing Zone (on Azure Blob or S3) with the credentials AEP issues:
by default against real AEP, and with ``AEP_EXPORTS=dlz`` on the sandbox; ``AEP_EXPORTS=storage`` reads
them from the pipeline's own storage, for orgs that export to their own bucket.
"""

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from aep_sandbox import SandboxProcess

from .aep import AEPClient, AEPConfig
from .aep.config import DEFAULT_SCOPES
from .constants import DATA_DIR
from .storage import LandingZoneExports, LocalStorage, S3Storage, Storage
from .tracking.sqlite_store import TEMPLATE_ENV, may_need_migrating, seed_from_template, sqlite_path, template_path


class AEPResource(dg.ConfigurableResource):
    """Adobe Experience Platform. Subclasses say where it is; assets only call ``client()``."""

    def client(self) -> AEPClient:
        raise NotImplementedError

    def client_with_limits(self, *, timeout_s: float, max_retries: int) -> AEPClient:
        """The same AEP with a shorter patience from the first request on, for callers that must answer quickly
        (a sensor's tick)."""
        return self.client().with_limits(timeout_s=timeout_s, max_retries=max_retries)


class LocalSandboxAEP(AEPResource):
    """The embedded local AEP sandbox, started on 127.0.0.1 for the duration of a run."""

    data_dir: str = Field(default=str(DATA_DIR / "aep-sandbox"), description="The sandbox's state directory.")
    landing_zone_dir: str | None = Field(default=None, description="Where the Data Landing Zone keeps files.")
    sandbox_name: str = "prod"
    faults: str = Field(default="", description='Faults the sandbox injects, as JSON, e.g. [{"status": 503, '
                                                '"rate": 0.1}, {"drop": true, "times": 1}, {"target": "batch", '
                                                '"times": 1}] (see aep_sandbox/config.py: Fault).')
    fault_seed: int | None = Field(default=None, description="Seed of the faults drawn at a rate; the sandbox's "
                                   "log names the seed a run used, so a failing fault run can be replayed.")
    dlz_bucket: str = Field(default="", description="Keep the sandbox's Data Landing Zone in this S3 bucket (on "
                                                     "AWS_ENDPOINT_URL) instead of a local directory.")
    dlz: str = Field(default="", description="Where the sandbox's Data Landing Zone lives: azure (on Azurite), s3 "
                                             "(dlz_bucket) or local; empty: the sandbox's default (docs/sandbox.md).")
    dlz_role_arn: str = Field(default="", description="The role an S3 landing zone issues scoped credentials of "
                                                       "(STS AssumeRole); without it the DLZ hands out none.")
    _process: SandboxProcess | None = PrivateAttr(default=None)
    _client: AEPClient | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        landing_zone = Path(self.landing_zone_dir) if self.landing_zone_dir else None
        faults = json.loads(self.faults) if self.faults else None
        env = {**({"AEP_SANDBOX_DLZ_BUCKET": self.dlz_bucket} if self.dlz_bucket else {}),
               **({"AEP_SANDBOX_DLZ_ROLE_ARN": self.dlz_role_arn} if self.dlz_role_arn else {})} or None
        self._process = SandboxProcess(Path(self.data_dir), landing_zone_dir=landing_zone, dlz=self.dlz or None,
                                       faults=faults,
                                       fault_seed=self.fault_seed, env=env).start()
        creds = self._process.credentials
        context.log.info("writing to the local AEP sandbox at %s (data in %s), sandbox '%s'", self._process.url,
                         self.data_dir, self.sandbox_name)
        self._client = AEPClient(AEPConfig(platform_url=self._process.url, ims_url=self._process.url,
                                           client_id=creds.client_id, client_secret=creds.client_secret,
                                           org_id=creds.org_id, sandbox_name=self.sandbox_name))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._process is not None:
            self._process.stop()

    def client(self) -> AEPClient:
        if self._client is None:
            raise RuntimeError("The local AEP sandbox starts with a run; call client() inside an asset.")
        return self._client


class AdobeAEP(AEPResource):
    """Real AEP through IMS OAuth server-to-server credentials."""

    client_id: str
    client_secret: str
    org_id: str
    sandbox_name: str = "prod"
    platform_url: str = "https://platform.adobe.io"
    ims_url: str = "https://ims-na1.adobelogin.com"
    scopes: str = DEFAULT_SCOPES
    allow_production: bool = Field(default=False, description="Write into a sandbox of type production "
                                                              "(AEP_ALLOW_PRODUCTION=1).")
    _client: AEPClient | None = PrivateAttr(default=None)

    def client(self) -> AEPClient:
        if self._client is None:
            self._client = self._checked(self._config())
        return self._client

    def client_with_limits(self, *, timeout_s: float, max_retries: int) -> AEPClient:
        # The sandbox's check is the first request, so it must already be patient only that long.
        if self._client is not None:
            return self._client.with_limits(timeout_s=timeout_s, max_retries=max_retries)
        return self._checked(replace(self._config(), timeout_s=timeout_s, max_retries=max_retries))

    def _config(self) -> AEPConfig:
        return AEPConfig(platform_url=self.platform_url, ims_url=self.ims_url, client_id=self.client_id,
                         client_secret=self.client_secret, org_id=self.org_id, sandbox_name=self.sandbox_name,
                         scopes=self.scopes.replace(" ", ""))

    def _checked(self, config: AEPConfig) -> AEPClient:
        """A client for the configured sandbox, once it is known not to be a production one (unless allowed)."""
        client = AEPClient(config)
        sandbox = client.sandboxes.get(self.sandbox_name)
        if sandbox.get("type") == "production" and not self.allow_production:
            raise PermissionError(f"AEP sandbox '{self.sandbox_name}' is a production sandbox; aep_assets writes "
                                  "datasets, audiences and flows there only with AEP_ALLOW_PRODUCTION=1. Use a "
                                  "development sandbox, or set the variable if you mean it.")
        dg.get_dagster_logger().info("writing to AEP org %s, sandbox '%s' (type %s) at %s", self.org_id,
                                     self.sandbox_name, sandbox.get("type", "unknown"), self.platform_url)
        return client


class StorageResource(dg.ConfigurableResource):
    def get(self) -> Storage:
        raise NotImplementedError


class LocalStorageResource(StorageResource):
    base_dir: str = Field(default=str(DATA_DIR / "storage"))

    def get(self) -> Storage:
        return LocalStorage(self.base_dir)


class S3StorageResource(StorageResource):
    """S3 through dagster-aws. AEP's S3 destination writes exports with the ``aep_access_key_*`` keys."""

    s3: S3Resource
    bucket: str
    prefix: str = "aep_assets"
    aep_access_key_id: str | None = None
    aep_secret_access_key: str | None = None

    def get(self) -> Storage:
        return S3Storage(self.s3.get_client(), self.bucket, self.prefix, self.aep_access_key_id,
                         self.aep_secret_access_key)


class LandingZoneExportsResource(StorageResource):
    """``storage`` for the pipeline's own files; exports read from AEP's Data Landing Zone (Azure Blob or
    Amazon S3) with the credentials AEP issues. For orgs that export to the DLZ rather than to their own bucket."""

    storage: StorageResource
    aep: AEPResource
    endpoint_url: str | None = None

    def get(self) -> Storage:
        return LandingZoneExports(self.storage.get(), self.aep.client().landing_zone, self.endpoint_url)


class MLflowResource(dg.ConfigurableResource):
    """MLflow tracking and model registry. Only the tracking URI says where MLflow lives: by default a SQLite
    database under data/ with artifacts beside it; ``MLFLOW_TRACKING_URI`` points it at a tracking server or
    Databricks (``databricks``), whose token MLflow reads from the environment itself."""

    tracking_uri: str = Field(description="MLflow tracking (and registry) URI.")
    artifact_root: str | None = Field(default=None, description="Where new experiments keep artifacts; None: the "
                                                                "tracking server decides.")
    registered_model_prefix: str = Field(default="", description="Prefix of registered model names, e.g. "
                                         "'main.marketing.' for Unity Catalog.")
    ui_url: str = Field(default="http://127.0.0.1:5000", description="The MLflow UI, for links in metadata.")
    _opening: threading.Thread | None = PrivateAttr(default=None)
    _store_open: threading.Event | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Opening the store takes seconds: importing MLflow, then LightGBM (scikit-learn and SciPy with it), and
        # for a database store opened the first time, creating its tables and running its migrations. All start
        # with the run and overlap the steps before training; the migrations in a child process, so as not to
        # hold this process's GIL.
        migrating = None
        if may_need_migrating(self.tracking_uri) and not seed_from_template(self.tracking_uri, self.artifact_root):
            template = template_path() if sqlite_path(self.tracking_uri) else None
            migrating = subprocess.Popen(
                [sys.executable, "-m", "aep_assets.tracking.open_store"],
                env={**os.environ, "MLFLOW_TRACKING_URI": self.tracking_uri,
                     **({TEMPLATE_ENV: str(template)} if template else {})},
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # MLflow's import brings in SQLAlchemy's ORM, whose import registers hooks that the run's own event log
        # (SQLAlchemy too) calls at once: imported half-way by the other thread, it failed a step. So the ORM is
        # imported here, whole, before the thread starts (a quarter of a second, once per process).
        import sqlalchemy.orm  # noqa: F401

        self._store_open = threading.Event()
        self._opening = threading.Thread(target=self._open_store, args=(migrating,), name="mlflow-open", daemon=True)
        self._opening.start()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._wait_for_store()  # never leave a migration half done

    def _open_store(self, migrating: subprocess.Popen | None) -> None:
        try:
            if migrating is not None:
                migrating.wait()
            self._new_registry()
        except Exception:  # noqa: BLE001 - the step that needs the registry meets the same error, and reports it
            pass
        finally:
            self._store_open.set()
        # Every step that opens the registry trains, loads or scores a LightGBM model, except scoring_features,
        # which needs only the champion's card: the import goes on while it runs its feature query. A step that
        # imports LightGBM meanwhile waits for this import, as Python's import lock makes it.
        try:
            import lightgbm  # noqa: F401
        except Exception:  # noqa: BLE001 - the step that imports it meets the same error
            pass

    def _wait_for_store(self) -> None:
        if self._opening is not None:
            self._opening.join()

    def _new_registry(self):
        from .tracking.registry import ModelRegistry

        return ModelRegistry(self.tracking_uri, self.artifact_root, self.registered_model_prefix)

    def is_open(self) -> bool:
        """Whether ``registry`` answers at once: this run's store is open (or was never opened here)."""
        return self._store_open is None or self._store_open.is_set()

    def registry(self):
        if self._store_open is not None:
            self._store_open.wait()
        return self._new_registry()


def dagster_ui_url() -> str:
    """The Dagster UI, for links back from MLflow runs."""
    return os.environ.get("DAGSTER_UI_URL", "http://127.0.0.1:3000").rstrip("/")


def local_mlflow(data_dir: Path) -> MLflowResource:
    (data_dir / "mlflow").mkdir(parents=True, exist_ok=True)
    return MLflowResource(tracking_uri=f"sqlite:///{(data_dir / 'mlflow' / 'mlflow.db').resolve()}",
                          artifact_root=str((data_dir / "mlflow" / "artifacts").resolve()))


def describe_target(resources: dict) -> str:
    """Which AEP org and sandbox a run writes to, for the start-up log and every run's first line."""
    aep = resources["aep"]
    if isinstance(aep, AdobeAEP):
        org = aep.org_id.get_value() if isinstance(aep.org_id, dg.EnvVar) else aep.org_id
        return f"AEP org {org}, sandbox '{aep.sandbox_name}' at {aep.platform_url}"
    return f"the local AEP sandbox in {aep.data_dir}, sandbox '{aep.sandbox_name}'"


def exports_from_dlz(env: dict[str, str]) -> bool:
    """Whether the pipeline reads AEP's exports from its Data Landing Zone: by default against real AEP, whose
    dataset exports land there; ``AEP_EXPORTS=storage`` when the org exports to the pipeline's own bucket."""
    return env.get("AEP_EXPORTS", "dlz" if env.get("AEP_CLIENT_ID") else "storage") == "dlz"


def build_resources(env: dict[str, str] | None = None) -> dict:
    env = dict(os.environ if env is None else env)
    if env.get("AEP_STORAGE", "local") == "s3":
        storage: StorageResource = S3StorageResource(
            s3=S3Resource(endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
                          region_name=env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1"))),
            bucket=env.get("AEP_S3_BUCKET", "aep-assets"), prefix=env.get("AEP_S3_PREFIX", "aep_assets"),
            aep_access_key_id=_env_var(env, "AEP_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
            aep_secret_access_key=_env_var(env, "AEP_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"))
        landing = None
    else:
        local = LocalStorageResource(base_dir=env.get("AEP_STORAGE_DIR", str(DATA_DIR / "storage")))
        # Exports to the sandbox's DLZ land inside local storage, unless the pipeline reads them from the DLZ.
        storage, landing = local, None if exports_from_dlz(env) else str(LocalStorage(local.base_dir).landing_zone_dir)
    if env.get("AEP_CLIENT_ID"):
        if not env.get("AEP_SANDBOX_NAME"):
            raise ValueError("AEP_SANDBOX_NAME is not set: against real AEP, name the sandbox to write to (e.g. "
                             "AEP_SANDBOX_NAME=dev-propensity); aep_assets never picks 'prod' by default.")
        aep: AEPResource = AdobeAEP(
            client_id=dg.EnvVar("AEP_CLIENT_ID"), client_secret=dg.EnvVar("AEP_CLIENT_SECRET"),
            org_id=dg.EnvVar("AEP_ORG_ID"), sandbox_name=env["AEP_SANDBOX_NAME"],
            allow_production=env.get("AEP_ALLOW_PRODUCTION", "") in ("1", "true", "yes"),
            platform_url=env.get("AEP_PLATFORM_URL", "https://platform.adobe.io"),
            ims_url=env.get("AEP_IMS_URL", "https://ims-na1.adobelogin.com"),
            scopes=env.get("AEP_SCOPES", DEFAULT_SCOPES))
    else:
        aep = LocalSandboxAEP(data_dir=env.get("AEP_SANDBOX_DIR", str(DATA_DIR / "aep-sandbox")),
                              landing_zone_dir=landing, faults=env.get("AEP_SANDBOX_FAULTS", ""),
                              fault_seed=int(seed) if (seed := env.get("AEP_SANDBOX_FAULT_SEED")) else None,
                              dlz_bucket=env.get("AEP_SANDBOX_DLZ_BUCKET", ""), dlz=env.get("AEP_SANDBOX_DLZ", ""),
                              dlz_role_arn=env.get("AEP_SANDBOX_DLZ_ROLE_ARN", ""))
    if exports_from_dlz(env):
        storage = LandingZoneExportsResource(storage=storage, aep=aep, endpoint_url=env.get("AWS_ENDPOINT_URL"))
    return {"aep": aep, "storage": storage, "mlflow": _mlflow(env)}


def _env_var(env: dict[str, str], *names: str) -> dg.EnvVar | None:
    """The first of ``names`` that is set, as an EnvVar: resource config (which the UI shows) names the variable,
    never its value."""
    return next((dg.EnvVar(n) for n in names if env.get(n)), None)


def _mlflow(env: dict[str, str]) -> MLflowResource:
    """MLflow from ``MLFLOW_TRACKING_URI`` (a URI may hold a password, so it stays an EnvVar), or a local store
    next to the pipeline's storage."""
    if env.get("MLFLOW_TRACKING_URI"):
        return MLflowResource(tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"),
                              registered_model_prefix=env.get("MLFLOW_REGISTERED_MODEL_PREFIX", ""),
                              ui_url=env.get("MLFLOW_UI_URL", "http://127.0.0.1:5000"))
    storage_dir = env.get("AEP_STORAGE_DIR")
    return local_mlflow(Path(storage_dir).parent if storage_dir else DATA_DIR)
