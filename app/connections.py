"""Open connections per peer address, counted by the worker process that accepted them.

A peer that opens connections and never finishes a request (idle, slow headers, a body that
never comes, `Expect: 100-continue` and nothing after) costs the server a connection slot each
for as long as it waits. The read deadlines bound how long; this bounds how many: past
CONNECTIONS_PER_ADDRESS open connections from one address in one worker, a new one from that
address is answered 429 in the API's error shape and closed, after about TARPIT_SECONDS: a peer that
reopens what was refused as fast as it can would otherwise keep the worker accepting and
refusing, and everyone else's connections would queue behind that. While as many connections of
an address wait there as it may hold open, the next ones are closed at once without a word.
Other addresses are not affected. A trusted proxy (TRUSTED_PROXIES) is never capped here: every client behind it shares
its address, and the proxy caps its own clients (docs/security.md shows HAProxy's settings).

Imported by the worker after gevent has patched the standard library (app.server_gevent).
"""
from __future__ import annotations

import collections
import ipaddress
import random
import sys
import threading


TARPIT_SECONDS = 10.0


class Counts:
    """How many of something each key holds, with a ceiling: one key (an address, a person)
    cannot take what everyone shares. Thread- and greenlet-safe."""

    def __init__(self):
        self._held: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def take(self, key: str, ceiling: int) -> bool:
        """Count one more for `key`; False (counted nothing) when it holds `ceiling` already."""
        with self._lock:
            if self._held[key] >= ceiling:
                return False
            self._held[key] += 1
            return True

    def give_back(self, key: str) -> None:
        with self._lock:
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]

    def of(self, key: str) -> int:
        with self._lock:
            return self._held[key]


class AddressCap:
    """Open connections by peer address, with a ceiling per address; and the connections held
    before their refusal (the tarpit), with the same ceiling."""

    def __init__(self, per_address: int, trusted: tuple = ()):
        self.per_address = per_address
        self.trusted = trusted
        self.open = Counts()
        self.held = Counts()

    @classmethod
    def from_settings(cls, settings) -> "AddressCap":
        return cls(settings.connections_per_address, settings.trusted_proxies)

    def exempt(self, address: str) -> bool:
        return self.per_address <= 0 or is_trusted(address, self.trusted)

    def admit(self, address: str) -> bool:
        """Count a new connection from `address`; False (counted nothing) when it is one too many."""
        return self.exempt(address) or self.open.take(address, self.per_address)

    def release(self, address: str) -> None:
        if not self.exempt(address):
            self.open.give_back(address)


def is_trusted(address: str | None, trusted: tuple) -> bool:
    if not trusted or not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def peer_address(addr) -> str:
    """The host part of what accept() returned (a (host, port[, ...]) tuple; a path on a unix socket)."""
    return addr[0] if isinstance(addr, tuple) and addr else str(addr)


def green() -> bool:
    """True in a gevent worker (the standard library patched): waiting costs a greenlet, not a
    thread; sockets are non-blocking under the hood, so the kernel's send timeout does not apply
    and a deadline bounds sends."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


def spread(seconds: float) -> float:
    """A wait of about `seconds` (between half and one and a half times it): peers refused
    together come back spread out, not all at once (a burst of reconnects is what would stall
    everyone else's requests on an event loop)."""
    return random.uniform(seconds / 2, seconds * 1.5)


def refuse_connection(cap: AddressCap, address: str, client, wait) -> None:
    """A connection one too many from its address: held TARPIT_SECONDS (`wait` sleeps without
    holding anything else up), then answered 429 in the error shape and closed; closed at once
    when the tarpit already holds as many of that address's connections as it may keep open."""
    from gunicorn import util

    from app.server import write_error

    if not cap.held.take(address, cap.per_address):
        util.close(client)
        return
    try:
        wait(spread(TARPIT_SECONDS))
        write_error(client, 429, "Too Many Requests",
                    f"too many open connections from this address (at most {cap.per_address} at once); "
                    "close some and retry")
    except OSError:
        pass
    finally:
        cap.held.give_back(address)
        util.close(client)
