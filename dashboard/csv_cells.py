"""The one CSV writer of every dashboard export, and its defence against formula injection.

A spreadsheet opening a CSV runs a text cell that begins with ``=``, ``+``, ``-`` or ``@`` (and,
in some, a tab or carriage return) as a formula: ``=HYPERLINK(...)`` in a device name, a series
name or a user name would run on the clinician's machine (OWASP "CSV Injection"). Every text cell,
header or value, that begins with one of those is written with a single quote ``'`` in front, which
spreadsheets show as text. Numbers are written as numbers (``-1.5`` stays ``-1.5``): write them as
``int`` or ``float``, never pre-formatted as text.

So that an export can be read back exactly (the audit CSV is verified off the machine), a cell that
already begins with quotes followed by one of those characters gets one more quote, and
:func:`restore` removes exactly one: ``restore(neutralise(s)) == s`` for every string.

Owns: :func:`writer`, :func:`neutralise`, :func:`restore`. Pure: must not import Dash, Flask, the
store, the device link or ``device_mock``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_STARTS = "=+-@\t\r"
_NEEDS_QUOTE = re.compile(r"'*[=+\-@\t\r]")
_QUOTED = re.compile(r"'+[=+\-@\t\r]")


def neutralise(text: str) -> str:
    """``text`` with ``'`` in front when a spreadsheet would take it for a formula (see the module docstring)."""
    return "'" + text if _NEEDS_QUOTE.match(text) else text


def restore(text: str) -> str:
    """The text :func:`neutralise` was given, from what it wrote."""
    return text[1:] if _QUOTED.match(text) else text


def cell(value: Any) -> Any:
    """A CSV cell: text neutralised; ``int``, ``float``, ``None`` and the rest left to the csv module."""
    return neutralise(value) if isinstance(value, str) else value


class SafeWriter:
    """A ``csv.writer`` whose every row, the header included, goes through :func:`cell`."""

    def __init__(self, out: TextIO) -> None:
        self._writer = csv.writer(out, lineterminator="\n")

    def writerow(self, row: Iterable[Any]) -> None:
        """Write one row."""
        self._writer.writerow([cell(value) for value in row])


def writer(out: TextIO) -> SafeWriter:
    """The writer every dashboard CSV export uses (UTF-8 text, ``\\n`` line ends, formula-safe cells)."""
    return SafeWriter(out)
