"""What the callbacks may use: the device links and the history store, handed in by the app factory.

Owns ``Deps`` and the refusal of a device name no link serves (``UnknownDevice``). Must not
import Dash, Flask or ``device_mock``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protocols.trials import TrialRule

if TYPE_CHECKING:
    from .link import DeviceLink


class UnknownDevice(LookupError):
    """No device of this name (a stale page or a forged request); the message is fit to show."""

    def __init__(self, name: object) -> None:
        super().__init__(f"no device named {name!r}")
        self.name = name


@dataclass
class Deps:
    """The dashboard's collaborators. Callbacks read them; only the links talk to devices."""

    links: dict[str, DeviceLink]
    store: Any  # dashboard.store.HistoryStore
    tick_s: float = 1.0
    trial_rule: TrialRule = field(default_factory=TrialRule)  # the clinic's responder rule for trial pages

    def link(self, name: object) -> DeviceLink:
        """The link of device ``name``; :class:`UnknownDevice` for a name no link serves (forged requests send any)."""
        link = self.links.get(name) if isinstance(name, str) else None
        if link is None:
            raise UnknownDevice(name)
        return link
