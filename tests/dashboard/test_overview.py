"""The fleet overview (views/overview.py, views/fleet_table.py): worst first, counts, filters, search,
sorting and paging on the server, and words, not wire names, in what it shows.

Through the real app (Flask test client, ``AppHarness``) with 60 fake links of varied alarms and
link states (``fleet_fakes``); the ranking itself also directly on rows.
"""

from __future__ import annotations

import re

import pytest

from dashboard import ids
from dashboard.app import create_app
from dashboard.auth import UserDB
from dashboard.deps import Deps
from dashboard.store import open_store
from dashboard.views import fleet_table as ft
from tests.dashboard.app_harness import AppHarness, texts
from tests.dashboard.fleet_fakes import classify, expected, fleet_links

N = 60
WIRE = re.compile(r"[A-Z]+_[A-Z_]+")
TABLE_INPUTS = ("search", "kind", "alarm", "link")


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    folder = tmp_path_factory.mktemp("overview")
    passwords = UserDB.create_default(folder / "users.json")
    store = open_store(f"sqlite:///{folder / 'history.db'}")
    app = create_app(Deps(fleet_links(N), store), UserDB.load(folder / "users.json"))
    harness = AppHarness(app.server.test_client())
    assert harness.login("viewer", passwords["viewer"]).status_code == 303
    yield harness
    store.close()


def draw(web, search="", kind="all", alarm="all", link="all", sort=None, page=0):
    """The overview callback as the browser posts it; returns (counts text, rows, pager text)."""
    values = {
        "tick-fleet.n_intervals": 1,
        f"{ids.OVERVIEW_SEARCH}.value": search,
        f"{ids.OVERVIEW_KIND}.value": kind,
        f"{ids.OVERVIEW_ALARM}.value": alarm,
        f"{ids.OVERVIEW_LINK}.value": link,
        f"{ids.OVERVIEW_SORT}.data": sort or {"column": "alarm", "descending": True},
        f"{ids.OVERVIEW_PAGE}.data": page,
    }
    response = web.call(ids.OVERVIEW_COUNTS, "tick-fleet.n_intervals", values)
    assert response.status_code == 200, response.text
    out = response.json["response"]
    head, body = out[ids.OVERVIEW_TABLE]["children"]
    rows = [
        [texts(cell) for cell in tr["props"]["children"]] for tr in body["props"]["children"] if "id" in tr["props"]
    ]
    return texts(out[ids.OVERVIEW_COUNTS]["children"]), rows, out[ids.OVERVIEW_PAGE_TEXT]["children"], head


def test_first_page_is_worst_first_with_counts_of_the_whole_fleet(web):
    counts, rows, pager, head = draw(web)
    want = expected(N)
    assert f"{N} devices" in counts
    assert f"High alarm: {want['high']}" in counts and f"Medium alarm: {want['medium']}" in counts
    assert f"Low alarm: {want['low']}" in counts
    assert f"Technical alarm: {want['offline'] + want['stale']}" in counts
    assert f"Offline: {want['offline']}" in counts and f"Stale: {want['stale']}" in counts
    assert len(rows) == ft.PAGE_SIZE and pager == f"Page 1 of 3 (devices 1-25 of {N})"
    alarms = [row[3] for row in rows]
    ranks = [
        4 if a.startswith(("Lead open", "Motor stall")) else 3 if a.startswith("Low reservoir") else 2 for a in alarms
    ]
    assert ranks == sorted(ranks, reverse=True) and ranks[0] == 4
    assert alarms[0] in ("Lead open", "Motor stall")
    assert "Worst alarm" in texts(head)


def test_technical_alarms_rank_below_low_and_above_none():
    links = fleet_links(N)
    rows = ft.ordered([ft.row(link.snapshot()) for link in links.values()])
    ranks = [r.alarm_rank for r in rows]
    assert ranks == sorted(ranks, reverse=True)
    assert {r.alarm for r in rows if r.alarm_rank == ft.TECHNICAL} == {
        "No reply: link timeout after 4 tries",  # the wire name inside the link's error, as words
        "No data for 9.0 s",
    }
    assert rows[-1].alarm_rank == 0


def test_every_page_is_words_not_wire_names(web):
    for page in range(3):
        counts, rows, pager, head = draw(web, page=page)
        shown = " ".join([counts, pager, texts(head), *(" ".join(r) for r in rows)])
        assert not WIRE.search(shown), WIRE.search(shown)
        assert "µL" not in shown and "_ua" not in shown and "_ul" not in shown


