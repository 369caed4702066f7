"""``implant-dashboard``: the live dashboard for one or more devices.

Each ``--port URL --key FILE`` pair (in order) is one device; ``--fleet MANIFEST`` adds every device
of a fleet manifest (``implant-mock`` writes one in its state directory; docs/fleet.md). A few link
threads (``--link-threads``) drive every device's link, waiting on their ports with one selector, so
a thousand devices need no thousand threads. The history goes to ``--db`` (SQLite by default). On
first run the users file is created with a clinician and a viewer account and their passwords are
printed once. Binds 127.0.0.1 unless told
otherwise, and never runs in debug mode.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from werkzeug.serving import make_server

from protocols.manifest import ManifestError, load_manifest
from protocols.transport import raise_fd_limit
from protocols.trials import TrialRule

from . import compression
from .app import create_app
from .auth import AuthConfigError, UserDB
from .deps import Deps
from .link import DeviceLink
from .link_pool import DEFAULT_WORKERS, LinkPool
from .session_db import SqliteSessions, load_or_create_secret
from .store import StoreError, open_store

log = logging.getLogger("implant-dashboard")
FDS_PER_DEVICE = 4  # the port, pyserial's two abort pipes, and one to spare per device
FDS_SPARE = 256  # the store's connections, the HTTP server and its clients, logs


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    p = argparse.ArgumentParser(prog="implant-dashboard", description=__doc__.splitlines()[0])
    p.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="URL",
        help="a device's pyserial URL or pty path (repeat per device; or --fleet)",
    )
    p.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="FILE",
        help="that device's pairing key file (same order as --port)",
    )
    p.add_argument(
        "--fleet",
        metavar="MANIFEST",
        help="a fleet manifest (JSON, version 1: name, kind, port and key file per device), "
        "such as the fleet.json implant-mock writes in its --state directory",
    )
    p.add_argument(
        "--link-threads",
        type=int,
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"threads that drive the device links, each link on one at a time (default {DEFAULT_WORKERS}); "
        "a device that stops answering holds one for up to its timeout",
    )
    p.add_argument(
        "--name", action="append", default=[], help="display name per device (default: device-1, device-2, ...)"
    )
    p.add_argument(
        "--db",
        default="sqlite:///dashboard-history.db",
        help="history store URL (default sqlite:///dashboard-history.db)",
    )
    p.add_argument(
        "--users",
        default="dashboard-users.json",
        help="users file; created with fresh passwords if missing (default dashboard-users.json)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; other addresses need --tls)"
    )
    p.add_argument("--http-port", type=int, default=8050, help="HTTP port (default 8050; 0 picks a free one)")
    p.add_argument("--poll", type=float, default=1.0, help="status poll interval per device, s (default 1.0)")
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=8 * 3600.0,
        help="log a session out after this many seconds without a person's action (default 8 h; polling is not one)",
    )
    p.add_argument(
        "--responder-threshold",
        type=float,
        default=50.0,
        help="percent relief a trial needs for the responder call (default 50, SPEC 4.7)",
    )
    p.add_argument(
        "--stale-after",
        type=float,
        default=5.0,
        help="mark data stale and raise a technical alarm after, s (default 5)",
    )
    p.add_argument(
        "--tls", action="store_true", help="the server sits behind TLS (Secure cookies; allows a non-loopback --host)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log link and request details")
    return p  # fmt: skip


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _devices(args: argparse.Namespace) -> list[tuple[str, str, str | Path]]:
    """(name, port, key file) of every device: the --port pairs, then the manifest's; names unique."""
    names = args.name + [f"device-{i + 1}" for i in range(len(args.name), len(args.port))]
    devices: list[tuple[str, str, str | Path]] = list(zip(names, args.port, args.key, strict=False))
    if args.fleet:
        devices += [(d.name, d.port, d.key) for d in load_manifest(args.fleet)]
    seen: set[str] = set()
    for name, _, _ in devices:
        if name in seen:
            raise ManifestError(f"device name {name!r} is given twice (--name and the manifest): names must differ")
        seen.add(name)
    return devices


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``implant-dashboard``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s: %(message)s"
    )
    # werkzeug turns its request log on at INFO by itself; keep it to -v.
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)
    if len(args.port) != len(args.key):
        print("implant-dashboard: give one --key per --port, in the same order", file=sys.stderr)
        return 2
    if not args.port and not args.fleet:
        print("implant-dashboard: give --fleet MANIFEST or a --port URL --key FILE pair per device", file=sys.stderr)
        return 2
    if args.link_threads < 1:
        print(f"implant-dashboard: --link-threads {args.link_threads}: at least 1", file=sys.stderr)
        return 2
    if args.idle_timeout <= 0:
        print(f"implant-dashboard: --idle-timeout {args.idle_timeout:g}: a number of seconds above 0", file=sys.stderr)
        return 2
    if not 0 < args.responder_threshold <= 100:
        print(
            f"implant-dashboard: --responder-threshold {args.responder_threshold:g}: a percent above 0, up to 100",
            file=sys.stderr,
        )
        return 2
    try:
        devices = _devices(args)
        # A pty and pyserial's two abort pipes per device, plus the store, the server and its clients.
        raise_fd_limit(len(devices) * FDS_PER_DEVICE + FDS_SPARE)
    except (ManifestError, OSError) as exc:
        print(f"implant-dashboard: {exc}", file=sys.stderr)
        return 2
    if not _loopback(args.host) and not args.tls:
        print(
            f"implant-dashboard: refusing to serve on {args.host} without --tls (patient data, programming)",
            file=sys.stderr,
        )
        return 2
    try:
        store = open_store(args.db)
    except StoreError as exc:
        print(f"implant-dashboard: {exc}", file=sys.stderr)
        return 2
    users_path = Path(args.users)
    try:
        if users_path.exists():
            users = UserDB.load(users_path)
        else:
            passwords = UserDB.create_default(users_path)
            users = UserDB.load(users_path)
            print(f"implant-dashboard: created {users_path} with new accounts (shown once):", flush=True)
            for user, password in passwords.items():
                print(f"  login {user} / {password}", flush=True)
        # Kept beside the accounts, so a restart logs nobody out: the cookie's signing key and the sessions.
        secret_key = load_or_create_secret(users_path.with_name("secret.key"))
        sessions = SqliteSessions(users_path.with_name("sessions.db"), args.idle_timeout)
    except (AuthConfigError, OSError, ValueError, sqlite3.Error) as exc:
        print(f"implant-dashboard: {exc}", file=sys.stderr)
        store.close()
        return 2
    pool = LinkPool(workers=args.link_threads).start()
    links = {
        name: DeviceLink(name, url, key, store, poll_s=args.poll, stale_after_s=args.stale_after, pool=pool)
        for name, url, key in devices
    }
    app = create_app(
        Deps(links, store, tick_s=1.0, trial_rule=TrialRule(threshold=args.responder_threshold / 100)),
        users,
        allowed_hosts={args.host, "127.0.0.1", "localhost"},
        tls=args.tls,
        idle_timeout_s=args.idle_timeout,
        secret_key=secret_key,
        sessions=sessions,
    )
    compression.warm_plotly(app.server)
    server = make_server(args.host, args.http_port, app.server, threaded=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for link in links.values():
        link.start()
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    print(
        f"implant-dashboard: http://{args.host}:{server.server_port}/ ({len(links)} device(s), history {args.db})",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        server.shutdown()
        thread.join(timeout=5)
        pool.stop()  # every link at once: each closes its session and port
        store.close()
    print("implant-dashboard: stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
