"""The realtime gate (app/realtime/gate.py) answers the sockets' connect and subscribe checks in
batches, and each answer is the one the caller's own request transaction gives: visibility for
every kind of caller and every workflow and task, refusals word for word for every way a person
stops counting. Then a reconnect storm on a running service: hundreds of sockets at once through
a pool of two connections all get in."""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import uuid

import psycopg
import pytest
import requests
from websockets.asyncio.client import connect

from app.auth import Principal
from app.db import Database
from app.errors import from_database_error
from app.realtime.channels import Channel
from app.realtime.gate import Gate
from tests.db.world import CLIENT_B, CLIENT_PERSON_CHANGES, PEOPLE, row
from tests.perf.bench_api import free_port, start_service
from tests.realtime.conftest import service_env, stop_service
from tests.realtime.test_revocation import provision, run
from tests.support import mint_token

CALLERS = ["operator", "manager", "client_user_a", "client_admin_a", "client_user_b", "agent_a"]


def principal_of(name: str) -> Principal:
    person = PEOPLE[name]
    if person.role == "agent":
        return Principal.agent(person.agent_name, person.workflow_id)
    return Principal.from_claims(person.claims)


@pytest.fixture
def database(realtime_database):
    database = Database(realtime_database, min_size=1, max_size=1)
    database.open(wait=True)
    yield database
    database.close()


def ask_all(gate: Gate, questions: list) -> list:
    """Every question at once, from as many threads: what a storm of sockets does."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        return list(pool.map(lambda q: q[0](*q[1:]), questions))


def test_visibility_is_what_the_callers_own_transaction_sees(database):
    with psycopg.connect(database.pool.conninfo) as conn:
        targets = [Channel("workflow", r[0]) for r in conn.execute("select id from public.workflows")]
        targets += [Channel("task", r[0]) for r in conn.execute("select id from public.tasks")]
    targets += [Channel("workflow", uuid.uuid4()), Channel("task", uuid.uuid4())]
    gate = Gate(lambda: database)
    questions = [(gate.visible, principal_of(name), channel) for name in CALLERS for channel in targets]

    answers = ask_all(gate, questions)

    for (_, principal, channel), seen in zip(questions, answers):
        table = "workflows" if channel.kind == "workflow" else "tasks"
        with database.transaction(principal) as conn:
            expected = conn.execute(f"select 1 from public.{table} where id = %s", (channel.target,)).fetchone()
        assert seen is (expected is not None), (principal.claims, str(channel))
    assert any(answers) and not all(answers)  # the world has rows each caller may and may not see
    assert gate.questions == len(questions) and gate.batches <= len(questions) // 4, (gate.batches, gate.questions)


def test_refusals_are_the_words_a_request_is_refused_with(database, realtime_database):
    """For every way a person stops counting, the gate's reason is the request path's message."""
    gate = Gate(lambda: database)
    people = {}
    for kind, statement in CLIENT_PERSON_CHANGES.items():
        person = provision(realtime_database)
        run(realtime_database, statement, id=person.user_id, client=person.client_id, other=CLIENT_B)
        people[kind] = person
    current = provision(realtime_database)
    principals = {kind: Principal.from_claims(person.claims) for kind, person in people.items()}
    principals["current"] = Principal.from_claims(current.claims)

    answers = dict(zip(principals, ask_all(gate, [(gate.refusal, p) for p in principals.values()])))

    assert answers["current"] is None
    for kind, principal in principals.items():
        if kind == "current":
            continue
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification) as refused:
            with database.transaction(principal):
                pass
        error = from_database_error(refused.value)
        assert (error.status, error.code) == (401, "person_inactive")
        assert answers[kind] == error.message, kind


def test_a_failed_batch_is_an_error_for_each_asker_and_the_gate_goes_on(database):
    class Broken:
        pool = None  # no pool: the batch fails

    databases = [Broken(), database]
    gate = Gate(lambda: databases.pop(0))
    with pytest.raises(AttributeError):
        gate.refusal(principal_of("operator"))
    assert gate.refusal(principal_of("operator")) is None


async def _storm(ws_base: str, sockets: int) -> list[str]:
    """`sockets` clients connecting and subscribing at once; what each was last told."""
    token = mint_token(PEOPLE["client_user_a"], expires_in=600)

    async def one() -> str:
        async with connect(f"{ws_base}?token={token}", open_timeout=60) as ws:
            assert json.loads(await ws.recv())["type"] == "authenticated"
            await ws.send(json.dumps({"type": "subscribe", "channel": f"workflow:{row('A101')}"}))
            return json.loads(await asyncio.wait_for(ws.recv(), 60))["type"]

    return await asyncio.gather(*(one() for _ in range(sockets)), return_exceptions=True)


@pytest.mark.parametrize("worker", ["thread", "gevent"])
def test_a_reconnect_storm_through_a_small_pool_gets_in(realtime_database, worker):
    sockets = 300
    process, base = start_service(service_env(realtime_database, free_port(), GUNICORN_WORKER=worker,
                                              GUNICORN_THREADS=str(sockets + 20), DB_POOL_MAX="2",
                                              REALTIME_SOCKETS_PER_WORKER=str(sockets + 20)),
                                  "wsgi:app", f"realtime-storm-{worker}.log")
    try:
        told = asyncio.run(_storm(base.replace("http://", "ws://") + "/ws", sockets))
        gate = requests.get(base + "/api/health/realtime", timeout=5).json()["gate"]
    finally:
        stop_service(process)
    assert told == ["subscribed"] * sockets, [t for t in told if t != "subscribed"][:3]
    assert gate["questions"] == 2 * sockets  # a connect check and a subscribe check per socket
    assert gate["batches"] < gate["questions"], gate
