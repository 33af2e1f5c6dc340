"""Kill -9 the real ``serve`` process in the middle of a 10,000-event ingest, restart it on the same
database, and check what the issue promises: every event answered 200 is there, in order, with its
``seq``; and a WebSocket client that was watching resumes from the last ``seq`` it saw without a gap.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from server_support import read_line_matching

from otel_dashboard.store.sqlite import SqliteEventStore

pytestmark = pytest.mark.timeout(120)

STARTUP_TIMEOUT = 20.0
WAIT = 10.0
URL_RE = re.compile(r"otel-dashboard serving on (http://\S+)/dashboard")
BATCHES = 100  # of 100 events: 10,000 in all
BATCH_SIZE = 100
KILL_AFTER_BATCHES = 40  # acknowledged batches before the kill
# How far seq jumps after an unclean stop: the store's default backlog bound (what `serve` uses).
UNCLEAN_SEQ_SKIP = inspect.signature(SqliteEventStore).parameters["max_unwritten_events"].default


def start_serve(db: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_dashboard", "serve", "--port", "0", "--db", str(db),
         "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return proc, read_line_matching(proc, URL_RE, STARTUP_TIMEOUT).group(1)


def batch(number: int) -> dict[str, Any]:
    return {"events": [
        {"event_type": "error_occurred", "severity": "error",
         "data": {"source": "crash-test", "error_type": "E", "error_message": f"{number}/{i}",
                  "batch": number, "i": i}}
        for i in range(BATCH_SIZE)
    ]}


async def read_stream(ws: aiohttp.ClientWebSocketResponse, seen: list[dict[str, Any]]) -> None:
    """Keep every event the live stream delivers until the connection dies."""
    while True:
        msg = await ws.receive()
        if msg.type is not WSMsgType.TEXT:
            return
        message = orjson.loads(msg.data)
        if message["type"] == "events":
            seen.extend(message["events"])


async def all_events(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    """The whole history through ``GET /api/events?after_seq=..&limit=1000`` paging."""
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        async with session.get(f"{url}/api/events", params={"after_seq": after, "limit": 1000}) as response:
            assert response.status == 200
            page = (await response.json())["events"]
        if not page:
            return events
        seqs = [e["seq"] for e in page]
        assert seqs == sorted(seqs) and seqs[0] > after, "a page out of order"
        events.extend(page)
        after = seqs[-1]


async def test_kill_9_mid_ingest_loses_no_acknowledged_event_and_a_client_resumes_without_a_gap(
    tmp_path: Path,
) -> None:
    db = tmp_path / "events.db"
    proc, url = await asyncio.to_thread(start_serve, db)
    acknowledged: dict[int, dict[str, Any]] = {}  # batch number -> the 200 answer
    refused: list[tuple[int, str]] = []
    seen_live: list[dict[str, Any]] = []
    try:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{url}/ws")
            assert orjson.loads((await ws.receive(timeout=WAIT)).data)["type"] == "snapshot"
            reader = asyncio.ensure_future(read_stream(ws, seen_live))
            killed = asyncio.Event()

            async def ingest() -> None:
                for number in range(BATCHES):
                    try:
                        async with session.post(f"{url}/api/events", json=batch(number)) as response:
                            if response.status == 200:
                                acknowledged[number] = await response.json()
                            else:
                                refused.append((number, f"HTTP {response.status}"))
                    except aiohttp.ClientError as exc:
                        refused.append((number, type(exc).__name__))
                        if killed.is_set():
                            return  # the server is gone: the rest would fail the same way

            async def kill_mid_ingest() -> None:
                while len(acknowledged) < KILL_AFTER_BATCHES:  # noqa: ASYNC110 - polls a plain dict
                    await asyncio.sleep(0.001)
                await asyncio.sleep(0.003)  # the next batch is on its way
                os.kill(proc.pid, signal.SIGKILL)
                killed.set()

            await asyncio.wait_for(asyncio.gather(ingest(), kill_mid_ingest()), 60)
            await asyncio.wait_for(reader, WAIT)
            await ws.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=WAIT)
    assert proc.returncode == -signal.SIGKILL, stderr
    assert len(acknowledged) >= KILL_AFTER_BATCHES
    assert len(acknowledged) < BATCHES, "the ingest finished before the kill: nothing was tested"
    assert refused, "no request was cut off by the kill"
    last_seen = max(e["seq"] for e in seen_live)
    last_acknowledged = max(answer["last_seq"] for answer in acknowledged.values())
    assert last_seen >= last_acknowledged  # the stream had shown every acknowledged event

    proc, url = await asyncio.to_thread(start_serve, db)
    try:
        async with aiohttp.ClientSession() as session:
            history = await all_events(session, url)
            by_seq = {e["seq"]: e for e in history}
            seqs = [e["seq"] for e in history]
            # In order and without holes: the newest events written before the kill, then the new ones.
            assert seqs == list(range(1, len(seqs) + 1))

            # Every event whose POST was answered 200 is there, with its seq, in its order.
            for number, answer in acknowledged.items():
                first, last = answer["first_seq"], answer["last_seq"]
                assert answer["accepted"] == BATCH_SIZE and last - first + 1 == BATCH_SIZE
                for i, seq in enumerate(range(first, last + 1)):
                    stored = by_seq.get(seq)
                    assert stored is not None, f"batch {number} event {i} (seq {seq}) is lost"
                    assert stored["data"]["batch"] == number and stored["data"]["i"] == i

            # What the live client saw is what the database kept, up to the last acknowledged event.
            for event in seen_live:
                if event["seq"] <= last_acknowledged:
                    assert by_seq[event["seq"]]["event_id"] == event["event_id"]

            # The server goes on after the restart: new events get the seqs after the stored ones.
            async with session.post(f"{url}/api/events", json=batch(BATCHES)) as response:
                assert response.status == 200
                after_restart = await response.json()
            # The kill was unclean: new seqs start past every seq the dead server could have streamed
            # without committing (its store's max_unwritten_events), so no seq a client saw is reused.
            assert after_restart["first_seq"] == seqs[-1] + UNCLEAN_SEQ_SKIP + 1
            assert after_restart["first_seq"] > last_seen

            # The client reconnects and resumes from the last seq it saw, even one of the cut-off batch
            # that the kill lost: it gets everything after it, without a gap.
            resume_from = last_seen
            async with session.ws_connect(f"{url}/ws") as ws:
                assert orjson.loads((await ws.receive(timeout=WAIT)).data)["type"] == "snapshot"
                await ws.send_json({"type": "resume", "after_seq": resume_from})
                replayed: list[int] = []
                while True:
                    message = orjson.loads((await ws.receive(timeout=WAIT)).data)
                    if message["type"] == "gap":
                        # Only the seqs the dead server may have used without writing them: never an
                        # acknowledged event, nothing of the new run.
                        assert message["reason"] == "restart", message
                        assert message["from"] > last_acknowledged
                        assert message["to"] < after_restart["first_seq"]
                        continue
                    if message["type"] == "events":
                        replayed.extend(e["seq"] for e in message["events"])
                    elif message["type"] == "resumed":
                        until = message["seq"]
                        break
            assert until >= after_restart["last_seq"]
            # Stored events the client had not seen yet (if it lagged), then the new ones.
            expected = [s for s in seqs if s > resume_from]
            expected += list(range(after_restart["first_seq"], after_restart["last_seq"] + 1))
            assert [s for s in replayed if s <= until] == expected
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
