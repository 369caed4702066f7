"""The emulated implants: pure device models (stimulator, pump), their clock, event log and alarms,
persistence, fault injection, and the one I/O loop serving them over a pty, a serial port or TCP.

Imports ``protocols`` (the codec and the device endpoint); never ``dashboard``.
"""
