"""The questions /ws sockets ask the database when they connect and subscribe (does this person
still count; may this caller see this workflow or task), answered in batches.

One thread answers: whatever sockets ask while it is busy is answered together by its next
batch, on one pooled connection, in one round trip for every person and one per audience for
visibility. A reconnect storm (a restart closes every socket with 1001 and the clients come back
at once) then costs a few round trips a batch, instead of a pooled connection per socket that
the pool cannot hand out before its timeout.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable

import psycopg
from psycopg import sql

from app.auth import Principal
from app.realtime.channels import Channel
from app.realtime.hub import rows_of

log = logging.getLogger(__name__)

BATCH_LIMIT = 2000  # questions answered by one batch at most
ANSWER_SECONDS = 30.0  # how long a socket waits for its answer (the pool's own timeout comes first)

# Every person of a batch in one statement, under the connection's own (service) role.
REFUSALS = ("select p.sub::text as sub, p.meta, private.person_refusal(p.sub, p.meta::jsonb) as refusal"
            " from jsonb_to_recordset(%s::jsonb) as p(sub uuid, meta text)")

# One audience's visibility in one round trip: BEGIN, its role and claims, the RLS-filtered read
# of both tables, ROLLBACK (simple query protocol, values quoted by psycopg).
VISIBLE_AS = sql.SQL(
    "begin; select set_config('role', {role}, true), set_config('request.jwt.claims', {claims}, true){settings};"
    " select 'workflow' as kind, id from public.workflows where id = any({workflows}::uuid[])"
    " union all select 'task', id from public.tasks where id = any({tasks}::uuid[]); rollback")


def _metadata(principal: Principal) -> str:
    return json.dumps(principal.claims.get("app_metadata") or {}, sort_keys=True)


def _audience(principal: Principal) -> tuple:
    """Callers with equal keys see the same rows of workflows and tasks: the policies read the
    request role, auth.uid() and app_metadata."""
    return principal.request_role, str(principal.claims.get("sub")), _metadata(principal)


@dataclasses.dataclass
class _Question:
    kind: str  # "person" or "visible"
    principal: Principal
    channel: Channel | None
    answer: concurrent.futures.Future


class Gate:
    def __init__(self, database: Callable[[], object]):
        self._database = database  # the app's Database, looked up when the first batch runs
        self._questions: queue.Queue[_Question] = queue.Queue()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.questions = 0  # answered, in all
        self.batches = 0  # batches that answered them
        self.largest_batch = 0

    # -- asking (socket threads) -------------------------------------------------------------
    def refusal(self, principal: Principal) -> str | None:
        """Why this person no longer counts (deactivated, deleted, moved), or None when they do."""
        return self._ask("person", principal, None)

    def visible(self, principal: Principal, channel: Channel) -> bool:
        """Whether `principal` may read the workflow or task `channel` names (RLS decides)."""
        return self._ask("visible", principal, channel)

    def _ask(self, kind: str, principal: Principal, channel: Channel | None):
        self._start_once()
        question = _Question(kind, principal, channel, concurrent.futures.Future())
        self._questions.put(question)
        try:
            return question.answer.result(timeout=ANSWER_SECONDS)
        except concurrent.futures.TimeoutError:
            raise psycopg.OperationalError("the database did not answer in time") from None

    def _start_once(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rexera-realtime-gate", daemon=True)
                self._thread.start()

    # -- answering (the gate's thread) -------------------------------------------------------
    def _run(self) -> None:
        while True:
            batch = [self._questions.get()]
            while len(batch) < BATCH_LIMIT:
                try:
                    batch.append(self._questions.get_nowait())
                except queue.Empty:
                    break
            self.batches += 1
            self.questions += len(batch)
            self.largest_batch = max(self.largest_batch, len(batch))
            try:
                self._answer(batch)
            except Exception as error:  # every asker hears of it; the thread goes on
                if not isinstance(error, psycopg.OperationalError):
                    log.exception("realtime gate batch failed")
                for question in batch:
                    if not question.answer.done():
                        question.answer.set_exception(error)

    def _answer(self, batch: list[_Question]) -> None:
        people = [q for q in batch if q.kind == "person"]
        sights: dict[tuple, list[_Question]] = collections.defaultdict(list)
        for question in batch:
            if question.kind == "visible":
                sights[_audience(question.principal)].append(question)
        database = self._database()
        with database.pool.connection() as conn:
            if people:
                self._answer_people(conn, people)
            for questions in sights.values():
                self._answer_visible(conn, questions)

    @staticmethod
    def _answer_people(conn: psycopg.Connection, people: list[_Question]) -> None:
        asked = {(str(q.principal.user_id), _metadata(q.principal)) for q in people}
        rows = conn.execute(REFUSALS, (json.dumps([{"sub": sub, "meta": meta} for sub, meta in asked]),)).fetchall()
        refusals = {(row["sub"], row["meta"]): row["refusal"] for row in rows}
        for question in people:
            question.answer.set_result(refusals[(str(question.principal.user_id), _metadata(question.principal))])

    @staticmethod
    def _answer_visible(conn, questions: list[_Question]) -> None:
        principal = questions[0].principal
        wanted: dict[str, list[uuid.UUID]] = {"workflow": [], "task": []}
        for question in questions:
            wanted[question.channel.kind].append(question.channel.target)
        query = VISIBLE_AS.format(role=principal.request_role, claims=json.dumps(principal.claims),
                                  settings=sql.SQL(conn.local_settings.decode()),
                                  workflows=[str(i) for i in wanted["workflow"]], tasks=[str(i) for i in wanted["task"]])
        seen = {(row["kind"], row["id"]) for row in rows_of(conn, query, "kind")}
        for question in questions:
            question.answer.set_result((question.channel.kind, question.channel.target) in seen)
