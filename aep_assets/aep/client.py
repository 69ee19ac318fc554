"""``AEPClient``: every service over one authenticated session."""

from dataclasses import replace

from .catalog import Catalog
from .config import AEPConfig
from .data_access import DataAccess
from .flow import FlowService
from .ingestion import BatchIngestion
from .landing_zone import DataLandingZone
from .query import QueryService
from .sandboxes import Sandboxes
from .schema_registry import SchemaRegistry
from .segmentation import Segmentation
from .session import AEPSession


class AEPClient:
    def __init__(self, config: AEPConfig) -> None:
        self.config = config
        self.session = AEPSession(config)
        self.schemas = SchemaRegistry(self.session)
        self.catalog = Catalog(self.session)
        self.ingestion = BatchIngestion(self.session, self.catalog)
        self.data_access = DataAccess(self.session)
        self.query = QueryService(self.session)
        self.flows = FlowService(self.session)
        self.landing_zone = DataLandingZone(self.session)
        self.segmentation = Segmentation(self.session)
        self.sandboxes = Sandboxes(self.session)

    def with_limits(self, *, timeout_s: float, max_retries: int) -> "AEPClient":
        """The same AEP with a shorter patience, for callers that must answer quickly (sensors)."""
        return AEPClient(replace(self.config, timeout_s=timeout_s, max_retries=max_retries))

    def __repr__(self) -> str:
        return f"AEPClient({self.config.platform_url!r}, sandbox={self.config.sandbox_name!r})"
