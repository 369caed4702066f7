"""The fleet overview in a real browser with 60 devices: sort, filter, search and paging, words only.

The app is the real one, served in-process on a free port with fake links of varied alarms and link
states (tests/dashboard/fleet_fakes.py), so what each control must show is known exactly.
"""

from __future__ import annotations

import re
import threading

import pytest
from werkzeug.serving import make_server

from dashboard.app import create_app
from dashboard.auth import UserDB
from dashboard.deps import Deps
from dashboard.store import open_store
from tests.dashboard.fleet_fakes import expected, fleet_links

N = 60
WIRE = re.compile(r"[A-Z]+_[A-Z_]+")
ROWS = "#overview-table tbody tr[id^=row-]"


@pytest.fixture(scope="module")
def fleet_url(tmp_path_factory, browser):
    folder = tmp_path_factory.mktemp("fleet-browser")
    passwords = UserDB.create_default(folder / "users.json")
    store = open_store(f"sqlite:///{folder / 'history.db'}")
    app = create_app(Deps(fleet_links(N), store), UserDB.load(folder / "users.json"))
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="overview-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", passwords["viewer"]
    finally:
        server.shutdown()
        thread.join(timeout=5)
        store.close()


def names(page) -> list[str]:
    return page.eval_on_selector_all(ROWS, "(rows) => rows.map((r) => r.querySelector('td a').innerText)")


def wait_names(page, check, what: str) -> list[str]:
    """Poll the table until ``check(names)`` holds (each tick redraws it)."""
    for _ in range(100):
        shown = names(page)
        if shown and check(shown):
            return shown
        page.wait_for_timeout(100)
    raise AssertionError(f"the table never showed {what}: {names(page)}")


def choose(page, control: str, option: str) -> None:
    page.click(f"#{control}")
    page.get_by_role("option", name=option, exact=True).click()


def test_the_overview_sorts_filters_searches_and_pages(page, fleet_url):
    url, password = fleet_url
    page.goto(url)
    page.fill("input[name=username]", "viewer")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector(ROWS)
    want = expected(N)
    counts = page.inner_text("#overview-counts")
    assert f"{N} devices" in counts and f"High alarm: {want['high']}" in counts
    first = page.inner_text(ROWS)
    assert re.search(r"Lead open|Motor stall", first)  # the worst first
    assert page.locator(ROWS).count() == 25
    assert "Page 1 of 3" in page.inner_text("#overview-page-text")

    page.click("#overview-next")
    page.wait_for_selector("#overview-page-text >> text=Page 2 of 3")
    page.click("#overview-next")
    page.wait_for_selector("#overview-page-text >> text=Page 3 of 3")
    assert page.locator(ROWS).count() == N - 50
    page.click("#overview-next")  # no page 4
    page.wait_for_timeout(300)
    assert "Page 3 of 3" in page.inner_text("#overview-page-text")

    page.locator(
        ".fleet-sort", has_text=re.compile("^Device")
    ).click()  # sort by name: back to page 1, A to Z, naturally
    wait_names(page, lambda n: n[:3] == ["pump-1", "pump-2", "pump-3"], "names A to Z")
    assert "Page 1 of 3" in page.inner_text("#overview-page-text")
    page.locator(".fleet-sort", has_text="Device ▲").click()
    wait_names(page, lambda n: n[0] == "scs-30", "names Z to A")

    page.fill("#overview-search", "pump-2")
    searched = {"pump-2", *(f"pump-2{d}" for d in range(10))}
    wait_names(page, lambda n: set(n) == searched, "the search")
    page.fill("#overview-search", "")
    choose(page, "overview-kind", "Pump")
    wait_names(page, lambda n: all(x.startswith("pump-") for x in n) and len(n) == 25, "pumps only")
    choose(page, "overview-link", "Offline")
    shown = wait_names(page, lambda n: len(n) == sum(1 for i in range(1, N, 2) if i % 11 == 10), "offline pumps")
    assert all("Offline" in page.inner_text(f'[id="row-{name}"]') for name in shown)

    text = page.inner_text("#page")
    assert not WIRE.search(text), WIRE.search(text)
    assert "µL" not in text and "_ua" not in text