def test_paging_walks_every_device_once(web):
    seen = []
    for page in range(3):
        _, rows, pager, _ = draw(web, page=page)
        seen += [row[0] for row in rows]
    assert len(seen) == N == len(set(seen))
    _, rows, pager, _ = draw(web, page=99)  # past the end: the last page
    assert pager == f"Page 3 of 3 (devices 51-{N} of {N})" and len(rows) == N - 50


def test_search_matches_a_name_or_a_serial_in_part_in_any_case(web):
    _, rows, _, _ = draw(web, search="PUMP-1", sort={"column": "name", "descending": False})
    assert [row[0] for row in rows] == ["pump-1", *(f"pump-1{d}" for d in range(10))]
    serial = fleet_links(N)["scs-3"].snapshot().identity.serial
    _, rows, _, _ = draw(web, search=serial[-4:].lower())
    assert "scs-3" in [row[0] for row in rows]
    counts, rows, pager, _ = draw(web, search="no such device")
    assert rows == [] and pager.startswith("Page 1 of 1 (devices 0-0 of 0)") and "0 match the filters" in counts


@pytest.mark.parametrize(
    ("field", "value", "check"),
    [
        ("kind", "Pump", lambda row: row[1] == "Pump"),
        ("alarm", "Medium", lambda row: row[3].startswith("Low reservoir")),
        ("alarm", "None", lambda row: row[3] == "—"),
        ("link", "offline", lambda row: row[4] == "Offline"),
        ("link", "stale", lambda row: row[4] == "Stale"),
    ],
)
def test_each_filter_keeps_only_its_devices(web, field, value, check):
    counts, rows, _, _ = draw(web, **{field: value})
    assert rows and all(check(row) for row in rows)
    n = int(re.search(r"(\d+) match the filters", counts).group(1))
    want = {
        ("kind", "Pump"): N // 2,
        ("alarm", "Medium"): expected(N)["medium"],
        ("link", "offline"): expected(N)["offline"],
        ("link", "stale"): expected(N)["stale"],
        ("alarm", "None"): expected(N)["ok"],
    }[(field, value)]
    assert n == want


def test_sorting_by_name_is_natural_and_a_second_click_reverses(web):
    _, rows, _, head = draw(web, sort={"column": "name", "descending": False})
    names = [row[0] for row in rows]
    assert names[:4] == ["pump-1", "pump-2", "pump-3", "pump-4"]
    assert "Device ▲" in texts(head)
    _, rows, _, head = draw(web, sort={"column": "name", "descending": True})
    assert rows[0][0] == "scs-30" and "Device ▼" in texts(head)
    _, rows, _, _ = draw(web, sort={"column": "battery", "descending": False})
    batteries = [float(row[5].split()[0]) for row in rows]
    assert batteries == sorted(batteries)


def test_the_sort_buttons_toggle_and_a_new_filter_goes_back_to_page_one(web):
    button = {"column": "name", "type": ids.OVERVIEW_SORT_BUTTON}
    body = {
        "output": f"{ids.OVERVIEW_SORT}.data",
        "outputs": {"id": ids.OVERVIEW_SORT, "property": "data"},
        "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]],
        "state": [{"id": ids.OVERVIEW_SORT, "property": "data", "value": {"column": "name", "descending": False}}],
        "changedPropIds": ['{"column":"name","type":"' + ids.OVERVIEW_SORT_BUTTON + '"}.n_clicks'],
    }
    from tests.dashboard.app_harness import SAME_ORIGIN

    response = web.client.post("/_dash-update-component", json=body, headers=SAME_ORIGIN)
    assert response.json["response"][ids.OVERVIEW_SORT]["data"] == {"column": "name", "descending": True}
    values = {f"{ids.OVERVIEW_PAGE}.data": 2, f"{ids.OVERVIEW_SEARCH}.value": "scs"}
    response = web.call(ids.OVERVIEW_PAGE, f"{ids.OVERVIEW_SEARCH}.value", values)
    assert response.json["response"][ids.OVERVIEW_PAGE]["data"] == 0


def test_a_forged_filter_value_shows_nothing_and_breaks_nothing(web):
    counts, rows, _, _ = draw(web, kind={"$ne": 1}, alarm="HIGH", sort={"column": "__class__"})
    assert rows == [] and f"{N} devices" in counts


def test_row_classes_follow_the_fakes():
    assert [classify(i) for i in range(9)] == ["ok", "ok", "ok", "ok", "low", "ok", "medium", "ok", "high"]
