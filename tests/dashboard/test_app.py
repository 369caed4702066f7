"""The real dashboard app (``create_app``) through Flask's test client: awkward device names, bad
query values and forged callbacks answered without a traceback, the log-in throttle, and the
audit rows of failed, throttled and refused attempts.

Devices are ``FakeLink`` objects (no device behind them); the store is a real SQLite file.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass

import pytest

from dashboard import ids
from dashboard.app import create_app
from dashboard.auth import UserDB
from dashboard.deps import Deps
from dashboard.store import open_store
from dashboard.throttle import LoginThrottle
from protocols.messages import AlarmAck, EventCode
from tests.dashboard.app_harness import AppHarness, FakeLink, children, ids_in, texts

T0 = 1_767_225_600_000
NAMES = ["pump a", "pump<1>", "=cmd"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Dashboard:
    web: AppHarness
    links: dict[str, FakeLink]
    store: object
    passwords: dict[str, str]
    clock: FakeClock

    def login(self, user: str):
        return self.web.login(user, self.passwords[user])

    def auth_rows(self) -> list[dict]:
        return [row for row in reversed(self.store.audit(100)) if row["action"].startswith("auth ")]


@pytest.fixture(scope="module")
def accounts(tmp_path_factory):
    path = tmp_path_factory.mktemp("users") / "users.json"
    passwords = UserDB.create_default(path)
    return UserDB.load(path), passwords


@pytest.fixture
def dashboard(tmp_path, accounts):
    users, passwords = accounts
    store = open_store(f"sqlite:///{tmp_path / 'history.db'}")
    store.add_series("pump a", "reservoir_ml", [T0, T0 + 1000], [12.5, 12.25])
    store.add_series("pump a", "rate_ml_day", [T0, T0 + 1000], [0.5, -0.5])
    store.flush()
    links = {name: FakeLink(name) for name in NAMES}
    clock = FakeClock()
    app = create_app(Deps(links, store), users, login_throttle=LoginThrottle(clock=clock))
    yield Dashboard(AppHarness(app.server.test_client()), links, store, passwords, clock)
    store.close()


@pytest.fixture
def clinician(dashboard) -> Dashboard:
    assert dashboard.login("clinician").status_code == 303
    return dashboard


@pytest.fixture
def viewer(dashboard) -> Dashboard:
    assert dashboard.login("viewer").status_code == 303
    return dashboard


def route(dashboard: Dashboard, pathname: str):
    response = dashboard.web.call("page.children", "url.pathname", {"url.pathname": pathname})
    assert response.status_code == 200
    return children(response)


# --- 1. device names with a space or < > ------------------------------------------------------------
@pytest.mark.parametrize(("pathname", "name"), [("/device/pump%20a", "pump a"), ("/device/pump%3C1%3E", "pump<1>")])
def test_a_device_named_with_a_space_or_brackets_has_a_page(viewer, pathname, name):
    page = route(viewer, pathname)
    assert "No device named" not in texts(page)
    assert ids.DEVICE_NAME in ids_in(page)
    assert name in texts(page)


def test_an_unknown_device_page_says_so_with_the_decoded_name(viewer):
    assert texts(route(viewer, "/device/pump%20b")) == "No device named 'pump b'."


def test_links_to_pages_and_exports_quote_the_name(viewer):
    cards = children(viewer.web.call(ids.OVERVIEW_CARDS, "tick.n_intervals", {"tick.n_intervals": 1}))
    hrefs = [c["props"]["children"][0]["props"]["children"]["props"]["href"] for c in cards]
    assert hrefs == ["/device/pump%20a", "/device/pump%3C1%3E", "/device/%3Dcmd"]
    page = route(viewer, "/device/pump%20a")
    assert "/export/pump%20a/series.csv" in str(page) and "/export/pump%20a/events.csv" in str(page)


def test_exports_of_such_names_download(viewer):
    response = viewer.web.client.get("/export/pump%20a/series.csv")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].endswith("filename*=UTF-8''pump%20a-series.csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["time_utc", "time_ms", "rate_ml_day", "reservoir_ml"]
    assert rows[2][2:] == ["-0.5", "12.25"]  # a negative value is a number, not a quoted text cell
    assert viewer.web.client.get("/export/pump%3C1%3E/events.csv").status_code == 200


def test_a_device_name_that_starts_a_formula_is_quoted_in_its_export(viewer):
    viewer.store.add_audit("clinician", "clinician", "=cmd", "TherapySet", {}, {}, "ok", 1)
    rows = list(csv.DictReader(io.StringIO(viewer.web.client.get("/export/audit.csv").text)))
    assert [r["device"] for r in rows if r["action"] == "TherapySet"] == ["'=cmd"]


# --- 2a. bad query values --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("start_ms=abc", "start_ms must be a whole number of milliseconds"),
        ("end_ms=1e3", "end_ms must be a whole number of milliseconds"),
        ("start_ms=-5", "start_ms must be a whole number"),
        ("start_ms=99999999999999999999999", "start_ms must be a whole number"),
        ("start_ms=300000000000000", "from 0 to 253402300799999"),
        ("start_ms=2000&end_ms=1000", "start_ms (2000) is after end_ms (1000)"),
        ("names==HYPERLINK(%22http://x%22)", "pump a has no series '=HYPERLINK(\"http://x\")'"),
        ("names=reservoir_ml,", "pump a has no series ''; it has: rate_ml_day, reservoir_ml"),
    ],
)
def test_bad_series_query_values_get_a_plain_400(viewer, query, message):
    response = viewer.web.client.get(f"/export/pump%20a/series.csv?{query}")
    assert response.status_code == 400
    assert response.mimetype == "text/plain"
    assert message in response.text
    assert "Traceback" not in response.text


def test_a_good_range_still_exports(viewer):
    response = viewer.web.client.get(f"/export/pump%20a/series.csv?names=reservoir_ml&start_ms={T0 + 1}")
    assert response.status_code == 200
    assert response.text.splitlines()[1:] == [f"2026-01-01T00:00:01.000Z,{T0 + 1000},12.25"]


def test_an_export_of_an_unknown_device_is_a_plain_404(viewer):
    response = viewer.web.client.get("/export/nope/series.csv")
    assert (response.status_code, response.text) == (404, "No device named 'nope'.\n")


# --- 2b, 2c. forged programming and acknowledge callbacks -------------------------------------------
DOSING = {"send-dosing.submit_n_clicks": 1, "pump-rate.value": 0.5, "pump-alarm-volume.value": 2}


def test_a_viewer_sending_dosing_to_an_unknown_device_is_refused_for_the_role(viewer, caplog):
    caplog.set_level(logging.WARNING)
    response = viewer.web.call(
        "program-result.children@", "send-dosing.submit_n_clicks", {**DOSING, "device-name.data": "nope"}
    )
    assert response.status_code == 200
    result = children(response)
    assert result["props"]["id"] == "result-denied"
    assert "needs the clinician role" in texts(result)
    assert "nope" not in texts(result)  # the role check comes first: a viewer learns nothing about devices
    assert "Traceback" not in caplog.text
    (row,) = [r for r in viewer.auth_rows() if r["action"] == "auth denied"]
    assert (row["user"], row["role"], row["result"]) == ("viewer", "viewer", "refused")
    assert row["after"] == {"client": "127.0.0.1", "detail": "role: needs clinician"}
    assert any("refused" in r.message and r.levelno == logging.WARNING for r in caplog.records)


def test_a_clinician_sending_dosing_to_an_unknown_device_is_refused_in_the_page(clinician):
    response = clinician.web.call(
        "program-result.children@", "send-dosing.submit_n_clicks", {**DOSING, "device-name.data": "nope"}
    )
    result = children(response)
    assert (response.status_code, result["props"]["id"]) == (200, "result-not-sent")
    assert texts(result) == "Not sent: no device named 'nope'. Nothing was changed."
    assert all(not link.submitted for link in clinician.links.values())


def test_a_clinician_sending_dosing_to_a_known_device_reaches_its_link(clinician):
    response = clinician.web.call(
        "program-result.children@", "send-dosing.submit_n_clicks", {**DOSING, "device-name.data": "pump a"}
    )
    assert children(response)["props"]["id"] == "result-ok"
    ((command, user, role),) = clinician.links["pump a"].submitted
    assert (command.rate_ul_per_day, user, role) == (500, "clinician", "clinician")


@pytest.mark.parametrize("code", [999_999, "LOW_RESERVOIR", True, None, [1]])
def test_acknowledging_an_invalid_alarm_code_is_refused_in_the_page(clinician, code):
    response = clinician.web.acknowledge("pump a", code)
    assert response.status_code == 200
    result = children(response)
    assert result["props"]["id"] == "result-not-sent"
    assert "is not an alarm this dashboard knows" in texts(result)
    assert clinician.links["pump a"].submitted == []


def test_acknowledging_on_an_unknown_device_is_refused_in_the_page(clinician):
    result = children(clinician.web.acknowledge("nope", int(EventCode.LOW_RESERVOIR)))
    assert texts(result) == "Not sent: no device named 'nope'. Nothing was changed."


def test_a_valid_acknowledge_is_sent_and_a_viewers_is_refused(dashboard):
    dashboard.login("viewer")
    denied = children(dashboard.web.acknowledge("pump a", int(EventCode.LOW_RESERVOIR)))
    assert denied["props"]["id"] == "result-denied"
    dashboard.login("clinician")
    assert children(dashboard.web.acknowledge("pump a", int(EventCode.LOW_RESERVOIR)))["props"]["id"] == "result-ok"
    ((command, _, _),) = dashboard.links["pump a"].submitted
    assert command == AlarmAck(EventCode.LOW_RESERVOIR)


def test_a_read_only_callback_for_an_unknown_device_is_a_404_with_a_message(viewer, caplog):
    caplog.set_level(logging.ERROR)
    response = viewer.web.call(ids.EVENTS, "tick.n_intervals", {"tick.n_intervals": 1, "device-name.data": "nope"})
    assert (response.status_code, response.json) == (404, {"message": "No device named 'nope'."})
    assert "Traceback" not in caplog.text


# --- 4. log-in throttle and the audit log ------------------------------------------------------------
def test_failed_log_ins_are_throttled_with_a_message_and_audited(dashboard, caplog):
    caplog.set_level(logging.WARNING)
    for _ in range(5):
        assert dashboard.web.login("viewer", "wrong").status_code == 401
    throttled = dashboard.login("viewer")  # the right password waits too
    assert throttled.status_code == 429
    assert "Too many failed log-ins for this user name. Try again in 1 second." in throttled.text
    assert throttled.headers["Retry-After"] == "1"
    assert dashboard.web.client.get("/").status_code == 302  # not logged in
    dashboard.clock.now += 1
    assert dashboard.login("viewer").status_code == 303
    rows = dashboard.auth_rows()
    assert [(r["action"], r["user"], r["result"]) for r in rows] == [
        *[("auth login_failed", "viewer", "refused")] * 5,
        ("auth login_throttled", "viewer", "refused"),
        ("auth login_ok", "viewer", "ok"),
    ]
    assert rows[5]["after"] == {"client": "127.0.0.1", "detail": "5 failures by user"}
    assert rows[5]["device"] == "" and rows[5]["role"] == "viewer"
    assert dashboard.store.verify_audit() is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("failed log-in for 'viewer'" in w for w in warnings) == 5
    assert any("throttled log-in for 'viewer' from 127.0.0.1" in w for w in warnings)


def test_the_wait_doubles_and_success_clears_the_user_but_not_the_address(dashboard):
    for i in range(5):
        dashboard.web.login("clinician", "wrong", address=f"10.0.0.{i}")
    dashboard.clock.now += 1
    assert dashboard.web.login("clinician", "wrong", address="10.0.0.9").status_code == 401  # the 6th failure
    assert "this user name. Try again in 2 seconds." in dashboard.login("clinician").text
    dashboard.clock.now += 2
    assert dashboard.login("clinician").status_code == 303
    assert dashboard.web.login("clinician", "wrong", address="10.0.1.1").status_code == 401  # the user starts again
    for _ in range(4):
        dashboard.web.login("viewer", "wrong", address="10.0.0.9")
    refused = dashboard.web.login("viewer", "wrong", address="10.0.0.9")
    assert "this address. Try again in 1 second." in refused.text  # 10.0.0.9 kept its count


def test_unknown_user_names_are_throttled_and_audited_without_the_name(dashboard):
    for _ in range(5):
        dashboard.web.login("hunter2", "x")
    assert dashboard.web.login("hunter2", "x").status_code == 429
    rows = dashboard.auth_rows()
    assert {r["user"] for r in rows} == {"<unknown user>"}
    assert "hunter2" not in str(rows)
