"""Device names in URL paths: quoted as one segment when a link is built, decoded once when read back."""

from __future__ import annotations

import pytest

from dashboard import paths

AWKWARD = ["pump a", "pump<1>", 'say "hi"', "a/b", "50%", "50%25", "x#y?z=1", "pompe é", "=cmd"]


@pytest.mark.parametrize("name", AWKWARD)
def test_a_device_page_path_decodes_back_to_its_name(name):
    href = paths.device_href(name)
    assert not set(href.removeprefix("/device/")) & set(' <>"/#?')  # one segment, nothing the browser rewrites
    assert paths.device_from_pathname(href) == name


def test_pathnames_as_the_browser_sends_them():
    assert paths.device_from_pathname("/device/pump%20a") == "pump a"
    assert paths.device_from_pathname("/device/pump%3C1%3E") == "pump<1>"
    assert paths.device_from_pathname("/device/50%2525") == "50%25"  # decoded once, not twice
    assert paths.device_from_pathname("/") is None
    assert paths.device_from_pathname(None) is None


def test_export_links_quote_the_name():
    assert paths.export_href("pump a", "series.csv") == "/export/pump%20a/series.csv"
    assert paths.export_href("pump<1>", "events.csv") == "/export/pump%3C1%3E/events.csv"


def test_download_names_are_quoted_in_the_header():
    header = paths.attachment('pump "a"\r\n<1>-series.csv')
    assert "\r" not in header and "\n" not in header
    assert header.startswith('attachment; filename="pump_a_1_-series.csv"; ')
    assert header.endswith("filename*=UTF-8''pump%20%22a%22%0D%0A%3C1%3E-series.csv")
