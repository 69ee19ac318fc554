"""The temporal design: train at cutoff T1, test at T2, label windows (T, T+H] that never overlap."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class TemporalSplit:
    train_cutoff: datetime
    test_cutoff: datetime
    horizon_days: int

    def __post_init__(self) -> None:
        if self.horizon_days < 1:
            raise ValueError(f"horizon_days must be at least 1, got {self.horizon_days}.")
        for name in ("train_cutoff", "test_cutoff"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"{name} {getattr(self, name).isoformat()} has no timezone; give it in UTC.")
        if self.train_cutoff + timedelta(days=self.horizon_days) > self.test_cutoff:
            raise ValueError(
                f"train_cutoff {self.train_cutoff:%Y-%m-%d} + horizon {self.horizon_days} days passes test_cutoff "
                f"{self.test_cutoff:%Y-%m-%d}, so the training labels would overlap the test window; move "
                "train_cutoff at least horizon_days before test_cutoff.")

    @property
    def cutoffs(self) -> dict[str, datetime]:
        return {"train": self.train_cutoff, "test": self.test_cutoff}

    def require_observed(self, now: datetime | None = None) -> None:
        """The test labels must be in the past, or every test row would look negative."""
        now = now or datetime.now(UTC)
        end = self.test_cutoff + timedelta(days=self.horizon_days)
        if end > now:
            raise ValueError(f"The test label window ends {end:%Y-%m-%d %H:%M} UTC, after now; set test_cutoff at "
                             f"least horizon_days ({self.horizon_days}) before today.")
