"""The real dashboard app (``create_app``) through Flask's test client: awkward device names, bad
query values and forged callbacks answered without a traceback, the log-in throttle, and the
audit rows of failed, throttled and refused attempts.

Devices are ``FakeLink`` objects (no device behind them); the store is a real SQLite file.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, replace

import pytest

from dashboard import ids
from dashboard.app import create_app
from dashboard.auth import UserDB
from dashboard.deps import Deps
from dashboard.store import open_store
from dashboard.throttle import LoginThrottle
from protocols.messages import (
    Actor,
    AlarmAck,
    AlarmState,
    DiaryAdd,
    DiaryKind,
    DiaryRecord,
    DiarySource,
    EventCode,
    EventRecord,
    Lifecycle,
    LifecycleSet,
    Priority,
)
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
    values = {"tick-fleet.n_intervals": 1, f"{ids.OVERVIEW_SORT}.data": {"column": "name", "descending": False}}
    response = viewer.web.call(ids.OVERVIEW_COUNTS, "tick-fleet.n_intervals", values)
    _head, body = response.json["response"][ids.OVERVIEW_TABLE]["children"]
    hrefs = [tr["props"]["children"][0]["props"]["children"]["props"]["href"] for tr in body["props"]["children"]]
    assert sorted(hrefs) == sorted(["/device/pump%20a", "/device/pump%3C1%3E", "/device/%3Dcmd"])
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


def test_a_device_name_that_starts_a_formula_is_quoted_in_its_export(clinician):
    clinician.store.add_audit("clinician", "clinician", "=cmd", "TherapySet", {}, {}, "ok", 1)
    rows = list(csv.DictReader(io.StringIO(clinician.web.client.get("/export/audit.csv").text)))
    assert [r["device"] for r in rows if r["action"] == "TherapySet"] == ["'=cmd"]


def test_the_audit_log_is_a_clinicians_page_in_words_and_its_export_refuses_a_viewer(dashboard):
    dashboard.store.add_audit(
        "clinician", "clinician", "pump a", 'DosingSet {"rate_ul_per_day":700,"mode":"CONTINUOUS"}',
        {"rate_ul_per_day": 500}, {"rate_ul_per_day": 700}, "applied: CommandAck {}", 9,
    )  # fmt: skip
    dashboard.store.flush()
    dashboard.login("viewer")
    assert dashboard.web.client.get("/export/audit.csv").status_code == 403
    denied = dashboard.web.call("page.children", "url.pathname", {"url.pathname": "/audit"})
    assert "for clinicians" in texts(children(denied))
    dashboard.login("clinician")
    page = texts(children(dashboard.web.call("page.children", "url.pathname", {"url.pathname": "/audit"})))
    assert "The audit chain is intact." in page
    assert "Dosing: Rate 0.7 mL/day, Mode Continuous" in page and "Rate 0.5 mL/day → 0.7 mL/day" in page
    assert dashboard.web.client.get("/export/audit.csv").status_code == 200


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
DOSING = {"send-dosing.n_clicks": 1, "pump-rate.value": 0.5, "pump-alarm-volume.value": 2}


def review(dashboard, values: dict) -> tuple[object, object]:
    """Post the dosing form's review step; return the review shown and what Send would send."""
    response = dashboard.web.call("program-review.children@", "send-dosing.n_clicks", values)
    assert response.status_code == 200, response.text
    out = response.json["response"]
    return out["program-review"]["children"], out["program-reviewed"]["data"]


def send_reviewed(dashboard, device: str, reviewed: object):
    values = {"confirm-send.n_clicks": 1, "device-name.data": device, "program-reviewed.data": reviewed}
    return dashboard.web.call("program-result.children", "confirm-send.n_clicks", values)


def test_a_viewer_sending_dosing_to_an_unknown_device_is_refused_for_the_role(viewer, caplog):
    caplog.set_level(logging.WARNING)
    result, reviewed = review(viewer, {**DOSING, "device-name.data": "nope"})
    assert reviewed is None and result["props"]["id"] == "result-denied"
    assert "needs the clinician role" in texts(result)
    assert "nope" not in texts(result)  # the role check comes first: a viewer learns nothing about devices
    assert "Traceback" not in caplog.text
    (row,) = [r for r in viewer.auth_rows() if r["action"] == "auth denied"]
    assert (row["user"], row["role"], row["result"]) == ("viewer", "viewer", "refused")
    assert row["after"] == {"client": "127.0.0.1", "detail": "role: needs clinician"}
    assert any("refused" in r.message and r.levelno == logging.WARNING for r in caplog.records)
    # A viewer who forges the Send step is refused the same way, and nothing reaches a link.
    forged = {"action": "send-dosing", "values": {"rate_ml": 0.5, "alarm_ml": 2}}
    sent = send_reviewed(viewer, "pump a", forged).json["response"]["program-result"]["children"]
    assert sent["props"]["id"] == "result-denied"
    assert all(not link.submitted for link in viewer.links.values())


