"""Protocol 2 on the relay: the read token, live snapshots, disputes, reading from the floor.

A real relay on loopback and real websockets clients (``relay_support``), as in
``test_relay_protocol.py``.  No timing is asserted: "nothing arrives" is shown
by a PING answered first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
from relay_support import Client, Pad, RelayHandle, read_headers, running_relay, small_limits

from crypto.envelope import Kind, envelope_id
from relay.app import RelayConfig
from relay.store import MemoryStore
from wire import frames as f
from wire import mmr
from wire.codes import RefuseCode

ZERO = f.ZERO_ID


def ids_of(proof: f.Proof) -> bytes:
    """The ids a PROOF names (level-0 nodes)."""
    return b"".join(node for _, node in mmr.unpack_nodes(proof.nodes))


def run(
    scenario: Callable[[RelayHandle], Awaitable[None]],
    store: MemoryStore | None = None,
    **limits: int,
) -> None:
    """Run ``scenario`` against a fresh in-memory relay."""
    config = RelayConfig(store_url="memory:", web_dir=None, limits=small_limits(**limits))
    with running_relay(config, store=store) as relay:
        asyncio.run(scenario(relay))


async def chain(client: Client, pad: Pad, n: int, parent: bytes = ZERO) -> list[bytes]:
    """Push ``n`` patches in a line; return their ids."""
    ids = []
    for i in range(n):
        envelope, pid = pad.patch(parent, b"patch %d" % i)
        ack = await client.push(envelope)
        assert isinstance(ack, f.Ack), ack
        ids.append(pid)
        parent = pid
    return ids


async def upload(client: Client, sealed: bytes, step: int) -> f.Ack | f.Refuse:
    """Upload a sealed snapshot in chunks of ``step`` bytes; its answer."""
    rid = client.request_id()
    for offset in range(0, len(sealed), step):
        chunk = sealed[offset : offset + step]
        await client.send(f.SnapshotChunk(rid, len(sealed), offset, chunk))
    return await client.answer(rid)


async def request(client: Client, frame: f.Frame) -> f.Ack | f.Refuse:
    """Send a request frame (its ``request_id`` is used) and wait for its answer."""
    await client.send(frame)
    return await client.answer(frame.request_id)  # type: ignore[union-attr]


async def quiet(client: Client, nonce: int) -> list[f.Frame]:
    """Everything the client receives before the PONG of a PING sent now."""
    await client.send(f.Ping(nonce))
    got: list[f.Frame] = []
    while not isinstance(frame := await client.recv(), f.Pong) or frame.nonce != nonce:
        got.append(frame)
    return got


async def snapshot_frames(client: Client, total: int) -> list[f.Snapshot]:
    """The SNAPSHOT frames that carry ``total`` bytes (skipping peer notices)."""
    got: list[f.Snapshot] = []
    while sum(len(s.data) for s in got) < total:
        frame = await client.recv()
        if isinstance(frame, f.Snapshot):
            got.append(frame)
        else:
            assert isinstance(frame, f.PeerJoined | f.PeerLeft), frame
    return got


# --- the read token --------------------------------------------------------------------


def test_a_stranger_with_the_channel_id_reads_nothing_and_learns_nothing() -> None:
    """Over websocket an existing pad without its token answers exactly as an unknown
    one (NO_VERIFY_KEY), and nothing can be sent to it; over HTTP the same 404."""
    pad, nowhere = Pad(), Pad()
    store = MemoryStore()

    async def scenario(relay: RelayHandle) -> None:
        async def stranger_knocks() -> None:
            async with Client.connect(relay) as stranger:
                for token in (ZERO, b"\x01" * 32, nowhere.keys.read_token):
                    rid = 77
                    for target in (pad, nowhere):
                        frame = f.Subscribe(
                            rid, target.channel_id, f.SubscribeFrom.SINCE, 0, ZERO, token
                        )
                        await stranger.send(frame)
                        answer = await stranger.answer(rid)
                        assert answer == f.Refuse(rid, RefuseCode.NO_VERIFY_KEY, 0, 0, ZERO)
                rid = stranger.request_id()
                await stranger.send(f.Ephemeral(rid, pad.ephemeral(b"hi")))
                refused = await stranger.answer(rid)
                assert isinstance(refused, f.Refuse)
                assert refused.code == RefuseCode.NOT_SUBSCRIBED
                assert isinstance(await stranger.push(pad.patch(ZERO)[0]), f.Refuse)

        async with Client.connect(relay) as owner:
            await owner.subscribe(pad)
            await chain(owner, pad, 2)
            await stranger_knocks()  # the channel is live here: checked from the cache
            assert await quiet(owner, 9) == []  # not even a PEER_JOINED
        info = await store.channel(pad.channel_id)
        assert info is not None
        assert info.read_hash == pad.keys.read_token_hash  # registered by the creator
        await stranger_knocks()  # nobody subscribed: checked from the store
        assert await store.channel(nowhere.channel_id) is None  # nothing was created
        # With the verify key (a creating SUBSCRIBE) but the wrong token: UNKNOWN_CHANNEL.
        async with Client.connect(relay) as creator:
            got = await creator.subscribe(pad, read_token=b"\x02" * 32)
            assert got[-1] == f.Refuse(got[-1].request_id, RefuseCode.UNKNOWN_CHANNEL, 0, 0, ZERO)  # type: ignore[union-attr]
        async with httpx.AsyncClient(base_url=relay.url) as http:
            for path in ("head", "history", "history?from=snapshot"):
                unknown = await http.get(f"/v1/channels/{nowhere.channel_id.hex()}/{path}")
                assert unknown.status_code == 404
                assert unknown.json()["code"] == "UNKNOWN_CHANNEL"
                for headers in (
                    {},
                    {"Authorization": "Blindpad-Read"},
                    {"Authorization": "Blindpad-Read " + pad.keys.read_token.hex().upper()},
                    {"Authorization": "Blindpad-Read " + pad.keys.read_token.hex()[:-2]},
                    {"Authorization": "Bearer " + pad.keys.read_token.hex()},
                    {"Authorization": "Blindpad-Read  " + pad.keys.read_token.hex()},
                    read_headers(b"\x03" * 32),
                    read_headers(pad.keys.read_token_hash),  # the hash is not the token
                    nowhere.read_headers(),
                ):
                    answer = await http.get(
                        f"/v1/channels/{pad.channel_id.hex()}/{path}", headers=headers
                    )
                    assert answer.status_code == 404, (path, headers)
                    assert answer.content == unknown.content, (path, headers)
                    assert answer.headers["content-type"] == unknown.headers["content-type"]
                    with_token = await http.get(
                        f"/v1/channels/{nowhere.channel_id.hex()}/{path}", headers=headers
                    )
                    assert with_token.content == unknown.content
            head = await http.get(
                f"/v1/channels/{pad.channel_id.hex()}/head", headers=pad.read_headers()
            )
            assert (head.status_code, head.json()["seq"]) == (200, 2)
            lower = {"authorization": "blindpad-read " + pad.keys.read_token.hex()}
            history = await http.get(f"/v1/channels/{pad.channel_id.hex()}/history", headers=lower)
            assert history.status_code == 200
            assert history.content[0] == 0x02  # the first patch

    run(scenario, store=store)


def test_the_token_opens_the_pad_for_editors_and_viewers() -> None:
    pad = Pad()

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as owner, Client.connect(relay) as viewer:
            await owner.subscribe(pad)
            ids = await chain(owner, pad, 3)
            got = await viewer.subscribe(pad, key=ZERO)  # a view link: no key, the token
            assert [g.seq for g in got if isinstance(g, f.History)] == [1, 2, 3]
            assert got[-1] == f.HistoryEnd(got[-1].request_id, pad.channel_id, 3, ids[-1])  # type: ignore[union-attr]
            await viewer.send(f.Ephemeral(viewer.request_id(), pad.ephemeral(b"cursor")))
            relayed = await owner.expect(f.EphemeralRelayed)
            assert relayed.sender == viewer.welcome.connection_id
        async with Client.connect(relay) as editor:
            got = await editor.subscribe(pad)  # the key again: opens, creates nothing
            assert isinstance(got[-1], f.HistoryEnd)
            assert got[-1].head_seq == 3

    run(scenario)


# --- live snapshots ----------------------------------------------------------------------


def test_a_stored_snapshot_goes_live_to_the_other_subscribers() -> None:
    """Bob and Carol get Alice's snapshot as LIVE chunks, byte for byte; Alice only its
    ACK; a subscriber that joins later reads it (not live) from the snapshot."""
    pad = Pad()
    limits = {"max_frame_bytes": 4096, "max_snapshot_bytes": 100_000}

    async def scenario(relay: RelayHandle) -> None:
        step = 4096 - 64
        async with (
            Client.connect(relay) as alice,
            Client.connect(relay) as bob,
            Client.connect(relay) as carol,
        ):
            await alice.subscribe(pad)
            await bob.subscribe(pad)
            await carol.subscribe(pad, key=ZERO)
            ids = await chain(alice, pad, 3)
            for client in (bob, carol):
                await client.expect(f.Broadcast)
                await client.expect(f.Broadcast)
                await client.expect(f.Broadcast)
            sealed = pad.sealed(Kind.SNAPSHOT, ids[1], bytes(range(256)) * 100)
            ack = await upload(alice, sealed, step)
            assert ack == f.Ack(ack.request_id, 2, envelope_id(sealed))
            for client in (bob, carol):
                chunks = await snapshot_frames(client, len(sealed))
                assert b"".join(c.data for c in chunks) == sealed
                assert [c.offset for c in chunks] == list(range(0, len(sealed), step))
                assert {(c.channel_id, c.x_seq, c.flags, c.total) for c in chunks} == {
                    (pad.channel_id, 2, f.SNAPSHOT_LIVE, len(sealed))
                }
                assert len(chunks) > 1
            assert not [g for g in await quiet(alice, 1) if isinstance(g, f.Snapshot)]
            # A patch after it is still broadcast in order.
            env, _ = pad.patch(ids[-1], b"after")
            assert isinstance(await alice.push(env), f.Ack)
            assert (await bob.expect(f.Broadcast)).seq == 4
        async with Client.connect(relay) as dave:
            got = await dave.subscribe(pad, start=f.SubscribeFrom.SNAPSHOT)
            chunks = [g for g in got if isinstance(g, f.Snapshot)]
            assert b"".join(c.data for c in chunks) == sealed
            assert {c.flags for c in chunks} == {0}

    run(scenario, **limits)


def test_an_uploaders_ack_comes_first_and_only_live_subscribers_get_it() -> None:
    pad = Pad()

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as alice, Client.connect(relay) as bob:
            await alice.subscribe(pad)
            ids = await chain(alice, pad, 2)
            await bob.subscribe(pad, since=2)
            sealed = pad.sealed(Kind.SNAPSHOT, ids[0], b"one")
            ack = await upload(alice, sealed, 10_000)
            assert ack == f.Ack(ack.request_id, 1, envelope_id(sealed))
            (chunk,) = await snapshot_frames(bob, len(sealed))
            assert chunk == f.Snapshot(pad.channel_id, 1, f.SNAPSHOT_LIVE, len(sealed), 0, sealed)
            # The same snapshot again: stored already, sent again (it was stored again).
            await bob.send(f.Unsubscribe(bob.request_id(), pad.channel_id))
            await bob.expect(f.Unsubscribed)
            assert isinstance(await upload(alice, sealed, 10_000), f.Ack)
            assert not [g for g in await quiet(bob, 2) if isinstance(g, f.Snapshot)]

    run(scenario)


# --- disputes ------------------------------------------------------------------------------


def test_a_dispute_is_checked_stored_acked_and_flags_its_snapshot() -> None:
    pad, other = Pad(), Pad()

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as alice, Client.connect(relay) as bob:
            await alice.subscribe(pad)
            ids = await chain(alice, pad, 3)
            sealed = pad.sealed(Kind.SNAPSHOT, ids[1], b"the text at 2")
            snapshot_id = envelope_id(sealed)
            assert isinstance(await upload(alice, sealed, 10_000), f.Ack)
            dispute = pad.sealed(Kind.DISPUTE, snapshot_id, b"reason 1")

            async def refused(client: Client, envelope: bytes, code: RefuseCode) -> None:
                answer = await request(client, f.Dispute(client.request_id(), envelope))
                assert isinstance(answer, f.Refuse), answer
                assert answer.code == code, (answer, code)

            # In the order the relay checks them.
            await refused(alice, b"\x01\x08" + bytes(10), RefuseCode.MALFORMED_ENVELOPE)
            await refused(alice, pad.sealed(Kind.TRIM, ids[1]), RefuseCode.WRONG_KIND)
            big = pad.sealed(Kind.DISPUTE, snapshot_id, b"x" * 5000)
            await refused(bob, big, RefuseCode.DISPUTE_TOO_LARGE)  # before the subscription
            await refused(bob, dispute, RefuseCode.NOT_SUBSCRIBED)
            await refused(
                alice, other.sealed(Kind.DISPUTE, snapshot_id), RefuseCode.NOT_SUBSCRIBED
            )
            forged = bytearray(dispute)
            forged[-1] ^= 1
            await refused(alice, bytes(forged), RefuseCode.BAD_SIGNATURE)
            await refused(alice, pad.sealed(Kind.DISPUTE, ids[1]), RefuseCode.UNKNOWN_PATCH)
            await refused(alice, pad.sealed(Kind.DISPUTE, b"\x05" * 32), RefuseCode.UNKNOWN_PATCH)
            await bob.subscribe(pad, since=3, key=ZERO)
            answer = await request(bob, f.Dispute(bob.request_id(), dispute))
            assert answer == f.Ack(answer.request_id, 2, envelope_id(dispute))
            again = await request(bob, f.Dispute(bob.request_id(), dispute))  # a resend
            assert again == f.Ack(again.request_id, 2, envelope_id(dispute))
            # Never forwarded: Alice sees nothing of it.
            assert not [g for g in await quiet(alice, 3) if not isinstance(g, f.PeerJoined)]
            trim = pad.sealed(Kind.TRIM, ids[1])
            answer = await request(alice, f.Trim(alice.request_id(), 0, trim))
            assert isinstance(answer, f.Refuse)
            assert answer.code == RefuseCode.SNAPSHOT_DISPUTED
        async with Client.connect(relay) as carol:
            got = await carol.subscribe(pad, start=f.SubscribeFrom.SNAPSHOT, key=ZERO)
            chunks = [g for g in got if isinstance(g, f.Snapshot)]
            assert b"".join(c.data for c in chunks) == sealed
            assert {(c.x_seq, c.flags) for c in chunks} == {(2, f.SNAPSHOT_DISPUTED)}
            assert [g.seq for g in got if isinstance(g, f.History)] == [3]

    run(scenario)


def test_a_snapshot_disputed_before_it_goes_live_is_flagged_live_and_disputed() -> None:
    """A resend of a disputed snapshot reaches live subscribers with both flags."""
    pad = Pad()

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as alice, Client.connect(relay) as bob:
            await alice.subscribe(pad)
            ids = await chain(alice, pad, 1)
            sealed = pad.sealed(Kind.SNAPSHOT, ids[0], b"forged")
            assert isinstance(await upload(alice, sealed, 10_000), f.Ack)
            dispute = pad.sealed(Kind.DISPUTE, envelope_id(sealed))
            assert isinstance(await request(alice, f.Dispute(alice.request_id(), dispute)), f.Ack)
            await bob.subscribe(pad, since=1)
            assert isinstance(await upload(alice, sealed, 10_000), f.Ack)
            (chunk,) = await snapshot_frames(bob, len(sealed))
            assert chunk.flags == f.SNAPSHOT_LIVE | f.SNAPSHOT_DISPUTED

    run(scenario)


# --- reading from the floor --------------------------------------------------------------


def test_earliest_replays_everything_stored_from_the_floor() -> None:
    pad = Pad()

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as alice:
            await alice.subscribe(pad)
            ids = await chain(alice, pad, 5)
            sealed = pad.sealed(Kind.SNAPSHOT, ids[3], b"text at 4")
            assert isinstance(await upload(alice, sealed, 10_000), f.Ack)
        async with Client.connect(relay) as bob:  # never trimmed: no snapshot, all patches
            got = await bob.subscribe(pad, start=f.SubscribeFrom.EARLIEST, key=ZERO)
            assert not [g for g in got if isinstance(g, f.Snapshot)]
            assert [g.seq for g in got if isinstance(g, f.History)] == [1, 2, 3, 4, 5]
            assert isinstance(got[-1], f.HistoryEnd)
        async with Client.connect(relay) as alice:
            await alice.subscribe(pad, since=5)
            early = pad.sealed(Kind.SNAPSHOT, ids[1], b"text at 2")
            assert isinstance(await upload(alice, early, 10_000), f.Ack)
            trim = pad.sealed(Kind.TRIM, ids[1])
            answer = await request(alice, f.Trim(alice.request_id(), 0, trim))
            assert answer == f.Ack(answer.request_id, 2, envelope_id(trim))
            dispute = pad.sealed(Kind.DISPUTE, envelope_id(early))
            assert isinstance(await request(alice, f.Dispute(alice.request_id(), dispute)), f.Ack)
        async with Client.connect(relay) as bob:  # trimmed at 2: the snapshot at the floor
            got = await bob.subscribe(pad, start=f.SubscribeFrom.EARLIEST, key=ZERO)
            chunks = [g for g in got if isinstance(g, f.Snapshot)]
            assert b"".join(c.data for c in chunks) == early
            assert {(c.x_seq, c.flags) for c in chunks} == {(2, f.SNAPSHOT_DISPUTED)}
            assert [g.seq for g in got if isinstance(g, f.History)] == [3, 4, 5]
            assert got[-1] == f.HistoryEnd(got[-1].request_id, pad.channel_id, 5, ids[-1])  # type: ignore[union-attr]
            latest = await bob.subscribe(Pad(), key=ZERO)  # (an unknown pad: refused)
            assert isinstance(latest[-1], f.Refuse)
        async with Client.connect(relay) as carol:  # from the latest snapshot: 4, undisputed
            got = await carol.subscribe(pad, start=f.SubscribeFrom.SNAPSHOT, key=ZERO)
            chunks = [g for g in got if isinstance(g, f.Snapshot)]
            assert {(c.x_seq, c.flags) for c in chunks} == {(4, 0)}
            assert [g.seq for g in got if isinstance(g, f.History)] == [5]

    run(scenario)


class _CountingStore(MemoryStore):
    """Counts the snapshot parts read."""

    def __init__(self) -> None:
        super().__init__()
        self.parts = 0

    async def read_snapshot(
        self,
        channel_id: bytes,
        x_seq: int,
        offset: int,
        size: int,
        *,
        snapshot_id: bytes | None = None,
    ) -> bytes:
        self.parts += 1
        return await super().read_snapshot(
            channel_id, x_seq, offset, size, snapshot_id=snapshot_id
        )


def test_a_live_snapshot_is_read_a_chunk_at_a_time_as_the_reader_takes_it() -> None:
    """A receiver that does not read holds one chunk, not the snapshot; closing its
    subscription stops the sending, and the next snapshot queued for its connection
    (another channel) is still sent, after the first, never interleaved."""
    from relay.hub import ChannelState, Hub, Outbox, Subscription
    from relay.live import LiveSnapshots

    pad, second = Pad(), Pad()
    step = 1000

    async def settle() -> None:
        for _ in range(50):
            await asyncio.sleep(0)

    async def main() -> None:
        store = _CountingStore()
        hub = Hub()
        outbox = Outbox(1000, max_bytes=2 * step)  # room for about two chunks
        subs = {}
        for p in (pad, second):
            await store.create_channel(p.channel_id, p.keys.verify_key, p.keys.read_token_hash)
            envelope, pid = p.patch(ZERO)
            await store.append(p.channel_id, pid, ZERO, envelope)
            sealed = p.sealed(Kind.SNAPSHOT, pid, bytes(10 * step))
            await store.put_snapshot(p.channel_id, pid, envelope_id(sealed), sealed)
            state = ChannelState(p.keys.verify_key, p.keys.read_token_hash, 0, 0)
            sub = Subscription(p.channel_id, 7, outbox, 100)
            hub.register(state, p.channel_id, sub)
            sub.go_live(2)
            subs[p.channel_id] = sub
        outbox._frames.clear()  # the PEER notices
        outbox.bytes = 0
        live = LiveSnapshots(store, hub, step)
        live.stored(pad.channel_id, 1, origin=None)
        live.stored(second.channel_id, 1, origin=None)
        live.stored(pad.channel_id, 1, origin=7)  # its own upload: not sent back
        await settle()
        held = store.parts
        assert 2 <= held <= 4  # what fits, and one chunk waiting for room
        assert all(f.decode(x).channel_id == pad.channel_id for x in outbox._frames)  # type: ignore[union-attr]
        first = f.decode(await outbox.next())  # type: ignore[arg-type]
        assert isinstance(first, f.Snapshot)
        assert (first.offset, first.flags) == (0, f.SNAPSHOT_LIVE)
        await settle()
        assert store.parts == held + 1  # one more chunk read for the room made
        subs[pad.channel_id].close()  # UNSUBSCRIBE: the rest of the first is not sent
        await settle()
        got: list[f.Snapshot] = []
        while len(outbox) or live._senders:
            frame = f.decode(await asyncio.wait_for(outbox.next(), 30))  # type: ignore[arg-type]
            assert isinstance(frame, f.Snapshot)
            got.append(frame)
            await settle()
        firsts = [g for g in got if g.channel_id == pad.channel_id]
        seconds = [g for g in got if g.channel_id == second.channel_id]
        assert got == firsts + seconds  # never interleaved
        assert len(firsts) < 9  # cut short by the close
        assert [g.offset for g in seconds] == list(range(0, seconds[0].total, step))
        assert b"".join(g.data for g in seconds) == await store.read_snapshot(
            second.channel_id, 1, 0, seconds[0].total
        )
        await live.close()

    asyncio.run(main())


def test_a_live_snapshot_replaced_while_it_is_sent_is_abandoned_not_spliced() -> None:
    """A newer snapshot of the same patch replaces the one being sent (every
    typist of a pad snapshots the same patch): no more of the old one is sent,
    none of the new one's bytes are spliced onto it, the connection goes on
    (it used to be closed SLOW_CONSUMER: seven of eight typists reconnected at
    once), and the new one follows whole, from offset 0, which the client's
    reassembly takes in place of the part it holds."""
    from client.connection import SnapshotChunks
    from relay.hub import ChannelState, Hub, Outbox, Subscription
    from relay.live import LiveSnapshots

    pad = Pad()
    step = 1000

    async def settle() -> None:
        for _ in range(50):
            await asyncio.sleep(0)

    async def main() -> None:
        store = MemoryStore()
        hub = Hub()
        outbox = Outbox(1000, max_bytes=2 * step)  # room for about two chunks
        await store.create_channel(pad.channel_id, pad.keys.verify_key, pad.keys.read_token_hash)
        envelope, pid = pad.patch(ZERO)
        await store.append(pad.channel_id, pid, ZERO, envelope)
        old = pad.sealed(Kind.SNAPSHOT, pid, bytes(10 * step))
        new = pad.sealed(Kind.SNAPSHOT, pid, b"n" * (10 * step))
        assert len(old) == len(new)
        assert envelope_id(old) != envelope_id(new)
        await store.put_snapshot(pad.channel_id, pid, envelope_id(old), old)
        state = ChannelState(pad.keys.verify_key, pad.keys.read_token_hash, 0, 0)
        sub = Subscription(pad.channel_id, 7, outbox, 100)
        hub.register(state, pad.channel_id, sub)
        sub.go_live(2)
        outbox._frames.clear()  # the PEER notice
        outbox.bytes = 0
        live = LiveSnapshots(store, hub, step)
        live.stored(pad.channel_id, 1, origin=None)
        await settle()
        got: list[f.Snapshot] = []
        frame = f.decode(await outbox.next())  # type: ignore[arg-type]
        assert isinstance(frame, f.Snapshot)
        assert frame.offset == 0
        got.append(frame)
        await store.put_snapshot(pad.channel_id, pid, envelope_id(new), new)  # replaced
        live.stored(pad.channel_id, 1, origin=None)
        await settle()
        while len(outbox) or live._senders:
            frame = f.decode(await asyncio.wait_for(outbox.next(), 30))  # type: ignore[arg-type]
            assert isinstance(frame, f.Snapshot)
            got.append(frame)
            await settle()
        assert outbox.failure is None
        assert live.abandoned == 1
        assert live.sent == 1
        restart = max(i for i, g in enumerate(got) if g.offset == 0)
        assert 0 < restart < 10  # part of the old one, then the new one
        assert b"".join(g.data for g in got[:restart]) == old[: restart * step]
        assert b"".join(g.data for g in got[restart:]) == new
        chunks = SnapshotChunks()
        done = [chunks.add(g.x_seq, g.total, g.offset, g.data) for g in got]
        assert [d for d in done if d is not None] == [(1, new)]
        await live.close()

    asyncio.run(main())


# --- proofs ------------------------------------------------------------------------------


def test_a_proof_names_the_ids_between_two_heights_trimmed_ones_too() -> None:
    pad = Pad()

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as alice, Client.connect(relay) as stranger:
            rid = stranger.request_id()
            refused = await request(stranger, f.ProofRequest(rid, pad.channel_id, 0, 5))
            assert isinstance(refused, f.Refuse)
            assert refused.code == RefuseCode.NOT_SUBSCRIBED
            await alice.subscribe(pad)
            ids = await chain(alice, pad, 6)
            sealed = pad.sealed(Kind.SNAPSHOT, ids[3], b"text at 4")
            assert isinstance(await upload(alice, sealed, 10_000), f.Ack)
            trim = pad.sealed(Kind.TRIM, ids[3])
            assert isinstance(await request(alice, f.Trim(alice.request_id(), 0, trim)), f.Ack)

            async def proof(after: int, to: int) -> f.Proof:
                rid = alice.request_id()
                await alice.send(f.ProofRequest(rid, pad.channel_id, after, to))
                got = await alice.expect(f.Proof)
                assert (got.request_id, got.channel_id, got.from_seq) == (
                    rid,
                    pad.channel_id,
                    after,
                )
                return got

            assert ids_of(await proof(0, 6)) == b"".join(ids)  # 1-4 trimmed, 5-6 stored
            assert ids_of(await proof(2, 5)) == ids[2] + ids[3] + ids[4]
            assert ids_of(await proof(6, 9)) == b""  # none known
            assert ids_of(await proof(5, 2**64 - 1)) == ids[5]
            assert ids_of(await proof(2**64 - 1, 2**64 - 1)) == b""

    run(scenario)


def test_a_proof_comes_in_pages_of_max_proof_ids() -> None:
    from relay.edge.seed import seed_pad

    store = MemoryStore()
    n = f.MAX_PROOF_NODES + 10

    async def scenario(relay: RelayHandle) -> None:
        seeded = await seed_pad(store, n)
        async with Client.connect(relay) as client:
            pad = Pad()
            pad.keys = seeded.keys
            got = await client.subscribe(pad, key=ZERO)
            assert got[-1].head_seq == n  # type: ignore[union-attr]
            rid = client.request_id()
            await client.send(f.ProofRequest(rid, pad.channel_id, 3, n))
            first = await client.expect(f.Proof)
            assert len(ids_of(first)) == 32 * f.MAX_PROOF_NODES
            rid = client.request_id()
            after = 3 + f.MAX_PROOF_NODES
            await client.send(f.ProofRequest(rid, pad.channel_id, after, n))
            rest = await client.expect(f.Proof)
            assert (rest.from_seq, len(ids_of(rest))) == (after, 32 * (n - after))
            assert ids_of(rest)[-32:] == seeded.head.id

    run(scenario, store=store)


def test_a_proof_from_inside_a_trimmed_block_starts_at_the_block_and_folds() -> None:
    """After a trim at 600 the relay keeps blocks 1-256 and 257-512 as roots: a client
    that verified patch 300 is answered from 256 (the block's root, then ids) and its
    descent check (client.trust.DescentProof) accepts the snapshot at 600."""
    from client.trust import OK, DescentProof
    from relay.edge.seed import seed_pad

    store = MemoryStore()

    async def scenario(relay: RelayHandle) -> None:
        seeded = await seed_pad(store, 700)
        pad = Pad()
        pad.keys = seeded.keys
        cid = pad.channel_id
        ids = [p.id for p in (await store.read_since(cid, 0)).patches]
        await store.put_snapshot(cid, ids[599], b"s" * 32, b"snapshot at 600")
        assert await store.trim(cid, ids[599], 0) == 600
        async with Client.connect(relay) as client:
            got = await client.subscribe(pad, start=f.SubscribeFrom.SNAPSHOT, key=ZERO)
            assert isinstance(got[-1], f.HistoryEnd)
            for remembered in (300, 256, 512, 550):
                check = DescentProof(
                    (remembered, ids[remembered - 1]),
                    mmr.of(ids[:remembered]),
                    (600, mmr.of(ids[:600])),
                )
                pages: list[f.Proof] = []
                while not check.complete:
                    rid = client.request_id()
                    await client.send(f.ProofRequest(rid, cid, check.next_from, 600))
                    pages.append(await client.expect(f.Proof))
                    check.take(pages[-1].from_seq, pages[-1].nodes)
                if remembered == 300:  # inside block 2, kept as its root: from 256
                    assert pages[0].from_seq == 256
                    assert mmr.unpack_nodes(pages[0].nodes) == [
                        (8, mmr.block_root(ids[256:512])),
                        *((0, i) for i in ids[512:600]),
                    ]
                assert check.verdict() == OK, remembered

    run(scenario, store=store)


# --- the history view over HTTP -----------------------------------------------------------


def test_the_history_view_lists_the_kept_snapshots_and_reads_one() -> None:
    """A TRIM's keep_pct keeps older snapshots (checkpoints); GET .../snapshots lists
    them oldest first, and ?from=snapshot&at=SEQ reads one, with the patches after it
    while they are stored."""
    from wire.history import parse_history

    pad = Pad()

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as alice:
            await alice.subscribe(pad)
            ids = await chain(alice, pad, 6)
            sealed = {
                x: pad.sealed(Kind.SNAPSHOT, ids[x - 1], b"text at %d" % x) for x in (2, 4, 5)
            }
            for x in (2, 4, 5):
                assert isinstance(await upload(alice, sealed[x], 10_000), f.Ack)
            dispute = pad.sealed(Kind.DISPUTE, envelope_id(sealed[5]))
            assert isinstance(await request(alice, f.Dispute(alice.request_id(), dispute)), f.Ack)
            trim = pad.sealed(Kind.TRIM, ids[3])
            answer = await request(alice, f.Trim(alice.request_id(), 100, trim))
            assert answer == f.Ack(answer.request_id, 4, envelope_id(trim))

        base = f"/v1/channels/{pad.channel_id.hex()}"
        async with httpx.AsyncClient(base_url=relay.url, headers=pad.read_headers()) as http:
            listed = (await http.get(f"{base}/snapshots")).json()
            assert listed == {
                "channel": pad.channel_id.hex(),
                "floor": 4,
                "head": 6,
                "snapshots": [
                    {
                        "seq": x,
                        "id": envelope_id(sealed[x]).hex(),
                        "bytes": len(sealed[x]),
                        "disputed": x == 5,
                    }
                    for x in (2, 4, 5)  # 2 is a checkpoint below the floor
                ],
            }
            below = parse_history((await http.get(f"{base}/history?from=snapshot&at=2")).content)
            assert (below.snapshot, below.patches) == ((2, sealed[2]), [])  # 3 and 4 trimmed
            assert (below.head_seq, below.head_id) == (6, ids[5])
            at = parse_history((await http.get(f"{base}/history?from=snapshot&at=4")).content)
            assert at.snapshot == (4, sealed[4])
            assert [seq for seq, _ in at.patches] == [5, 6]
            missing = await http.get(f"{base}/history?from=snapshot&at=3")
            assert (missing.status_code, missing.json()["code"]) == (404, "NO_SNAPSHOT")
            huge = await http.get(f"{base}/history?from=snapshot&at={2**64 - 1}")
            assert (huge.status_code, huge.json()["code"]) == (404, "NO_SNAPSHOT")
            for query in (
                "at=2",
                "since=4&at=4",
                "from=snapshot&at=-1",
                "from=snapshot&at=x",
                f"from=snapshot&at={2**64}",
                "from=snapshot&at=+4",
            ):
                bad = await http.get(f"{base}/history?{query}")
                assert (bad.status_code, bad.json()["code"]) == (400, "BAD_QUERY"), query
        async with httpx.AsyncClient(base_url=relay.url) as stranger:
            for path in ("snapshots", "history?from=snapshot&at=4"):
                wrong = read_headers(b"\x01" * 32)
                for headers in ({}, wrong):
                    got = await stranger.get(f"{base}/{path}", headers=headers)
                    assert got.status_code == 404
                    assert got.json() == {"code": "UNKNOWN_CHANNEL", "message": "no such channel"}
            nobody = await stranger.get(f"/v1/channels/{'ab' * 32}/snapshots", headers=wrong)
            assert nobody.json()["code"] == "UNKNOWN_CHANNEL"

    run(scenario)
