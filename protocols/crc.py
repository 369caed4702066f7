"""The frame check sequence: CRC-32C (Castagnoli), computed by the C-accelerated ``crc32c`` package.

Catalogue parameters (RevEng "CRC-32/ISCSI"):

=========  ==========
width      32
poly       0x1EDC6F41 (reflected 0x82F63B78)
init       0xFFFFFFFF
refin      true
refout     true
xorout     0xFFFFFFFF
check      0xE3069283 over b"123456789"
=========  ==========

Chosen over CRC-16 and zlib's CRC-32 because it keeps Hamming distance 6 up to 5,243 data bits
(655 bytes), which covers our largest frame: every 1- to 5-bit error is detected. A CRC only
separates line noise from forgery in the counters; authenticity comes from the MAC in ``auth``.
"""

from __future__ import annotations

import crc32c as _crc32c

CRC_NAME = "CRC-32C"
CRC_POLY = 0x1EDC6F41
CRC_INIT = 0xFFFFFFFF
CRC_REFLECTED = True
CRC_XOROUT = 0xFFFFFFFF
CRC_CHECK = 0xE3069283
CRC_SIZE = 4
# The CRC of data followed by its own CRC (little-endian) is this constant for every data: a
# receiver checks a frame in one call. A test derives it from the parameters above.
CRC_RESIDUE = 0x48674BC7


# The package's function itself, not a wrapper: it runs twice per poll on each side.
# crc32c(data: bytes | bytearray | memoryview) -> int, with init and xor-out already applied.
crc32c = _crc32c.crc32c