def test_a_clinician_sending_dosing_to_an_unknown_device_is_refused_in_the_page(clinician):
    result, reviewed = review(clinician, {**DOSING, "device-name.data": "nope"})
    assert (result["props"]["id"], reviewed) == ("result-not-sent", None)
    assert texts(result) == "Not sent: no device named 'nope'. Nothing was changed."
    assert all(not link.submitted for link in clinician.links.values())


def test_dosing_is_reviewed_against_the_current_settings_then_sent_to_its_link(clinician):
    shown, reviewed = review(clinician, {**DOSING, "pump-rate.value": 0.75, "device-name.data": "pump a"})
    text = texts(shown)
    assert "Review: dosing" in text and "Rate" in text and "0.75 mL/day" in text
    assert not clinician.links["pump a"].submitted  # a review sends nothing
    response = send_reviewed(clinician, "pump a", reviewed)
    assert response.json["response"]["program-result"]["children"]["props"]["id"] == "result-ok"
    ((command, user, role),) = clinician.links["pump a"].submitted
    assert (command.rate_ul_per_day, user, role) == (750, "clinician", "clinician")


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
    values = {"tick-events.n_intervals": 1, "device-name.data": "nope"}
    response = viewer.web.call("events-rows", "tick-events.n_intervals", values)
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


def test_the_event_log_is_paged_on_the_server_newest_first_and_keeps_its_page(viewer):
    records = [
        EventRecord(s, T0 + s * 1000, EventCode.BOLUS_STARTED, Priority.NONE, AlarmState.NONE, 100, 1, Actor.CLINICIAN)
        for s in range(1, 46)
    ]
    viewer.store.add_events("pump a", records)
    viewer.store.flush()
    base = {"tick-events.n_intervals": 1, "device-name.data": "pump a"}
    clicks: dict[str, int] = {}  # n_clicks as the browser keeps them: they only grow

    def page(trigger: str, cursor=None, click: bool = True) -> tuple[list[int], str, dict]:
        if trigger != "tick-events.n_intervals" and click:
            clicks[trigger] = clicks.get(trigger, 0) + 1
        response = viewer.web.call("events-rows", trigger, {**base, **clicks, "events-cursor.data": cursor})
        assert response.status_code == 200, response.text
        out = response.json["response"]
        rows = out["events-rows"]["children"]["props"]["children"][1:]  # after the header row
        seqs = [int(row["props"]["children"][0]["props"]["children"]) for row in rows]
        return seqs, texts(out["events-rows"]["children"]), out["events-cursor"]["data"]

    newest, text, cursor = page("tick-events.n_intervals")
    assert newest == list(range(45, 25, -1))
    assert "Bolus started" in text and "0.1 mL, clinician bolus" in text and "BOLUS" not in text
    first = cursor
    older, _, cursor = page("events-older.n_clicks", cursor)
    assert older == list(range(25, 5, -1))
    # Dash drops the click's call when the next tick asks the same callback again: that call reads
    # the tick as its trigger and the store from before the click, and must still turn the page.
    lost, _, _ = page("tick-events.n_intervals", first)
    assert lost == older
    viewer.store.add_events("pump a", [replace(records[0], seq=46, time_ms=T0 + 46_000)])
    viewer.store.flush()
    again, _, cursor = page("tick-events.n_intervals", cursor)
    assert again == older  # a new event does not move the page being read
    back, _, _ = page("events-newest.n_clicks", cursor)
    assert back == list(range(46, 26, -1))
    # Three older clicks before any of their calls came back, counted from the newest page: two
    # steps reach the oldest page, and the third stops there.
    clicks["events-older.n_clicks"] += 2
    oldest, _, _ = page("events-older.n_clicks", first, click=False)
    assert oldest == list(range(5, 0, -1))


