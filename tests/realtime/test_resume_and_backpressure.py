"""Resuming with since= (replay, then live, no gap and no duplicate) and a slow consumer being
dropped without delaying anyone else."""
from __future__ import annotations

import socket
import threading
import time

import psycopg
import websocket

from tests.db.world import CLIENT_A, PEOPLE
from tests.realtime.conftest import QUEUE_SIZE, SEND_TIMEOUT_SECONDS, event_seqs

OPERATOR = PEOPLE["operator"]


def test_resume_after_a_disconnect_replays_what_was_missed(service):
    workflow_id = service.create_workflow(OPERATOR, CLIENT_A)
    sock = service.connect(OPERATOR)
    sock.subscribe(f"workflow:{workflow_id}")
    service.act(OPERATOR, workflow_id, "start")
    first = sock.events_until(lambda events: len(events) >= 1)[0]
    sock.close()

    service.act(OPERATOR, workflow_id, "pause")  # while nobody listens
    service.act(OPERATOR, workflow_id, "resume")
    sock = service.connect(OPERATOR, f"since={first['id']}")
    sock.subscribe(f"workflow:{workflow_id}")
    replayed = []
    message = sock.receive()
    while message["type"] != "replayed":
        replayed.append(message)
        message = sock.receive()
    assert message["complete"] is True and message["count"] == len(replayed)
    missed = event_seqs(service.database_url, "workflow_id = %s and seq > %s and event_type <> 'hil_notification'",
                        (workflow_id, first["id"]))
    assert [e["id"] for e in replayed] == missed
    assert [e["status"] for e in replayed if e["type"] == "workflow_status_changed"][-2:] == ["PAUSED", "IN_PROGRESS"]

    service.act(OPERATOR, workflow_id, "pause")  # and live again
    live = sock.events_until(lambda events: any(e.get("status") == "PAUSED" for e in events))
    assert live and live[0]["id"] > replayed[-1]["id"]
    sock.close()


def test_resuming_while_changes_keep_committing_loses_and_repeats_nothing(service):
    workflow_id = service.create_workflow(OPERATOR, CLIENT_A)
    service.act(OPERATOR, workflow_id, "start")
    since = event_seqs(service.database_url, "workflow_id = %s", (workflow_id,))[-1]
    stop = threading.Event()

    def keep_changing():
        while not stop.is_set():
            service.act(OPERATOR, workflow_id, "pause")
            service.act(OPERATOR, workflow_id, "resume")

    writer = threading.Thread(target=keep_changing)
    writer.start()
    try:
        time.sleep(0.3)
        sock = service.connect(OPERATOR, f"since={since}")
        sock.subscribe(f"workflow:{workflow_id}")
        received = sock.events_until(lambda events: len(events) >= 12, timeout=15)
    finally:
        stop.set()
        writer.join()
    everything = event_seqs(service.database_url, "workflow_id = %s and seq > %s and event_type <> 'hil_notification'",
                            (workflow_id, since))
    received += sock.events_until(lambda events: everything[-1] in {e["id"] for e in received + events})
    received += sock.quiet_events(0.3)
    ids = [e["id"] for e in received]
    assert len(ids) == len(set(ids)), "an event came twice"
    assert sorted(ids) == everything, "an event was lost"
    sock.close()


def test_a_slow_consumer_is_dropped_and_never_delays_the_others(service):
    before = service.health()
    fast = service.connect(OPERATOR)
    fast.subscribe("notifications")
    # A client that stops reading with a tiny receive window: the server's writes to it block.
    slow = service.connect(OPERATOR, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    slow.subscribe("notifications")
    count, size = QUEUE_SIZE * 3, 48_000  # far more than the socket buffers hold
    committed_at: dict[str, float] = {}
    received: list[tuple[dict, float]] = []
    deadline = time.monotonic() + 60

    def commit_notifications():
        with psycopg.connect(service.database_url, autocommit=True) as conn:
            for i in range(count):
                # A stream the fast client keeps up with, however busy the machine: never more
                # than 10 events ahead of what it has read (so the server's pings are not buried
                # behind megabytes and it answers them in time). The slow client reads nothing,
                # so its queue still fills.
                while i - len(received) > 10 and time.monotonic() < deadline:
                    time.sleep(0.002)
                conn.execute("insert into public.notifications (recipient_id, notification_type, title, message) "
                             "values (%s, 'WORKFLOW_UPDATE', %s, repeat('x', %s))", (OPERATOR.user_id, f"bulk {i}", size))
                committed_at[f"bulk {i}"] = time.monotonic()

    writer = threading.Thread(target=commit_notifications)
    writer.start()
    while len(received) < count and time.monotonic() < deadline:
        message = fast.receive(timeout=1)
        if message is not None and "id" in message:
            received.append((message, time.monotonic()))
    writer.join()
    assert len(received) == count and len({m["id"] for m, _ in received}) == count
    # Had the hub waited on the slow socket, some event would have waited for its send timeout.
    worst = max(at - committed_at[m["title"]] for m, at in received)
    assert worst < SEND_TIMEOUT_SECONDS, f"the fast consumer was held up {worst:.2f} s"

    after = service.wait_for_health(lambda h: h["droppedSlowConsumers"] > before["droppedSlowConsumers"])
    assert after["droppedSlowConsumers"] == before["droppedSlowConsumers"] + 1
    # The slow client finds its socket closed: with code 4008 if it catches up in time, or cut
    # if its window stayed full past the send timeout. A client that stops reading also stops
    # answering pings, so on a busy machine the heartbeat may notice first and close with 1008
    # (dead client); the counter above shows it was dropped as a slow consumer either way.
    slow.ws.settimeout(10)
    code = None
    try:
        while True:
            opcode, frame = slow.ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(frame.data[:2], "big")
                break
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        code = "cut"
    assert code in (4008, 1008, "cut")
    fast.send({"type": "ping"})
    assert fast.expect("pong")
    fast.close()


def test_resuming_from_before_pruned_events_says_the_replay_is_incomplete(service):
    """Events older than the retention are gone: a client resuming from before them is told so
    (and resuming from after them is not)."""
    workflow_id = service.create_workflow(OPERATOR, CLIENT_A)
    with psycopg.connect(service.database_url, autocommit=True) as conn:  # an event past the retention
        old = conn.execute("""insert into public.realtime_events (event_type, workflow_id, client_id, payload, created_at)
                              values ('workflow_status_changed', %s, %s, '{}', now() - interval '10 days')
                              returning seq""", (workflow_id, CLIENT_A)).fetchone()[0]
    service.act(OPERATOR, workflow_id, "start")
    seqs = [old] + [seq for seq in event_seqs(service.database_url, "workflow_id = %s", (workflow_id,)) if seq > old]
    with psycopg.connect(service.database_url, autocommit=True) as conn:
        conn.execute("set role service_role")
        assert conn.execute("select public.prune_realtime_events(interval '7 days')").fetchone()[0] >= 1
        pruned_up_to = conn.execute("select public.realtime_pruned_up_to()").fetchone()[0]
    assert pruned_up_to >= seqs[0]

    def replay_end(since: int) -> dict:
        sock = service.connect(OPERATOR, f"since={since}")
        sock.subscribe(f"workflow:{workflow_id}")
        message = sock.receive()
        while message["type"] != "replayed":
            message = sock.receive()
        sock.close()
        return message

    before = replay_end(seqs[0] - 1)
    assert (before["complete"], before["expired"]) == (False, True)
    after = replay_end(max(pruned_up_to, seqs[-1]))
    assert (after["complete"], after["expired"]) == (True, False)
