"""Random draws that are a function of a seed and a name, not of how many draws came before.

A diary entry's noise is drawn from (seed, patient, slot), so a patient's diary is the same however
a device steps its time (a week in one advance or in ten thousand) and after a restart from saved
state: no generator state to save. BLAKE2b (stdlib ``hashlib``) turns the key into 64 bits.

Imports only the standard library.
"""

from __future__ import annotations

import hashlib
from statistics import NormalDist

_STANDARD = NormalDist()
_SCALE = float(1 << 64)


def uniform(*key: object) -> float:
    """A uniform draw in (0, 1) fixed by ``key``."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / _SCALE


def normal(*key: object) -> float:
    """A standard normal draw fixed by ``key``."""
    return _STANDARD.inv_cdf(uniform(*key))
