"""The real dashboard app (``create_app``) driven through Flask's test client, with fake device links.

``FakeLink`` stands in for ``DeviceLink``: a fixed snapshot and a list of the commands submitted.
The store is a real SQLite file, so audit rows and CSV exports are the real ones. ``AppHarness``
logs in through the form and posts Dash callbacks the way the browser (or a forged request) does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from flask.testing import FlaskClient

from dashboard.commands import CommandResult
from dashboard.link import LinkSnapshot, LinkState
from protocols.messages import DeviceKind, IdentifyReply, Message

SAME_ORIGIN = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
PUMP = IdentifyReply(DeviceKind.PUMP, "TestPump 1", "SN-PUMP-1", "1.0.0", 0, 0, 0x2D, 0)


@dataclass
class FakeLink:
    """A device link that never talks to a device: a fixed snapshot, submitted commands recorded."""

    name: str
    identity: IdentifyReply = PUMP
    submitted: list[tuple[Message, str, str]] = field(default_factory=list)
    status: Any = None  # the last status the link shows (None: none received)

    def snapshot(self) -> LinkSnapshot:
        return LinkSnapshot(
            name=self.name,
            url="fake://",
            state=LinkState.ONLINE,
            identity=self.identity,
            status=self.status,
            status_received_at=None,
            age_s=None,
            last_seen_wall=None,
            rtt_ms=None,
            counters={},
            technical_alarm=None,
            reconnects=0,
            next_retry_in_s=None,
            session_open=True,
            last_event_seq=None,
        )

    def submit(self, command: Message, user: str, role: str) -> CommandResult:
        self.submitted.append((command, user, role))
        return CommandResult(True, None, None, "applied", audit_id=len(self.submitted))


@dataclass
class AppHarness:
    """A logged-in (or not) test client of one app."""

    client: FlaskClient

    def login(self, username: str, password: str, address: str = "127.0.0.1"):
        """Post the log-in form from client ``address``."""
        token = CSRF_RE.search(self.client.get("/login").text).group(1)
        form = {"csrf_token": token, "username": username, "password": password}
        return self.client.post("/login", data=form, headers=SAME_ORIGIN, environ_base={"REMOTE_ADDR": address})

    def dependency(self, output_prefix: str, trigger: str) -> dict:
        """The registered callback with an output ``output_prefix...`` that ``trigger`` (``id.property``) fires."""
        for dep in self.client.get("/_dash-dependencies").json:
            ins = [f"{i['id']}.{i['property']}" for i in dep["inputs"]]
            outs = dep["output"].strip(".").split("...")
            if any(out.startswith(output_prefix) for out in outs) and trigger in ins:
                return dep
        raise AssertionError(f"no callback writes {output_prefix} on {trigger}")

    def call(self, output_prefix: str, trigger: str, values: dict[str, object]):
        """Post the callback as the browser does; ``values`` by ``id.property``, None for the rest."""
        dep = self.dependency(output_prefix, trigger)

        def props(items: list[dict]) -> list[dict]:
            return [{**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in items]

        outputs = []
        for out in dep["output"].strip(".").split("..."):
            out_id, _, prop = out.partition(".")
            outputs.append({"id": out_id, "property": prop.split("@")[0]})
        body = {
            "output": dep["output"],
            "outputs": outputs[0] if len(outputs) == 1 else outputs,
            "inputs": props(dep["inputs"]),
            "state": props(dep["state"]),
            "changedPropIds": [trigger],
        }
        return self.client.post("/_dash-update-component", json=body, headers=SAME_ORIGIN)

    def acknowledge(self, device: str, code: object):
        """The alarm-acknowledge callback as a click on the button of alarm ``code`` sends it."""
        button = {"code": code, "type": "ack"}
        body = {
            "output": "ack-result.children",
            "outputs": {"id": "ack-result", "property": "children"},
            "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]],
            "state": [{"id": "device-name", "property": "data", "value": device}],
            "changedPropIds": [json.dumps(button, sort_keys=True, separators=(",", ":")) + ".n_clicks"],
        }
        return self.client.post("/_dash-update-component", json=body, headers=SAME_ORIGIN)


def children(response) -> object:
    """The single output a callback response carries."""
    (outputs,) = response.json["response"].values()
    (value,) = outputs.values()
    return value


def texts(component: object) -> str:
    """All text inside a serialised Dash component tree, joined by spaces."""
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list):
        return " ".join(texts(c) for c in component)
    if isinstance(component, dict):
        return texts(component.get("props", {}).get("children", ""))
    return ""


def ids_in(component: object) -> list[object]:
    """Every component id inside a serialised Dash component tree."""
    found: list[object] = []
    if isinstance(component, list):
        for c in component:
            found += ids_in(c)
    elif isinstance(component, dict):
        props = component.get("props", {})
        if "id" in props:
            found.append(props["id"])
        found += ids_in(props.get("children"))
    return found
