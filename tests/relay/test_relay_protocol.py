"""End-to-end protocol tests: a real relay on loopback, real websockets clients."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

import httpx
import pytest
from relay_support import TIMEOUT, Client, Pad, RelayHandle, running_relay, small_limits

from crypto import envelope2
from crypto.envelope import Kind, envelope_id
from relay.app import RelayConfig
from relay.connection import TURN_LONGEST_SECONDS, TURN_QUIET_SECONDS
from relay.edge.faults import Faults
from wire import frames as f
from wire.codes import ErrorCode, RefuseCode

ZERO = f.ZERO_ID


def run(scenario: Callable[[RelayHandle], Awaitable[None]], **config: object) -> None:
    """Run ``scenario`` against a fresh in-memory relay."""
    faults = config.pop("faults", None)
    assert faults is None or isinstance(faults, Faults)
    clock = config.pop("clock", None)
    assert clock is None or callable(clock)
    cfg = RelayConfig(store_url="memory:", web_dir=None, **config)  # type: ignore[arg-type]
    with running_relay(cfg, faults=faults, clock=clock) as relay:
        asyncio.run(scenario(relay))


async def chain(client: Client, pad: Pad, n: int, parent: bytes = ZERO) -> list[bytes]:
    """Push ``n`` patches in a line; return their ids."""
    ids = []
    for i in range(n):
        envelope, pid = pad.patch(parent, f"patch {i}".encode())
        ack = await client.push(envelope)
        assert isinstance(ack, f.Ack), ack
        ids.append(pid)
        parent = pid
    return ids


def test_subscribe_push_ack_broadcast_history() -> None:
    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        async with Client.connect(relay) as alice, Client.connect(relay) as bob:
            got = await alice.subscribe(pad)
            assert got == [f.HistoryEnd(got[0].request_id, pad.channel_id, 0, ZERO)]  # type: ignore[union-attr]
            await bob.subscribe(pad)
            assert await alice.expect(f.PeerJoined) == f.PeerJoined(
                pad.channel_id, bob.welcome.connection_id
            )
            env1, id1 = pad.patch(ZERO, b"hello")
            ack = await alice.push(env1)
            assert ack == f.Ack(ack.request_id, 1, id1)
            assert await bob.expect(f.Broadcast) == f.Broadcast(pad.channel_id, 1, env1)
            env2, id2 = pad.patch(id1, b"world")
            assert isinstance(await bob.push(env2), f.Ack)
            assert await alice.expect(f.Broadcast) == f.Broadcast(pad.channel_id, 2, env2)
        async with Client.connect(relay) as carol:
            got = await carol.subscribe(pad, since=1)
            assert got[0] == f.History(pad.channel_id, 2, env2)
            assert got[-1] == f.HistoryEnd(got[-1].request_id, pad.channel_id, 2, id2)  # type: ignore[union-attr]

    run(scenario, limits=small_limits())


def test_stale_parent_refused_with_head_and_nothing_stored() -> None:
    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        async with Client.connect(relay) as alice:
            await alice.subscribe(pad)
            ids = await chain(alice, pad, 2)
            stale, _ = pad.patch(ids[0], b"late")
            refuse = await alice.push(stale)
            assert refuse == f.Refuse(refuse.request_id, RefuseCode.STALE, 0, 2, ids[1])
        async with httpx.AsyncClient(base_url=relay.url, headers=pad.read_headers()) as http:
            head = (await http.get(f"/v1/channels/{pad.channel_id.hex()}/head")).json()
            assert (head["seq"], head["id"]) == (2, ids[1].hex())

    run(scenario, limits=small_limits())


def test_lost_ack_resend_gets_original_seq_after_head_moved() -> None:
    pad = Pad()
    env1, id1 = pad.patch(ZERO, b"first")

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as alice:
            await alice.subscribe(pad)
            rid = alice.request_id()
            await alice.send(f.Push(rid, env1))
            await alice.send(f.Ping(7))
            assert await alice.expect(f.Pong) == f.Pong(7)  # the ack never came
        async with Client.connect(relay) as bob:
            await bob.subscribe(pad, since=1)
            await chain(bob, pad, 3, parent=id1)
            ack = await bob.push(env1)  # resend of a stored patch, head is now 4
            assert ack == f.Ack(ack.request_id, 1, id1)

    dropped = Faults(drop_ack=lambda pid: pid == id1)
    run(scenario, limits=small_limits(), faults=dropped)


def test_snapshot_push_and_join_from_snapshot() -> None:
    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        async with Client.connect(relay) as alice:
            await alice.subscribe(pad)
            ids = await chain(alice, pad, 5)
            snapshot = pad.sealed(Kind.SNAPSHOT, ids[2], b"S" * 9000)
            rid = alice.request_id()
            step = 4000
            for offset in range(0, len(snapshot), step):
                chunk = snapshot[offset : offset + step]
                await alice.send(f.SnapshotChunk(rid, len(snapshot), offset, chunk))
            assert await alice.answer(rid) == f.Ack(rid, 3, envelope_id(snapshot))
            # a snapshot of an unknown patch is refused
            bogus = pad.sealed(Kind.SNAPSHOT, b"\x01" * 32)
            rid = alice.request_id()
            await alice.send(f.SnapshotChunk(rid, len(bogus), 0, bogus))
            refuse = await alice.answer(rid)
            assert isinstance(refuse, f.Refuse)
            assert refuse.code == RefuseCode.UNKNOWN_PATCH
        async with Client.connect(relay) as bob:
            got = await bob.subscribe(pad, start=f.SubscribeFrom.SNAPSHOT)
            chunks = [g for g in got if isinstance(g, f.Snapshot)]
            assert b"".join(c.data for c in chunks) == snapshot
            assert all(c.x_seq == 3 for c in chunks)
            history = [g for g in got if isinstance(g, f.History)]
            assert [h.seq for h in history] == [4, 5]
            assert isinstance(got[-1], f.HistoryEnd)
            assert got[-1].head_seq == 5
        async with httpx.AsyncClient(base_url=relay.url, headers=pad.read_headers()) as http:
            body = (
                await http.get(f"/v1/channels/{pad.channel_id.hex()}/history?from=snapshot")
            ).content
            assert body[0] == 0x01
            assert snapshot in body
            assert body[-41] == 0x00

    run(scenario, limits=small_limits(max_frame_bytes=8192))


def test_ephemeral_relayed_to_others_never_stored() -> None:
    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        async with Client.connect(relay) as alice, Client.connect(relay) as bob:
            await alice.subscribe(pad)
            await bob.subscribe(pad)
            eph = pad.ephemeral(b"cursor at 3")
            await alice.send(f.Ephemeral(alice.request_id(), eph))
            got = await bob.expect(f.EphemeralRelayed)
            assert got == f.EphemeralRelayed(pad.channel_id, alice.welcome.connection_id, eph)
            await alice.send(f.Ping(1))
            assert await alice.expect(f.Pong) == f.Pong(1)  # the sender got no echo
        async with Client.connect(relay) as carol:
            got2 = await carol.subscribe(pad)
            assert [type(g) for g in got2] == [f.HistoryEnd]
        async with httpx.AsyncClient(base_url=relay.url, headers=pad.read_headers()) as http:
            body = (await http.get(f"/v1/channels/{pad.channel_id.hex()}/history")).content
            assert eph not in body
            assert len(body) == 41

    run(scenario, limits=small_limits())


def test_trim_needs_a_snapshot_and_moves_the_floor() -> None:
    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        async with Client.connect(relay) as alice:
            await alice.subscribe(pad)
            ids = await chain(alice, pad, 4)
            no_snap = pad.sealed(Kind.TRIM, ids[1])
            rid = alice.request_id()
            await alice.send(f.Trim(rid, 0, no_snap))
            refuse = await alice.answer(rid)
            assert isinstance(refuse, f.Refuse)
            assert refuse.code == RefuseCode.NO_SNAPSHOT
            snapshot = pad.sealed(Kind.SNAPSHOT, ids[1], b"text after 2")
            rid = alice.request_id()
            await alice.send(f.SnapshotChunk(rid, len(snapshot), 0, snapshot))
            assert isinstance(await alice.answer(rid), f.Ack)
            trim = pad.sealed(Kind.TRIM, ids[1])
            rid = alice.request_id()
            await alice.send(f.Trim(rid, 0, trim))
            assert await alice.answer(rid) == f.Ack(rid, 2, envelope_id(trim))
            # a resend of a trimmed patch is still acked with its original seq
            first, _ = pad.patch(ZERO, b"patch 0")
            assert envelope_id(first) != ids[0]  # fresh nonce: a different patch
        async with Client.connect(relay) as bob:
            trimmed = await bob.subscribe(pad, since=0)
            assert isinstance(trimmed[-1], f.Refuse)
            assert trimmed[-1].code == RefuseCode.HISTORY_TRIMMED
            assert trimmed[-1].head_seq == 2
            got = await bob.subscribe(pad, start=f.SubscribeFrom.SNAPSHOT)
            assert [g.seq for g in got if isinstance(g, f.History)] == [3, 4]

    run(scenario, limits=small_limits())


def test_resend_of_a_trimmed_patch_is_stale_and_of_a_live_one_acked() -> None:
    """The relay dedupes against live patches only (no tombstones): a trimmed patch's
    parent is below the head, so its resend is STALE with the head; clients learn that
    it landed from the snapshots' session counters (PROTOCOL.md §9.4)."""

    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        async with Client.connect(relay) as alice:
            await alice.subscribe(pad)
            env1, id1 = pad.patch(ZERO, b"one")
            env2, id2 = pad.patch(id1, b"two")
            env3, id3 = pad.patch(id2, b"three")
            for envelope in (env1, env2, env3):
                assert isinstance(await alice.push(envelope), f.Ack)
            snapshot = pad.sealed(Kind.SNAPSHOT, id2)
            rid = alice.request_id()
            await alice.send(f.SnapshotChunk(rid, len(snapshot), 0, snapshot))
            await alice.answer(rid)
            trim = pad.sealed(Kind.TRIM, id2)
            rid = alice.request_id()
            await alice.send(f.Trim(rid, 0, trim))
            assert isinstance(await alice.answer(rid), f.Ack)
            for trimmed in (env1, env2):
                stale = await alice.push(trimmed)
                assert stale == f.Refuse(stale.request_id, RefuseCode.STALE, 0, 3, id3)
            ack = await alice.push(env3)
            assert ack == f.Ack(ack.request_id, 3, id3)

    run(scenario, limits=small_limits())