def test_the_event_log_says_who_made_each_change(viewer):
    """SPEC 3.8: each entry's actor, in words, in the "By" column of its own row."""
    made = [(EventCode.BOLUS_STARTED, Actor.PATIENT), (EventCode.DOSING_CHANGED, Actor.CLINICIAN)]
    made.append((EventCode.BATTERY_LOW, Actor.DEVICE))
    records = [
        EventRecord(s, T0 + s * 1000, code, Priority.NONE, AlarmState.NONE, 1, 0, actor)
        for s, (code, actor) in enumerate(made, start=1)
    ]
    viewer.store.add_events("pump a", records)
    viewer.store.flush()
    response = viewer.web.call(
        "events-rows", "tick-events.n_intervals", {"tick-events.n_intervals": 1, "device-name.data": "pump a"}
    )
    assert response.status_code == 200, response.text
    rows = response.json["response"]["events-rows"]["children"]["props"]["children"]
    header = [cell["props"]["children"] for cell in rows[0]["props"]["children"]]
    by = header.index("By")
    said = {
        int(row["props"]["children"][0]["props"]["children"]): row["props"]["children"][by]["props"]["children"]
        for row in rows[1:]
    }
    assert said == {1: "Patient", 2: "Clinician", 3: "Device"}


def test_every_live_callback_turns_its_own_tick_off_while_it_runs(viewer):
    # Dash drops a call still out when its input changes again: a callback on a shared fixed tick
    # that takes longer than the tick would never show anything. Each one is paced by its own tick.
    deps = viewer.web.client.get("/_dash-dependencies").json
    live = [dep for dep in deps if _tick_inputs(dep) and not dep.get("clientside_function")]
    assert len(live) >= 8  # banner, overview, status, charts, speed, events, alarms, refill
    ticks = []
    for dep in live:
        (tick,) = _tick_inputs(dep)
        running = dep.get("running") or {}
        off, on = running.get("running", {}), running.get("runningOff", {})
        assert (off.get(f"{tick}.disabled"), on.get(f"{tick}.disabled")) == (True, False), f"{dep['output']} unpaced"
        ticks.append(tick)
    assert len(set(ticks)) == len(ticks)  # no two callbacks share a tick
    watched = {dep["output"].split(".")[0] for dep in deps if dep.get("clientside_function")}
    assert set(ticks) <= watched  # and each has a watchdog for an answer that never came


def _tick_inputs(dep: dict) -> list[str]:
    return [i["id"] for i in dep["inputs"] if i["property"] == "n_intervals"]


def _trial_in_store(store, name: str = "pump a") -> None:
    """A week of baseline diary, a week of trial with pain roughly halved, the patient's report."""
    day = 86_400_000
    start = T0 + 7 * day
    diary, seq = [], 1
    for d in range(14):
        for hour, pain in ((8, 8), (20, 7)):
            score = pain if d < 7 else pain - 4
            diary.append(
                DiaryRecord(seq, T0 + d * day + hour * 3_600_000, DiaryKind.NRS, score, DiarySource.CONTROLLER)
            )
            seq += 1
    diary.append(DiaryRecord(seq, start + 7 * day, DiaryKind.RELIEF, 70, DiarySource.CONTROLLER))
    store.add_diary(name, diary)
    store.add_events(
        name,
        [
            EventRecord(1, start, EventCode.LIFECYCLE_CHANGED, Priority.NONE, AlarmState.NONE, 1, 0, Actor.DEVICE),
            EventRecord(2, start, EventCode.PUMP_STARTED, Priority.NONE, AlarmState.NONE, 0, 0, Actor.CLINICIAN),
        ],
    )
    store.flush()


def test_the_trial_page_gives_the_figures_the_call_and_no_wire_words(viewer):
    _trial_in_store(viewer.store)
    page = texts(route(viewer, "/trial/pump%20a"))
    assert "Trial: pump a" in page and "Relief from the diary" in page and "53 %" in page  # 7.5 -> 3.5 of 10
    assert "Relief the patient reports" in page and "70 %" in page and "over 15 points" in page
    assert "Responder (at least 50 % relief)" in page
    assert "Decision" in page and "Not yet recorded" in page
    assert "Only a clinician records decisions and types scores." in page  # the viewer's controls say why
    assert not re.search(r"[A-Z]+_[A-Z_]+|_ua\b|_ms\b|\b1[67]\d{11}\b", page), page


