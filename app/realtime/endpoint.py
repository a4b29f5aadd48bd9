"""WS /ws (SPEC section 6, endpoint 12): authenticate, subscribe, replay since an event id, then
live events and heartbeats, until the socket goes, its token expires or it falls behind.

Each socket is served by its own thread (the server's; a greenlet on the gevent worker), which
is the only one writing events to it; the hub only queues, so one slow socket never delays another. Close codes:
4001 authentication failed, 4002 token expired, 4003 access revoked (the person was deactivated,
deleted, or moved to another role or client while connected), 4008 too slow (outbox full), 4029 too many
sockets for one person in this process, 1008 no pong to the last ping (dead client), 1009 message too big,
1011 server error.
"""
from __future__ import annotations

import collections
import errno
import json
import logging
import random
import re
import socket
import struct
import threading
import time
from datetime import datetime, timezone

import psycopg
from flask import Flask, current_app, g, request
from flask_sock import Sock
from psycopg import sql
from simple_websocket import ConnectionClosed
from wsproto.events import Ping, TextMessage

from app import auth
from app.auth import Principal
from app.errors import ApiError
from app.connections import Counts, green, spread
from app.inputs import NotJson, loads
from app.ratelimits import spend
from app.realtime.channels import Channel, ChannelError
from app.realtime.gate import Gate
from app.realtime.hub import EVENT_COLUMNS, Hub, StreamEvent, Subscriber

log = logging.getLogger(__name__)
sock = Sock()

CLOSE_AUTH_FAILED = 4001
CLOSE_TOKEN_EXPIRED = 4002
CLOSE_ACCESS_REVOKED = 4003
CLOSE_TOO_SLOW = 4008
CLOSE_TOO_MANY_SOCKETS = 4029
TOO_MANY_SOCKETS_WAIT_SECONDS = 10.0
CLOSE_NO_PONG = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVER_ERROR = 1011
CLOSE_GOING_AWAY = 1001
CLOSE_REPLY_SECONDS = 1.0  # how long a client has to answer our close before the connection is shut
MAX_CHANNELS = 200
MAX_MESSAGE_BYTES = 16_384
DELIVERED_MEMORY = 10_000  # event ids remembered per socket, so replay and live never send one twice


# Open sockets per person (or agent) in this process: one token cannot take every connection a
# worker has (REALTIME_SOCKETS_PER_PERSON).
OPEN_SOCKETS = Counts()


class SocketGone(Exception):
    """The client went away (or stopped reading) while we wrote to it."""


class ProtocolError(Exception):
    """A message the client got wrong; answered with an error, the socket stays open."""

    def __init__(self, code: str, message: str, details=None):
        super().__init__(message)
        self.code, self.message, self.details = code, message, details



class _SerializedSocket:
    """simple-websocket's reader thread writes pings and pongs to the socket while the session
    thread writes events: one lock around every write, so frames never interleave. On gevent,
    each write also has a deadline (the send timeout), raised as an OSError like the kernel's."""

    def __init__(self, sock: socket.socket, send_seconds: int):
        self._sock = sock
        self._lock = threading.Lock()
        self._deadline = None
        if green():
            import gevent

            self._deadline = lambda: gevent.Timeout(send_seconds, OSError(errno.ETIMEDOUT, "send timed out"))

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)

    def sendall(self, data: bytes) -> None:
        with self._lock:
            if self._deadline is None:
                self._sock.sendall(data)
            else:
                with self._deadline():
                    self._sock.sendall(data)

    def close(self) -> None:
        """Shut the connection down before closing it: closing the descriptor alone leaves
        simple-websocket's reader thread blocked in recv() (see Session._close)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already shut down, or never connected
        self._sock.close()

    def __getattr__(self, name):
        return getattr(self._sock, name)


class _WakeEvent(threading.Event):
    """Replaces simple-websocket's receive event so an incoming message (or the client going
    away) also wakes the thread waiting on the subscriber's outbox."""

    def __init__(self, subscriber: Subscriber):
        super().__init__()
        self.subscriber = subscriber

    def set(self) -> None:
        super().set()
        self.subscriber.wake()