def test_version_mismatch_is_a_coded_error() -> None:
    async def scenario(relay: RelayHandle) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        for version in (99, 1):  # protocol 1's clients too: they must reload
            async with connect(relay.ws_url) as ws:
                await ws.send(f.encode(f.Hello(version)))
                error = f.decode(await ws.recv())
                assert isinstance(error, f.Error)
                assert error.code == ErrorCode.VERSION_MISMATCH
                assert "reload" in error.message
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 4000 + ErrorCode.VERSION_MISMATCH

    run(scenario)


async def fatal(relay: RelayHandle, first: bytes | None, data: bytes | str) -> f.Error:
    """Send ``data`` (after an optional first frame); return the ERROR frame."""
    from websockets.asyncio.client import connect

    async with connect(relay.ws_url, max_size=None) as ws:
        if first is not None:
            await ws.send(first)
            await ws.recv()
        await ws.send(data)
        while True:
            frame = f.decode(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if isinstance(frame, f.Error):
                return frame


def test_every_fatal_error_code() -> None:
    hello = f.encode(f.Hello(f.PROTOCOL_VERSION))

    async def scenario(relay: RelayHandle) -> None:
        assert (await fatal(relay, None, f.encode(f.Ping(1)))).code == ErrorCode.HELLO_REQUIRED
        assert (await fatal(relay, hello, b"\x7e")).code == ErrorCode.PROTOCOL
        assert (await fatal(relay, hello, "text")).code == ErrorCode.PROTOCOL
        assert (await fatal(relay, hello, hello)).code == ErrorCode.PROTOCOL
        big = f.encode(f.Push(1, b"x" * 5000))
        assert (await fatal(relay, hello, big)).code == ErrorCode.FRAME_TOO_LARGE
        ping = f.encode(f.Ping(1))
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        async with connect(relay.ws_url) as ws:
            await ws.send(hello)
            await ws.recv()
            for _ in range(40):
                await ws.send(ping)
            frames = []
            try:
                while True:
                    frames.append(f.decode(await ws.recv()))
            except ConnectionClosed:
                pass
            assert isinstance(frames[-1], f.Error)
            assert frames[-1].code == ErrorCode.PRESUBSCRIBE_BUFFER

    run(scenario, limits=small_limits(max_frame_bytes=4096, presubscribe_bytes=300))


def test_every_refusal_code() -> None:
    async def scenario(relay: RelayHandle) -> None:
        pad, other = Pad(), Pad()
        seen: set[int] = set()

        def check(answer: f.Frame, code: RefuseCode) -> None:
            assert isinstance(answer, f.Refuse), (answer, code)
            assert answer.code == code, (answer, code)
            seen.add(code)

        async def last(got: list[f.Frame], code: RefuseCode) -> None:
            check(got[-1], code)

        async with Client.connect(relay, token=b"wrong") as c:
            await last(await c.subscribe(pad), RefuseCode.CREATE_TOKEN_REQUIRED)
        async with Client.connect(relay, token=b"secret") as c:
            await last(await c.subscribe(pad, key=ZERO), RefuseCode.NO_VERIFY_KEY)
            await last(
                await c.subscribe(pad, key=other.keys.verify_key), RefuseCode.BAD_VERIFY_KEY
            )
            await c.subscribe(pad)
            await last(await c.subscribe(pad), RefuseCode.ALREADY_SUBSCRIBED)
            await c.subscribe(other)
            await last(await c.subscribe(Pad()), RefuseCode.TOO_MANY_CHANNELS)
            env, pid = pad.patch(ZERO, b"a")
            ack = await c.push(env)
            assert isinstance(ack, f.Ack)
            check(await c.push(pad.patch(ZERO)[0]), RefuseCode.STALE)
            check(await c.push(pad.patch(pid, b"x" * 3000)[0]), RefuseCode.PATCH_TOO_LARGE)
            check(await c.push(b"\x01\x01" + b"\x00" * 10), RefuseCode.MALFORMED_ENVELOPE)
            check(await c.push(pad.sealed(Kind.TRIM, pid)), RefuseCode.WRONG_KIND)
            forged = bytearray(pad.patch(pid)[0])
            forged[-1] ^= 1
            check(await c.push(bytes(forged)), RefuseCode.BAD_SIGNATURE)
            check(await c.push(Pad().patch(ZERO)[0]), RefuseCode.NOT_SUBSCRIBED)
            session, record = pad.session2()
            check(
                await c.push(pad.patch2(session, pid, 2, 1)[0], pad.channel_id),
                RefuseCode.UNKNOWN_SESSION,
            )
            assert isinstance(await c.register(pad, record), f.Ack)
            # another record of the same key (so the same tag)
            again = envelope2.seal_session_record(pad.keys, pad.author, session, 2)
            check(await c.register(pad, again), RefuseCode.SESSION_TAG_TAKEN)
            big_eph = pad.ephemeral(b"e" * 600)
            rid = c.request_id()
            await c.send(f.Ephemeral(rid, big_eph))
            check(await c.answer(rid), RefuseCode.EPHEMERAL_TOO_LARGE)
            rid = c.request_id()
            await c.send(f.SnapshotChunk(rid, 10_000, 0, b"x"))
            check(await c.answer(rid), RefuseCode.SNAPSHOT_TOO_LARGE)
            rid = c.request_id()
            await c.send(f.SnapshotChunk(rid, 100, 50, b"x"))
            check(await c.answer(rid), RefuseCode.BAD_CHUNK)
            snap = pad.sealed(Kind.SNAPSHOT, b"\x02" * 32)
            rid = c.request_id()
            await c.send(f.SnapshotChunk(rid, len(snap), 0, snap))
            check(await c.answer(rid), RefuseCode.UNKNOWN_PATCH)
            rid = c.request_id()
            await c.send(f.Trim(rid, 0, pad.sealed(Kind.TRIM, pid)))
            check(await c.answer(rid), RefuseCode.NO_SNAPSHOT)
            snapshot = pad.sealed(Kind.SNAPSHOT, pid, b"text")
            rid = c.request_id()
            await c.send(f.SnapshotChunk(rid, len(snapshot), 0, snapshot))
            assert isinstance(await c.answer(rid), f.Ack)
            rid = c.request_id()
            big = pad.sealed(Kind.DISPUTE, envelope_id(snapshot), b"d" * 600)
            await c.send(f.Dispute(rid, big))
            check(await c.answer(rid), RefuseCode.DISPUTE_TOO_LARGE)
            rid = c.request_id()
            dispute = pad.sealed(Kind.DISPUTE, envelope_id(snapshot))
            await c.send(f.Dispute(rid, dispute))
            assert await c.answer(rid) == f.Ack(rid, 1, envelope_id(dispute))
            rid = c.request_id()
            await c.send(f.Trim(rid, 0, pad.sealed(Kind.TRIM, pid)))
            check(await c.answer(rid), RefuseCode.SNAPSHOT_DISPUTED)
            # fill the pad up to its size limit (2 KB patches against 5000 bytes)
            parent = pid
            answer: f.Frame = f.Ping(0)
            for _ in range(4):
                env, nid = pad.patch(parent, b"p" * 1800)
                answer = await c.push(env)
                if isinstance(answer, f.Refuse):
                    break
                parent = nid
            check(answer, RefuseCode.PAD_TOO_LARGE)
        async with Client.connect(relay) as c:
            wrong = bytes(32)
            await last(await c.subscribe(pad, read_token=wrong), RefuseCode.UNKNOWN_CHANNEL)
        assert len(seen) == len(RefuseCode) - 6

    # HISTORY_TRIMMED, RATE_LIMITED, CHANNEL_QUOTA, STORAGE_FULL, CREATE_RATE_LIMITED and
    # YIELD have their own tests (CREATE_RATE_LIMITED in test_relay_hardening.py, YIELD
    # in test_a_writer_refused_stale_goes_first_and_the_others_yield below).
    limits = small_limits(
        max_frame_bytes=8192,
        max_patch_bytes=2500,
        max_ephemeral_bytes=512,
        max_snapshot_bytes=5000,
        max_pad_bytes=5000,
        max_channels=2,
    )
    run(scenario, limits=limits, create_token=b"secret")


def test_rate_limit_refusal_carries_retry_after_and_loses_nothing() -> None:
    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        async with Client.connect(relay) as c:
            await c.subscribe(pad)
            parent = ZERO
            refused = 0
            for i in range(30):
                env, pid = pad.patch(parent, f"{i}".encode())
                while isinstance(answer := await c.push(env), f.Refuse):
                    assert answer.code == RefuseCode.RATE_LIMITED
                    assert answer.retry_after_ms >= 1
                    refused += 1
                    await asyncio.sleep(answer.retry_after_ms / 1000)
                assert answer.seq == i + 1
                parent = pid
            assert refused > 0

    run(scenario, limits=small_limits(rate_per_second=50, rate_burst=5))


@pytest.mark.parametrize(
    ("limit", "code"),
    [
        ("channel_quota_bytes", RefuseCode.CHANNEL_QUOTA),
        ("max_storage_bytes", RefuseCode.STORAGE_FULL),
    ],
)
def test_quota_refusals(limit: str, code: RefuseCode) -> None:
    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        async with Client.connect(relay) as c:
            await c.subscribe(pad)
            parent = ZERO
            for _ in range(10):
                env, pid = pad.patch(parent, b"q" * 500)
                answer = await c.push(env)
                if isinstance(answer, f.Refuse):
                    assert answer.code == code
                    return
                parent = pid
            raise AssertionError("quota never hit")

    run(scenario, limits=small_limits(**{limit: 2000}, channel_overhead_bytes=100))


def test_history_trimmed_refusal() -> None:
    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        async with Client.connect(relay) as c:
            await c.subscribe(pad)
            ids = await chain(c, pad, 3)
            snap = pad.sealed(Kind.SNAPSHOT, ids[1])
            rid = c.request_id()
            await c.send(f.SnapshotChunk(rid, len(snap), 0, snap))
            await c.answer(rid)
            rid = c.request_id()
            await c.send(f.Trim(rid, 0, pad.sealed(Kind.TRIM, ids[1])))
            await c.answer(rid)
        async with Client.connect(relay) as d:
            got = await d.subscribe(pad, since=1)
            assert isinstance(got[-1], f.Refuse)
            assert got[-1].code == RefuseCode.HISTORY_TRIMMED

    run(scenario, limits=small_limits())


def test_subscribe_during_burst_sees_contiguous_seqs() -> None:
    total = 1000

    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        envelopes = []
        parent = ZERO
        for i in range(total):
            env, parent = pad.patch(parent, f"{i}".encode())
            envelopes.append(env)
        async with Client.connect(relay) as writer:
            await writer.subscribe(pad)

            async def burst() -> None:
                for env in envelopes:
                    assert isinstance(await writer.push(env), f.Ack)

            task = asyncio.create_task(burst())
            await asyncio.sleep(0.05)
            async with Client.connect(relay) as reader:
                got = await reader.subscribe(pad)
                seqs = [g.seq for g in got if isinstance(g, f.History)]
                while (seqs[-1] if seqs else 0) < total:
                    frame = await reader.recv()
                    if isinstance(frame, f.Broadcast):
                        seqs.append(frame.seq)
                await task
            assert seqs == list(range(1, total + 1))

    run(scenario, limits=small_limits())


def test_rollback_fault_serves_an_earlier_head() -> None:
    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        async with Client.connect(relay) as c:
            await c.subscribe(pad)
            ids = await chain(c, pad, 4)
        async with Client.connect(relay) as d:
            got = await d.subscribe(pad)
            assert got[-1] == f.HistoryEnd(got[-1].request_id, pad.channel_id, 2, ids[1])  # type: ignore[union-attr]

    run(scenario, limits=small_limits(), faults=Faults(rollback=lambda cid: 2))


def test_close_mid_stream_fault() -> None:
    async def scenario(relay: RelayHandle) -> None:
        from websockets.exceptions import ConnectionClosed

        pad = Pad()
        async with Client.connect(relay) as c:
            await c.subscribe(pad)
            with pytest.raises(ConnectionClosed) as closed:
                await chain(c, pad, 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4000 + ErrorCode.FAULT_INJECTED

    run(scenario, limits=small_limits(), faults=Faults(close_after=lambda cid, n: n >= 4))


def test_unsubscribe_peer_left_and_ping() -> None:
    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        async with Client.connect(relay) as a, Client.connect(relay) as b:
            await a.subscribe(pad)
            await b.subscribe(pad)
            await a.expect(f.PeerJoined)
            rid = b.request_id()
            await b.send(f.Unsubscribe(rid, pad.channel_id))
            assert await b.expect(f.Unsubscribed) == f.Unsubscribed(rid, pad.channel_id)
            assert await a.expect(f.PeerLeft) == f.PeerLeft(
                pad.channel_id, b.welcome.connection_id
            )
            await a.send(f.Ping(99))
            assert await a.expect(f.Pong) == f.Pong(99)

    run(scenario, limits=small_limits())


def test_http_endpoints_and_page(tmp_path: object) -> None:
    async def scenario(relay: RelayHandle) -> None:
        async with httpx.AsyncClient(base_url=relay.url) as http:
            assert (await http.get("/healthz")).text == "ok\n"
            page = await http.get("/")
            assert "relay is running" in page.text
            assert (await http.get("/p/")).status_code == 200
            metrics = (await http.get("/metrics")).text
            assert "blindpad_connections 0" in metrics
            assert "blindpad_commit_batch_size" in metrics
            assert (await http.get(f"/v1/channels/{'00' * 32}/head")).status_code == 404
            assert (await http.get("/v1/channels/zz/head")).status_code == 400

    run(scenario)


def test_origin_checked_against_public_url() -> None:
    async def scenario(relay: RelayHandle) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        with pytest.raises(InvalidStatus):
            async with connect(relay.ws_url, origin="http://evil.example"):  # type: ignore[arg-type]
                pass
        async with connect(relay.ws_url, origin="https://pads.example") as ws:  # type: ignore[arg-type]
            await ws.send(f.encode(f.Hello(f.PROTOCOL_VERSION)))
            assert isinstance(f.decode(await ws.recv()), f.Welcome)

    run(scenario, public_url="https://pads.example")


def test_nobody_laps_a_writer_it_outran() -> None:
    """PROTOCOL.md §13.3 (wire.turns): a writer that outran another (its patch
    made the other's push stale) is refused YIELD until that one lands; a
    writer that outran nobody is not held back; one held back for a writer
    that then lands was outran by it in turn; YIELD is answered before the
    store, a resend of a stored patch is still ACKed, and leaving ends a wait.
    The relay's clock is a counter (a millisecond per reading), so nobody goes
    quiet however slowly the machine runs the scenario."""

    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        async with (
            Client.connect(relay) as a,
            Client.connect(relay) as b,
            Client.connect(relay) as c,
        ):
            for client in (a, b, c):
                await client.subscribe(pad)
            a1, id1 = pad.patch(ZERO, b"a1")
            assert _acked(await a.push(a1)) == (1, id1)
            b1, _ = pad.patch(ZERO, b"b1")
            assert _refused(await b.push(b1)) == (RefuseCode.STALE, 1)  # a outran b
            a2, _ = pad.patch(id1, b"a2")
            assert _refused(await a.push(a2)) == (RefuseCode.YIELD, 20)  # b first
            assert _refused(await a.push(a2)) == (RefuseCode.YIELD, 20)  # still
            c2, id2 = pad.patch(id1, b"c2")
            assert _acked(await c.push(c2)) == (2, id2)  # c outran nobody: not held
            assert _refused(await b.push(pad.patch(id1, b"b1")[0])) == (RefuseCode.STALE, 2)
            b3, id3 = pad.patch(id2, b"b1 again")
            assert _acked(await b.push(b3)) == (3, id3)  # b lands: a may go again...
            b4, _ = pad.patch(id3, b"b4")
            assert _refused(await b.push(b4)) == (RefuseCode.YIELD, 20)  # ...and b waits for a
            assert _refused(await a.push(a2)) == (RefuseCode.STALE, 3)  # b and c outran a
            c4, _ = pad.patch(id3, b"c4")
            assert _refused(await c.push(c4)) == (RefuseCode.YIELD, 20)
            a4, id4 = pad.patch(id3, b"a2 again")
            assert _acked(await a.push(a4)) == (4, id4)
            assert _refused(await b.push(b4)) == (RefuseCode.STALE, 4)
            assert _acked(await b.push(b3)) == (3, id3)  # dedupe comes first
            a5, _ = pad.patch(id4, b"a5")
            assert _refused(await a.push(a5)) == (RefuseCode.YIELD, 20)  # c waits (b: ACKed)
        async with Client.connect(relay) as d:  # the others left: nobody waits for them
            await d.subscribe(pad)
            d5, id5 = pad.patch(id4, b"d5")
            assert _acked(await d.push(d5)) == (5, id5)

    readings = itertools.count()
    run(scenario, clock=lambda: next(readings) / 1000)


def test_a_quiet_writer_lets_one_patch_by_per_quiet_period_and_is_still_owed() -> None:
    """PROTOCOL.md §13.3: while a writer that was outrun pushes nothing (a slow
    rebase, a reconnect), whoever outran it lands one patch per quiet period
    (TURN_QUIET_SECONDS), not all it can pipeline; after TURN_LONGEST_SECONDS
    it holds nobody back (it went away, or waits for a head it lacks), but once
    it pushes again, whoever outran it waits for it again.  The clock moves
    only when the scenario moves it."""
    now = [0.0]
    quiet, longest = TURN_QUIET_SECONDS, TURN_LONGEST_SECONDS

    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        async with Client.connect(relay) as a, Client.connect(relay) as b:
            for client in (a, b):
                await client.subscribe(pad)
            a1, id1 = pad.patch(ZERO, b"a1")
            assert _acked(await a.push(a1)) == (1, id1)
            b1, _ = pad.patch(ZERO, b"b1")
            assert _refused(await b.push(b1)) == (RefuseCode.STALE, 1)  # a outran b
            now[0] = 0.6 * quiet
            a2, id2 = pad.patch(id1, b"a2")
            assert _refused(await a.push(a2)) == (RefuseCode.YIELD, 20)  # b pushed at 0
            now[0] = 1.2 * quiet
            assert _acked(await a.push(a2)) == (2, id2)  # b quiet: one patch goes by
            now[0] = 1.5 * quiet
            a3, id3 = pad.patch(id2, b"a3")
            assert _refused(await a.push(a3)) == (RefuseCode.YIELD, 20)  # one per quiet period
            now[0] = 2.3 * quiet
            assert _acked(await a.push(a3)) == (3, id3)
            now[0] = longest + 0.1  # b silent for longer than that: a goes freely
            a4, id4 = pad.patch(id3, b"a4")
            a5, id5 = pad.patch(id4, b"a5")
            assert _acked(await a.push(a4)) == (4, id4)
            assert _acked(await a.push(a5)) == (5, id5)
            assert _refused(await b.push(pad.patch(id1, b"b1")[0])) == (RefuseCode.STALE, 5)
            now[0] = longest + 0.2
            a6, _ = pad.patch(id5, b"a6")
            assert _refused(await a.push(a6)) == (RefuseCode.YIELD, 20)  # b is back
            b2, id6 = pad.patch(id5, b"b1 again")
            assert _acked(await b.push(b2)) == (6, id6)
            assert _refused(await a.push(a6)) == (RefuseCode.STALE, 6)

    run(scenario, clock=lambda: now[0])


def _acked(answer: f.Ack | f.Refuse) -> tuple[int, bytes]:
    assert isinstance(answer, f.Ack), answer
    return answer.seq, answer.id


def _refused(answer: f.Ack | f.Refuse) -> tuple[int, int]:
    assert isinstance(answer, f.Refuse), answer
    stale = answer.code == RefuseCode.STALE
    return answer.code, answer.head_seq if stale else answer.retry_after_ms