def test_a_clinician_records_the_decision_and_types_a_score_through_the_link(clinician):
    _trial_in_store(clinician.store)
    base = {"trial-device.data": "pump a"}
    decided = clinician.web.call(
        "trial-decision-result", "trial-decide-implant.n_clicks", {**base, "trial-decide-implant.n_clicks": 1}
    )
    assert decided.status_code == 200, decided.text
    assert "Decision recorded: Implant." in texts(decided.json["response"]["trial-decision-result"]["children"])
    command, user, _ = clinician.links["pump a"].submitted[-1]
    assert command == LifecycleSet(Lifecycle.IMPLANTED) and user == "clinician"
    recorded = [a for a in clinician.store.audit(50) if a["action"] == "trial decision"]
    assert recorded and recorded[0]["after"] == {"decision": "Implant"} and recorded[0]["device"] == "pump a"
    values = {**base, "trial-add.n_clicks": 1, "trial-add-kind.value": int(DiaryKind.NRS), "trial-add-value.value": 4}
    added = clinician.web.call("trial-add-result", "trial-add.n_clicks", values)
    assert added.status_code == 200
    assert clinician.links["pump a"].submitted[-1][0] == DiaryAdd(DiaryKind.NRS, 4, 0)
    bad = clinician.web.call("trial-add-result", "trial-add.n_clicks", {**values, "trial-add-value.value": 2.5})
    assert "Not sent: the value is a whole number." in texts(bad.json["response"]["trial-add-result"]["children"])


def test_a_viewer_cannot_record_a_decision_even_by_a_forged_call(viewer):
    _trial_in_store(viewer.store)
    values = {"trial-device.data": "pump a", "trial-decide-implant.n_clicks": 1}
    response = viewer.web.call("trial-decision-result", "trial-decide-implant.n_clicks", values)
    assert "needs the clinician role" in texts(response.json["response"]["trial-decision-result"]["children"])
    assert not viewer.links["pump a"].submitted
    assert not [a for a in viewer.store.audit(50) if a["action"] == "trial decision"]


def test_the_trial_report_downloads_as_html_and_pdf(viewer):
    _trial_in_store(viewer.store)
    html_page = viewer.web.client.get("/trial/pump%20a/report.html")
    assert html_page.status_code == 200 and "53 %" in html_page.text and "70 %" in html_page.text
    pdf = viewer.web.client.get("/trial/pump%20a/report.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert "attachment" in pdf.headers["Content-Disposition"]
    missing = viewer.web.client.get("/trial/nobody/report.pdf")
    assert missing.status_code == 404 and "No device named 'nobody'" in missing.text


def test_an_implanted_patients_device_page_links_its_trial_and_gives_relief_since_the_implant(viewer):
    """The device keeps its patient: its page says their relief at 3, 6 and 12 months against the baseline."""
    from dataclasses import replace as changed

    from protocols.messages import Capability
    from tests.fakes import IDENTITY, scs_status

    _trial_in_store(viewer.store)
    day, month = 86_400_000, round(365.25 / 12 * 86_400_000)
    implant = T0 + 14 * day
    later = [DiaryRecord(100 + m, implant + m * month - day, DiaryKind.NRS, 2, DiarySource.CONTROLLER) for m in (3, 6)]
    viewer.store.add_diary("pump a", later)
    gone = EventRecord(3, implant, EventCode.LIFECYCLE_CHANGED, Priority.NONE, AlarmState.NONE, 2, 1, Actor.CLINICIAN)
    viewer.store.add_events("pump a", [gone])
    viewer.store.flush()
    link = viewer.links["pump a"]
    link.identity = changed(IDENTITY, capabilities=IDENTITY.capabilities | Capability.DIARY)  # a stimulator
    link.status = changed(scs_status(), lifecycle=Lifecycle.IMPLANTED)
    page = texts(route(viewer, "/device/pump%20a"))
    assert "Trial and diary" in page
    assert "Relief since the implant, against the baseline: 3 months 73 %, 6 months 73 %." in page  # 7.5 -> 2


def test_the_diary_exports_as_csv_with_its_wire_names_and_units(viewer):
    _trial_in_store(viewer.store)
    response = viewer.web.client.get("/export/pump%20a/diary.csv")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["device", "seq", "time_utc", "time_ms", "kind", "value", "source"]
    assert len(rows) == 1 + 29 and rows[1][:2] == ["pump a", "1"] and rows[-1][4:] == ["RELIEF", "70", "CONTROLLER"]
    assert viewer.web.client.get("/export/nobody/diary.csv").status_code == 404
