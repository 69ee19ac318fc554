"""The CMLE event taxonomy: rates, propensity deltas, dependencies; reference/cmle.md §1.5."""

from dataclasses import dataclass


@dataclass(frozen=True)
class EventType:
    name: str
    weekly_rate: float  # mean occurrences per week (base) or per originating event per week (dependent)
    propensity_delta: float
    delay_hours: float  # mean exponential delay after the originating event


EVENT_TYPES: tuple[EventType, ...] = (
    EventType("advertising.clicks", 0.01, 0.002, 0.5),
    EventType("advertising.impressions", 0.1, 0.001, 0.0),
    EventType("web.webpagedetails.pageViews", 0.1, 0.005, 0.1),
    EventType("web.webinteraction.linkClicks", 0.05, 0.005, 0.1),
    EventType("commerce.productViews", 0.05, 0.005, 0.2),
    EventType("commerce.purchases", 0.01, 0.1, 1.0),
    EventType("decisioning.propositionDisplay", 0.05, 0.005, 0.1),
    EventType("decisioning.propositionInteract", 0.01, 0.1, 0.05),
    EventType("decisioning.propositionDismiss", 0.01, -0.2, 0.05),
    EventType("directMarketing.emailOpened", 0.2, 0.02, 24.0),
    EventType("directMarketing.emailClicked", 0.05, 0.1, 0.5),
    EventType("directMarketing.emailSent", 0.5, 0.005, 0.0),
    EventType("web.formFilledOut", 0.0, 0.0, 0.0),
)
NAMES = tuple(e.name for e in EVENT_TYPES)
CODE = {name: i for i, name in enumerate(NAMES)}

BASE_TYPES = ("advertising.impressions", "web.webpagedetails.pageViews", "directMarketing.emailSent")

# In the notebooks' dict order, which matters: children of a type are generated before that type
# spawns its own (e.g. page views caused by email clicks then cause link clicks).
DEPENDENCIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("advertising.impressions", ("advertising.clicks",)),
    ("directMarketing.emailSent", ("directMarketing.emailOpened",)),
    ("directMarketing.emailOpened", ("directMarketing.emailClicked",)),
    ("directMarketing.emailClicked", ("web.webpagedetails.pageViews",)),
    ("web.webpagedetails.pageViews", ("web.webinteraction.linkClicks", "commerce.productViews",
                                      "decisioning.propositionDisplay")),
    ("commerce.productViews", ("commerce.purchases",)),
    ("decisioning.propositionDisplay", ("decisioning.propositionInteract", "decisioning.propositionDismiss")),
)

CONVERSION_EVENT = "web.formFilledOut"


def triggers_conversion_draw(name: str) -> bool:
    """Only web, commerce and decisioning events draw a conversion; email and ad events only move p."""
    return "directMarketing" not in name and "advertising" not in name and name != CONVERSION_EVENT