@sock.route("/ws")
def stream(ws):
    """One WebSocket connection: the realtime event stream."""
    app = current_app._get_current_object()
    Session(ws, app, app.extensions["realtime"]).run()


class Session:
    def __init__(self, ws, app: Flask, hub: Hub):
        self.ws = ws
        self.app = app
        self.hub = hub
        self.settings = app.config["SETTINGS"]
        self.request_id = g.get("request_id")
        self.principal: Principal | None = None
        self.expires_at: float | None = None
        self.since: int | None = None
        self.subscriber: Subscriber | None = None
        self._delivered: collections.OrderedDict[int, None] = collections.OrderedDict()

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        self.ws.sock = _SerializedSocket(self.ws.sock, self.settings.realtime_send_timeout_seconds)
        self._bound_send_time()
        try:
            if not self._authenticate():
                return
            owner = self.principal.actor_id
            ceiling = self.settings.realtime_sockets_per_person
            if not OPEN_SOCKETS.take(owner, ceiling):
                self._send_error("too_many_sockets", f"at most {ceiling} open sockets per person on one server "
                                 "process; close one (one socket carries every channel)")
                if green():  # closed after a while (a greenlet waits, not a thread): a client that
                    time.sleep(spread(TOO_MANY_SOCKETS_WAIT_SECONDS))  # reconnects at once cannot make the worker spin
                self._close(CLOSE_TOO_MANY_SOCKETS, "too many sockets")
                return
            try:
                self.hub.start()
                self.subscriber = Subscriber(self.principal, self.settings.realtime_queue_size)
                self._wake_on_receive(self.subscriber)
                self.hub.attach(self.subscriber)
                try:
                    self._serve()
                finally:
                    self.hub.detach(self.subscriber)
            finally:
                OPEN_SOCKETS.give_back(owner)
        except SocketGone:
            pass
        except ConnectionClosed:
            raise
        except Exception:
            log.exception("WebSocket session failed", extra={"request_id": self.request_id})
            self._close(CLOSE_SERVER_ERROR, "server error")

    def _serve(self) -> None:
        heartbeat = self.settings.realtime_heartbeat_seconds
        # Spread over the interval: sockets opened together must not all beat together (a
        # thousand pings in one instant delay every event behind them).
        next_heartbeat = time.monotonic() + heartbeat * random.uniform(0.5, 1.0)
        subscriber = self.subscriber
        while True:
            deadline = next_heartbeat
            if self.expires_at is not None:
                deadline = min(deadline, time.monotonic() + self.expires_at - time.time())
            subscriber.wait(max(0.0, deadline - time.monotonic()))
            while (raw := self.ws.receive(timeout=0)) is not None:
                self._handle(raw)
            if not self.ws.connected:
                return
            if subscriber.dropped_reason is not None:
                self._close(CLOSE_TOO_SLOW, subscriber.dropped_reason)
                return
            if subscriber.revoked_reason is not None:
                self._send_error("person_inactive", subscriber.revoked_reason)
                self._close(CLOSE_ACCESS_REVOKED, "access revoked")
                return
            if subscriber.going_away:
                self._close(CLOSE_GOING_AWAY, "server restarting: reconnect and resume with since")
                return
            if self.expires_at is not None and time.time() >= self.expires_at:
                self._send_error("token_expired", "the token has expired; reconnect with a fresh one")
                self._close(CLOSE_TOKEN_EXPIRED, "token expired")
                return
            for event in subscriber.take():
                self._send_event(event)
            if time.monotonic() >= next_heartbeat:
                if not self._beat():
                    return
                next_heartbeat = time.monotonic() + heartbeat

    def _beat(self) -> bool:
        """A ping (answered by any client's WebSocket layer) and a heartbeat message (seen by
        browser code, which cannot see pings). No pong since the last ping: the client is dead."""
        if not self.ws.pong_received:
            self._close(CLOSE_NO_PONG, "no pong to the last ping")
            return False
        self.ws.pong_received = False
        self._write(Ping())
        self._send_json({"type": "heartbeat", "timestamp": _now_iso()})
        return True

    # -- authentication ----------------------------------------------------------------------
    def _authenticate(self) -> bool:
        since = request.args.get("since")
        if since is not None:
            try:
                self.since = _event_id(since)
            except ProtocolError as error:
                self._send_error(error.code, error.message)
        try:
            if request.headers.get("X-API-Key") is not None or request.headers.get("Authorization"):
                # Agents, and clients that can set headers on the handshake (not browsers).
                self.principal = auth.authenticate(self.app)
                if self.principal.kind == "person":
                    self.expires_at = float(self.principal.claims["exp"])
            elif request.args.get("token"):
                self._accept_token(request.args["token"])
            else:
                self._accept_token(self._await_auth_message())
            self._refuse_expired(self.expires_at)
            self._require_current_person(self.principal)
        except ApiError as error:
            self._send_error(error.code, error.message)
            self._close(CLOSE_AUTH_FAILED, error.message[:120])
            return False
        self._send_json({"type": "authenticated", "role": self.principal.role, "expiresAt": self._expiry_iso()})
        return True

    @staticmethod
    def _refuse_expired(expires_at: float | None) -> None:
        """A token past its exp is refused here (4001), though REST still takes it within the few
        seconds of clock skew it allows: a socket would only be closed again at once (4002)."""
        if expires_at is not None and expires_at <= time.time():
            raise ApiError(401, "the token has expired", "token_expired")

    def _require_current_person(self, principal: Principal) -> None:
        """A person's token counts only while the person does (the check every request makes),
        asked through the gate: a reconnect storm is answered in batches."""
        if principal.kind != "person":
            return
        refusal = self.hub.gate.refusal(principal)
        if refusal is not None:
            raise ApiError(401, refusal, "person_inactive")

    def _await_auth_message(self) -> str:
        timeout = self.settings.realtime_auth_timeout_seconds
        raw = self.ws.receive(timeout=timeout)
        if raw is None:
            if green():  # the close comes a little later for each: refused together, not back together
                time.sleep(random.uniform(0, timeout))
            raise ApiError(401, f"send {{\"type\": \"auth\", \"token\": ...}} within {timeout} s, or ?token=",
                           "missing_credentials")
        try:
            message = loads(raw)
        except (TypeError, NotJson):
            message = None
        if not isinstance(message, dict) or message.get("type") != "auth" or not isinstance(message.get("token"), str):
            raise ApiError(401, 'the first message must be {"type": "auth", "token": "<access token>"}',
                           "missing_credentials")
        return message["token"]

    def _accept_token(self, token: str) -> None:
        claims = self.app.extensions["token_verifier"].verify(token.strip())
        self.principal = Principal.from_claims(claims)
        self.expires_at = float(claims["exp"])

    def _refresh(self, message: dict) -> None:
        """A fresh token for the same caller extends the connection past the old expiry."""
        token = message.get("token")
        if not isinstance(token, str) or self.expires_at is None:
            raise ProtocolError("invalid_message", "auth takes a token (agents need no refresh)")
        try:
            claims = self.app.extensions["token_verifier"].verify(token.strip())
        except ApiError as error:
            raise ProtocolError(error.code, error.message) from None
        fresh = Principal.from_claims(claims)
        if (fresh.claims.get("sub"), fresh.claims.get("app_metadata")) != \
                (self.principal.claims.get("sub"), self.principal.claims.get("app_metadata")):
            raise ProtocolError("token_mismatch", "a refreshed token must be for the same caller with the same role")
        try:
            self._refuse_expired(float(claims["exp"]))
            self._require_current_person(fresh)
        except ApiError as error:
            raise ProtocolError(error.code, error.message) from None
        self.expires_at = float(claims["exp"])
        self._send_json({"type": "authenticated", "role": fresh.role, "expiresAt": self._expiry_iso()})

    # -- messages ----------------------------------------------------------------------------
    def _handle(self, raw) -> None:
        if isinstance(raw, str) and len(raw.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
            # simple-websocket counts the characters of a text message; the limit is in bytes.
            self._close(CLOSE_TOO_BIG, f"a message is at most {MAX_MESSAGE_BYTES} bytes")
            raise SocketGone()
        try:
            message = self._parse(raw)
            kind = message.get("type")
            if kind == "subscribe":
                self._subscribe(message)
            elif kind == "unsubscribe":
                self._unsubscribe(message)
            elif kind == "auth":
                self._refresh(message)
            elif kind == "ping":
                self._send_json({"type": "pong", "timestamp": _now_iso()})
            else:
                raise ProtocolError("unknown_type", "type must be subscribe, unsubscribe, auth or ping")
        except ProtocolError as error:
            self._send_error(error.code, error.message, error.details)
        except ChannelError as error:
            self._send_error(error.code, error.message)
        except psycopg.OperationalError:
            self._send_error("unavailable", "the database is unavailable; retry")
        except SocketGone:
            raise
        except Exception:
            log.exception("WebSocket message failed", extra={"request_id": self.request_id})
            self._send_error("internal_error", "something went wrong on our side")

    @staticmethod
    def _parse(raw) -> dict:
        if not isinstance(raw, str):
            raise ProtocolError("invalid_message", "send JSON text messages")
        try:
            message = loads(raw)
        except NotJson as error:
            raise ProtocolError("invalid_json", f"the message is not JSON: {error}") from None
        if not isinstance(message, dict):
            raise ProtocolError("invalid_message", "a message is a JSON object with a type")
        return message

    def _subscribe(self, message: dict) -> None:
        channel = Channel.parse(message.get("channel"))
        since = _event_id(message["since"]) if message.get("since") is not None else self.since
        name = str(channel)
        subscriber = self.subscriber
        if name not in subscriber.channels:
            if len(subscriber.channels) >= MAX_CHANNELS:
                raise ProtocolError("too_many_channels", f"a socket may hold at most {MAX_CHANNELS} channels")
            self._authorize(channel)
            # Routed before the replay is read: whatever commits from now on arrives live, whatever
            # committed before is in the replay; the per-socket memory drops the overlap.
            self.hub.route(subscriber, name)
        self._send_json({"type": "subscribed", "channel": name})
        if since is not None:
            self._replay(channel, since)

    def _unsubscribe(self, message: dict) -> None:
        name = str(Channel.parse(message.get("channel")))
        if name not in self.subscriber.channels:
            raise ProtocolError("not_subscribed", f"not subscribed to {name}")
        self.hub.unroute(self.subscriber, name)
        self._send_json({"type": "unsubscribed", "channel": name})

    def _authorize(self, channel: Channel) -> None:
        """What the caller may not read through the REST API it may not subscribe to."""
        if channel.kind == "notifications" and self.principal.user_id is None:
            raise ChannelError("forbidden", "only people have notifications")
        if channel.kind in ("workflow", "task") and not self.hub.gate.visible(self.principal,
                                                                                                     channel):
            raise ChannelError("not_found", f"no {channel.kind} {channel.target} that you may see")

    def _replay(self, channel: Channel, since: int) -> None:
        """The channel's events after `since`, read under the caller's own claims (RLS decides);
        each replay spends the caller's budget of replays (app/ratelimits.py)."""
        try:
            spend("replays", self.principal.actor_id)
        except ApiError as refused:
            raise ProtocolError("rate_limited", refused.message, refused.details) from None
        limit = self.settings.realtime_replay_limit
        query = sql.SQL("select " + EVENT_COLUMNS + " from public.realtime_events where seq > {} and ({})"
                        " order by seq limit {}").format(since, channel.replay_filter(), limit + 1)
        with self.app.extensions["database"].transaction(self.principal) as conn:
            rows = conn.execute(query).fetchall()
            # Events after `since` may have been pruned (older than the retention): say so.
            expired = since < conn.execute("select public.realtime_pruned_up_to() as up_to").fetchone()["up_to"]
        sent = sum(self._send_event(StreamEvent.from_row(row)) for row in rows[:limit])
        # count: the events sent now (one this socket already had is not sent again).
        self._send_json({"type": "replayed", "channel": str(channel), "count": sent,
                         "complete": len(rows) <= limit and not expired, "expired": expired})

    # -- writing -----------------------------------------------------------------------------
    def _send_event(self, event: StreamEvent) -> bool:
        """Send it unless this socket already has; whether it was sent."""
        if event.seq in self._delivered:
            return False
        self._delivered[event.seq] = None
        if len(self._delivered) > DELIVERED_MEMORY:
            self._delivered.popitem(last=False)
        self._send_text(event.text_for(self.principal))  # the fields its caller may see (app/audience.py)
        return True

    def _send_error(self, code: str, message: str, details=None) -> None:
        """The SPEC's {"type": "error", "code", "message"} carrying the API's one error shape."""
        self._send_json({"type": "error", "code": code, "message": message,
                         "error": {"code": code, "message": message, "details": details, "requestId": self.request_id}})

    def _send_json(self, body: dict) -> None:
        self._send_text(json.dumps(body, separators=(",", ":")))

    def _send_text(self, text: str) -> None:
        self._write(TextMessage(data=text))

    def _write(self, frame) -> None:
        # sendall, not simple-websocket's send(): a send that times out must not leave half a frame.
        if not self.ws.connected:
            raise SocketGone()
        try:
            self.ws.sock.sendall(self.ws.ws.send(frame))
        except OSError:
            # Cut it: simple-websocket's reader thread then sees the end and stops cleanly.
            try:
                self.ws.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            raise SocketGone() from None

    def _close(self, code: int, reason: str) -> None:
        try:
            self.ws.close(reason=code, message=reason)
        except (ConnectionClosed, OSError):
            pass
        # simple-websocket's server side keeps its reader thread (not a daemon) on the socket
        # until the client answers the close; a client that never does would hold a stopping
        # worker until gunicorn kills it. The answer gets a moment, then the connection is shut.
        timer = threading.Timer(CLOSE_REPLY_SECONDS, self.ws.sock.close)
        timer.daemon = True
        timer.start()

    def _bound_send_time(self) -> None:
        """A client that stops reading fills its TCP window; our send then gives up after the
        configured time instead of holding this thread forever."""
        seconds = self.settings.realtime_send_timeout_seconds
        try:
            self.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, 0))
        except (OSError, AttributeError):
            log.debug("could not bound the socket's send time")

    def _wake_on_receive(self, subscriber: Subscriber) -> None:
        previous = self.ws.event
        self.ws.event = _WakeEvent(subscriber)
        if previous.is_set() or self.ws.input_buffer or not self.ws.connected:
            self.ws.event.set()

    def _expiry_iso(self) -> str | None:
        if self.expires_at is None:
            return None
        return datetime.fromtimestamp(self.expires_at, timezone.utc).isoformat().replace("+00:00", "Z")


