"""The live dashboard (Dash): poller, history store, live UI and programming.

Talks to devices only through ``protocols.client``; never imports ``device_mock``.
"""
