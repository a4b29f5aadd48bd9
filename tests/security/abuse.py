"""Hostile callers, as a tester would be one: each attack holds up to `connections` connections
of one kind from one address for a bounded time, reopening every one the server closes, while
a victim (another tenant, from another address) calls the REST API; both stop by themselves.

Shared by the abuse tests (tests/security/test_abuse.py) and the benchmark that prints the
victim's latency before and during each attack (tests/perf/bench_abuse.py).
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ATTACKER_ADDRESS = "127.0.0.2"  # the attacker's source address (all of 127/8 is this machine)
VICTIM_ADDRESS = "127.0.0.1"
REOPEN_SECONDS = 0.05  # how soon the attacker reopens a connection the server closed
CONNECT_TIMEOUT = 5.0


@dataclasses.dataclass
class Target:
    host: str
    port: int
    attacker_token: str  # a client user's token (the attacker is a tenant too)
    victim_token: str  # another client's user's token
    victim_path: str = "/api/workflows?limit=5"


@dataclasses.dataclass
class AttackReport:
    opened: int = 0  # connections the attacker opened, reopenings included
    refused_at_once: int = 0  # answered 429 or closed before the attack asked anything more
    closed_by_server: int = 0


def _request(target: Target, method: str, path: str, extra: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n{extra}").encode()


def _ws_upgrade(target: Target, token: str | None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    query = f"?token={token}" if token else ""
    return _request(target, "GET", f"/ws{query}", f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")


# Each attack: what one connection sends first, then what it sends every DRIP_SECONDS (None:
# nothing more), for as long as the server keeps it open.
DRIP_SECONDS = 2.0


def attack_plan(target: Target, name: str) -> tuple[bytes, bytes | None]:
    json_post = "Content-Type: application/json\r\n"
    return {
        "idle connections": (b"", None),
        "slow headers": (_request(target, "GET", target.victim_path), b"X-Slow: 1\r\n"),
        "slow body": (_request(target, "POST", "/api/workflows",
                               f"Authorization: Bearer {target.attacker_token}\r\n{json_post}Content-Length: 100000\r\n\r\n{{"),
                      b" "),
        "huge chunk": (_request(target, "POST", "/webhooks/n8n",
                                f"{json_post}Transfer-Encoding: chunked\r\n\r\nfffffff\r\n"), None),
        "expect without body": (_request(target, "POST", "/api/workflows",
                                         f"Authorization: Bearer {target.attacker_token}\r\n{json_post}"
                                         "Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n"), None),
        "/ws with a token": (_ws_upgrade(target, target.attacker_token), None),
        "/ws without a token": (_ws_upgrade(target, None), None),
    }[name]


HOLDING_ATTACKS = ["idle connections", "slow headers", "slow body", "huge chunk", "expect without body",
                   "/ws with a token", "/ws without a token"]
# Floods: requests sent as fast as a few senders can, each refused.
FLOOD_ATTACKS = ["forged callbacks", "1 MB unauthenticated bodies"]
ATTACKS = HOLDING_ATTACKS + FLOOD_ATTACKS


async def _hold_one(target: Target, name: str, deadline: float, report: AttackReport) -> None:
    first, drip = attack_plan(target, name)
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                target.host, target.port, local_addr=(ATTACKER_ADDRESS, 0)), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(REOPEN_SECONDS)
            continue
        report.opened += 1
        opened_at = time.monotonic()
        try:
            if first:
                writer.write(first)
            while time.monotonic() < deadline:
                wait = min(DRIP_SECONDS, deadline - time.monotonic())
                try:
                    data = await asyncio.wait_for(reader.read(65536), max(wait, 0.01))
                except asyncio.TimeoutError:
                    if drip is not None:
                        writer.write(drip)
                        await writer.drain()
                    continue
                if not data:  # the server closed it
                    report.closed_by_server += 1
                    if time.monotonic() - opened_at < 0.5:
                        report.refused_at_once += 1
                    break
        except OSError:
            report.closed_by_server += 1
        finally:
            writer.close()
        await asyncio.sleep(REOPEN_SECONDS)


async def _flood_one(target: Target, name: str, deadline: float, report: AttackReport) -> None:
    if name == "forged callbacks":
        body = json.dumps({"type": "task.completed", "timestamp": "2026-12-07T12:00:00Z",
                           "data": {"workflowId": "00000000-0000-4000-8000-000000000001", "taskKey": "x"}}).encode()
    else:
        body = b'{"data": "' + b"x" * 999_970 + b'"}'
    head = _request(target, "POST", "/webhooks/n8n",
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nwebhook-id: forged\r\n"
                    f"webhook-timestamp: {int(time.time())}\r\nwebhook-signature: v1,AAAA\r\n\r\n")
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                target.host, target.port, local_addr=(ATTACKER_ADDRESS, 0)), CONNECT_TIMEOUT)
            report.opened += 1
            writer.write(head + body)
            await writer.drain()
            await asyncio.wait_for(reader.read(4096), 10)
            writer.close()
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(REOPEN_SECONDS)


async def _attack(target: Target, name: str, connections: int, seconds: float, report: AttackReport) -> None:
    deadline = time.monotonic() + seconds
    if name in FLOOD_ATTACKS:
        workers = [_flood_one(target, name, deadline, report) for _ in range(4)]  # four senders
    else:
        workers = []
        for index in range(connections):  # opened over the first second, not in one burst
            workers.append(_start_later(index / connections, _hold_one(target, name, deadline, report)))
    await asyncio.gather(*workers, return_exceptions=True)


async def _start_later(delay: float, work) -> None:
    await asyncio.sleep(delay)
    await work


class Attack:
    """An attack run by a process of its own (so that its work never slows the victim's calls
    in this one); it stops by itself after its time."""

    def __init__(self, target: Target, name: str, connections: int, seconds: float):
        if not 0 < seconds <= 60 or not 0 < connections <= 1000:
            raise ValueError("an attack is bounded: at most 60 s and 1,000 connections")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.security.abuse", json.dumps(dataclasses.asdict(target)), name,
             str(connections), str(seconds)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)

    def join(self, timeout: float) -> AttackReport:
        out, _ = self.process.communicate(timeout=timeout)
        return AttackReport(**json.loads(out.strip().splitlines()[-1]))


def start_attack(target: Target, name: str, connections: int, seconds: float) -> Attack:
    return Attack(target, name, connections, seconds)


@dataclasses.dataclass
class VictimReport:
    latencies: list[float]
    failures: list[str]

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("inf")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    @property
    def p50(self) -> float:
        return self.percentile(0.50)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)


def victim(target: Target, seconds: float, rate: float = 8.0) -> VictimReport:
    """Another tenant's REST calls, a new connection each (as a client system makes them), at
    `rate` a second for `seconds`: each answer's time, and what failed (an error or not a 200)."""
    report = VictimReport([], [])
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection(target.host, target.port, timeout=10,
                                              source_address=(VICTIM_ADDRESS, 0))
            conn.request("GET", target.victim_path, headers={"Authorization": f"Bearer {target.victim_token}"})
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status != 200:
                report.failures.append(f"{response.status}")
        except OSError as error:
            report.failures.append(type(error).__name__)
        report.latencies.append(time.monotonic() - started)
        time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))
    return report


def under_attack(target: Target, name: str, connections: int = 1000, seconds: float = 20,
                 ramp_seconds: float = 3.0) -> tuple[VictimReport, AttackReport]:
    """The victim's calls while the attack holds (after `ramp_seconds` for it to open its
    connections); returns once the attack has stopped."""
    attack = start_attack(target, name, connections, seconds)
    time.sleep(ramp_seconds)
    during = victim(target, seconds - ramp_seconds - 1)
    return during, attack.join(timeout=seconds + 30)


if __name__ == "__main__":  # one attack: python -m tests.security.abuse <target json> <name> <connections> <seconds>
    _target, _name, _connections, _seconds = Target(**json.loads(sys.argv[1])), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    _report = AttackReport()
    asyncio.run(_attack(_target, _name, _connections, _seconds, _report))
    print(json.dumps(dataclasses.asdict(_report)))
