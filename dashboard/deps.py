"""What the callbacks may use: the device links and the history store, handed in by the app factory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .link import DeviceLink


@dataclass
class Deps:
    """The dashboard's collaborators. Callbacks read them; only the links talk to devices."""

    links: dict[str, DeviceLink]
    store: Any  # dashboard.store.HistoryStore
    tick_s: float = 1.0

    def link(self, name: str) -> DeviceLink:
        """The link of device ``name`` (KeyError for an unknown name, which a forged request may send)."""
        return self.links[name]
