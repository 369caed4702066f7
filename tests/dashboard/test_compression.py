"""Compressed responses: Dash's bundles go out brotli- or gzip-compressed, big ones from a best copy."""

from __future__ import annotations

import re
import time

import brotli
import pytest

from dashboard.app import create_app
from dashboard.auth import UserDB
from dashboard.compression import BestCopies
from dashboard.deps import Deps
from dashboard.store import open_store
from tests.dashboard.app_harness import AppHarness, FakeLink


@pytest.fixture
def web(tmp_path):
    passwords = UserDB.create_default(tmp_path / "users.json")
    store = open_store(f"sqlite:///{tmp_path / 'history.db'}")
    harness = AppHarness(
        create_app(Deps({"scs-1": FakeLink("scs-1")}, store), UserDB.load(tmp_path / "users.json")).server.test_client()
    )
    assert harness.login("viewer", passwords["viewer"]).status_code == 303
    yield harness
    store.close()


@pytest.mark.parametrize("encoding", ["br", "gzip"])
def test_a_dash_bundle_is_sent_compressed(web, encoding):
    index = web.client.get("/").text
    src = next(s for s in re.findall(r'src="([^"]+)"', index) if "dash_core_components" in s)
    plain = web.client.get(src, headers={"Accept-Encoding": "identity"})
    packed = web.client.get(src, headers={"Accept-Encoding": encoding})
    assert packed.headers["Content-Encoding"] == encoding
    assert len(packed.data) < len(plain.data) / 3
    assert "Content-Encoding" not in plain.headers


def test_the_best_copy_is_made_once_off_the_request_and_decompresses_to_the_bundle():
    copies = BestCopies()
    body = b"".join(b"function f%d(){return %d}\n" % (i, i * 7) for i in range(20_000))
    assert copies.get(body) is None  # not ready: the caller sends the fast copy meanwhile
    deadline = time.monotonic() + 60
    while (copy := copies.get(body)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert copy is not None and brotli.decompress(copy) == body
