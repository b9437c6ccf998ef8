"""The ``placement:`` section of the router config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from router.config.base import StrictModel


class PlacementConfig(StrictModel):
    """How often topic placement is re-checked while running, and what a violation does."""

    recheck_interval_s: float = Field(default=5.0, gt=0, description="seconds between re-checks")
    max_verdict_age_s: float = Field(
        default=30.0, gt=0,
        description="after this many seconds without a successful check every topic is treated "
                    "as not permitted (fail closed)",
    )
    on_violation: Literal["quarantine", "stall"] = Field(
        default="quarantine",
        description="quarantine: events bound for an out-of-place topic go to quarantine; "
                    "stall: stop consuming (offsets not advanced) until placement is restored",
    )

    @model_validator(mode="after")
    def _age_covers_interval(self) -> PlacementConfig:
        if self.max_verdict_age_s < self.recheck_interval_s:
            raise ValueError(
                f"placement.max_verdict_age_s ({self.max_verdict_age_s}) is shorter than "
                f"placement.recheck_interval_s ({self.recheck_interval_s}): every verdict would "
                "expire before the next check; raise max_verdict_age_s or lower the interval"
            )
        return self