EVENT_ID_TEXT = re.compile(r"[0-9]{1,19}")  # ASCII digits only (str.isdigit also takes ² and ١)


def _event_id(value) -> int:
    """An event id (`since`): a non-negative integer, as a number or a string of digits."""
    if isinstance(value, bool) or not (isinstance(value, int)
                                       or (isinstance(value, str) and EVENT_ID_TEXT.fullmatch(value))):
        raise ProtocolError("invalid_since", "since must be an event id (a non-negative integer)")
    number = int(value)
    if number < 0 or number > 2 ** 63 - 1:
        raise ProtocolError("invalid_since", "since must be an event id (a non-negative integer)")
    return number


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    # Pings come from the session thread (_beat), not simple-websocket's reader thread.
    app.config.setdefault("SOCK_SERVER_OPTIONS", {"max_message_size": MAX_MESSAGE_BYTES})
    metrics = app.extensions.get("metrics")
    app.extensions["realtime"] = Hub(settings.realtime_database_url or settings.database_url,
                                     settings.realtime_retention_hours, settings.realtime_prune_interval_seconds,
                                     gauge=metrics.websocket_connections if metrics else None,
                                     person_recheck_seconds=settings.realtime_person_recheck_seconds,
                                     gate=Gate(lambda: app.extensions["database"]))
    sock.init_app(app)
