"""Version-2 envelopes at the relay: session records, session signatures, RECORD.

What a client relies on (PROTOCOL.md §8.4, §9.1, §9.3): only an editor
registers a session; the relay checks each session-signed envelope against
the key its session registered, for the channel the frame names; and every
subscription, from history, a snapshot, live or through another relay
process, receives a session's RECORD before the first envelope of that
session, once.  Real relays on loopback ports, real websockets.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from relay_support import TIMEOUT, Client, Pad, RelayHandle, running_relay, small_limits
from services import fresh_postgres

from crypto import envelope2
from crypto.envelope import Kind, envelope_id
from relay.app import RelayConfig
from relay.verifier import Verdict, Verifier, verdict
from wire import frames as f
from wire.codes import RefuseCode
from wire.history import parse_history

ZERO = bytes(32)


def run(scenario: object, config: RelayConfig | None = None) -> None:
    config = config or RelayConfig(store_url="memory:", web_dir=None, limits=small_limits())
    with running_relay(config) as relay:
        asyncio.run(asyncio.wait_for(scenario(relay), TIMEOUT * 4))  # type: ignore[operator]


def envelopes(frames: list[f.Frame]) -> list[tuple[str, bytes]]:
    """The frames that carry an envelope or a record, named, in order (peer
    notices and the end of history left out)."""
    named: list[tuple[str, bytes]] = []
    for frame in frames:
        if isinstance(frame, f.Record):
            assert frame.kind == envelope2.SESSION
            named.append(("RECORD", frame.envelope))
        elif isinstance(frame, f.History | f.Broadcast):
            named.append((type(frame).__name__.upper(), frame.envelope))
        elif isinstance(frame, f.Snapshot):
            named.append(("SNAPSHOT", frame.data))
    return named


async def until(client: Client, count: int) -> list[f.Frame]:
    """Frames until ``count`` of them carry an envelope or a record."""
    got: list[f.Frame] = []
    while len(envelopes(got)) < count:
        got.append(await client.recv())
    return got


async def snapshot(client: Client, pad: Pad, data: bytes) -> f.Ack | f.Refuse:
    rid = client.request_id()
    await client.send(f.SnapshotChunk(rid, len(data), 0, data, channel_id=pad.channel_id))
    return await client.answer(rid)


def test_a_sessions_record_goes_before_its_first_envelope_on_every_subscription() -> None:
    async def scenario(relay: RelayHandle) -> None:
        pad = Pad()
        one, record_one = pad.session2()
        two, record_two = pad.session2()
        async with Client.connect(relay) as writer, Client.connect(relay) as reader:
            await writer.subscribe(pad)
            await reader.subscribe(pad)
            assert isinstance(await writer.register(pad, record_one), f.Ack)
            p1, id1 = pad.patch2(one, ZERO, 1, 1)
            p2, id2 = pad.patch2(one, id1, 2, 2)
            p3, id3 = pad.patch(id2)  # a version-1 envelope in the same chain
            for envelope in (p1, p2):
                assert isinstance(await writer.push(envelope, pad.channel_id), f.Ack)
            assert isinstance(await writer.push(p3), f.Ack)
            live = envelopes(await until(reader, 4))
            assert live == [
                ("RECORD", record_one),
                ("BROADCAST", p1),
                ("BROADCAST", p2),
                ("BROADCAST", p3),
            ]
            # A snapshot sealed by another session: its record first, live too.
            assert isinstance(await writer.register(pad, record_two), f.Ack)
            snap = pad.sealed2(two, Kind.SNAPSHOT, id3, 3, 1, b"text")
            ack = await snapshot(writer, pad, snap)
            assert isinstance(ack, f.Ack)
            assert (ack.seq, ack.id) == (3, envelope_id(snap))
            live = envelopes(await until(reader, 2))
            assert live == [("RECORD", record_two), ("SNAPSHOT", snap)]
        async with Client.connect(relay) as late:
            history = envelopes(await late.subscribe(pad))
            assert history == [
                ("RECORD", record_one),
                ("HISTORY", p1),
                ("HISTORY", p2),
                ("HISTORY", p3),
            ]
        async with Client.connect(relay) as joiner:
            got = envelopes(await joiner.subscribe(pad, start=f.SubscribeFrom.SNAPSHOT))
            assert got == [("RECORD", record_two), ("SNAPSHOT", snap)]
        # The HTTP history body carries the records too (PROTOCOL.md §4.2).
        base = f"/v1/channels/{pad.channel_id.hex()}/history"
        headers = pad.read_headers()
        async with httpx.AsyncClient(base_url=relay.url, timeout=TIMEOUT, headers=headers) as http:
            body = parse_history((await http.get(f"{base}?since=0")).content)
            assert (body.sessions, [e for _, e in body.patches]) == ([record_one], [p1, p2, p3])
            body = parse_history((await http.get(f"{base}?from=snapshot")).content)
            assert (body.sessions, body.snapshot) == ([record_two], (3, snap))

    run(scenario)


def test_the_relay_checks_who_may_register_and_what_each_session_signed() -> None:
    async def scenario(relay: RelayHandle) -> None:
        pad, other = Pad(), Pad()
        session, record = pad.session2()
        async with Client.connect(relay) as c:
            await c.subscribe(pad)
            await c.subscribe(other)
            # Only the channel key registers: another pad's record, a bit flipped.
            _, foreign = other.session2()
            refused = await c.register(pad, foreign)
            assert isinstance(refused, f.Refuse)
            assert refused.code == RefuseCode.BAD_SIGNATURE
            flipped = bytearray(record)
            flipped[-1] ^= 1
            refused = await c.register(pad, bytes(flipped))
            assert isinstance(refused, f.Refuse)
            assert refused.code == RefuseCode.BAD_SIGNATURE
            refused = await c.register(pad, record[:100])
            assert isinstance(refused, f.Refuse)
            assert refused.code == RefuseCode.MALFORMED_ENVELOPE
            ack = await c.register(pad, record)
            assert ack == f.Ack(ack.request_id, 0, envelope_id(record))
            again = await c.register(pad, record)  # a resend after a lost ACK
            assert isinstance(again, f.Ack)
            assert again.id == envelope_id(record)
            p1, id1 = pad.patch2(session, ZERO, 1, 1)
            # A version-2 envelope names no channel: the frame must.
            refused = await c.push(p1)
            assert isinstance(refused, f.Refuse)
            assert refused.code == RefuseCode.MALFORMED_ENVELOPE
            forged = bytearray(p1)
            forged[-1] ^= 1
            refused = await c.push(bytes(forged), pad.channel_id)
            assert isinstance(refused, f.Refuse)
            assert refused.code == RefuseCode.BAD_SIGNATURE
            # The same session key registered on another pad: an envelope sealed
            # for this pad does not verify there (the channel is signed, not sent).
            there = envelope2.seal_session_record(other.keys, other.author, session, 1)
            assert isinstance(await c.register(other, there), f.Ack)
            refused = await c.push(p1, other.channel_id)
            assert isinstance(refused, f.Refuse)
            assert refused.code == RefuseCode.BAD_SIGNATURE
            ack = await c.push(p1, pad.channel_id)
            assert isinstance(ack, f.Ack)
            assert (ack.seq, ack.id) == (1, id1)
            resent = await c.push(p1, pad.channel_id)  # dedupe, as in version 1
            assert isinstance(resent, f.Ack)
            assert (resent.seq, resent.id) == (1, id1)
            # A version-1 envelope in a frame naming another channel is malformed.
            v1, _ = pad.patch(id1)
            refused = await c.push(v1, other.channel_id)
            assert isinstance(refused, f.Refuse)
            assert refused.code == RefuseCode.MALFORMED_ENVELOPE
            # Trim and dispute, session-signed, for the frame's channel.
            snap = pad.sealed2(session, Kind.SNAPSHOT, id1, 1, 2, b"t")
            assert isinstance(await snapshot(c, pad, snap), f.Ack)
            rid = c.request_id()
            dispute = pad.sealed2(session, Kind.DISPUTE, envelope_id(snap), 1, 3, b"d")
            await c.send(f.Dispute(rid, dispute, channel_id=pad.channel_id))
            assert await c.answer(rid) == f.Ack(rid, 1, envelope_id(dispute))
            rid = c.request_id()
            trim = pad.sealed2(session, Kind.TRIM, id1, 1, 4, b"{}")
            await c.send(f.Trim(rid, 0, trim, channel_id=pad.channel_id))
            refused = await c.answer(rid)
            assert isinstance(refused, f.Refuse)
            assert refused.code == RefuseCode.SNAPSHOT_DISPUTED  # checked, then judged

    run(scenario)


def test_session_records_outlive_the_relay_process(tmp_path: object) -> None:
    pad = Pad()
    session, record = pad.session2()
    p1, _ = pad.patch2(session, ZERO, 1, 1)
    url = f"sqlite:///{tmp_path}/relay.sqlite3"
    config = RelayConfig(store_url=url, web_dir=None, limits=small_limits())

    async def write(relay: RelayHandle) -> None:
        async with Client.connect(relay) as c:
            await c.subscribe(pad)
            assert isinstance(await c.register(pad, record), f.Ack)
            assert isinstance(await c.push(p1, pad.channel_id), f.Ack)

    async def read(relay: RelayHandle) -> None:
        async with Client.connect(relay) as c:
            assert envelopes(await c.subscribe(pad)) == [("RECORD", record), ("HISTORY", p1)]
            # A pushing client that reconnects may push at once: its session is
            # read back from the store.
            p2, _ = pad.patch2(session, envelope_id(p1), 2, 2)
            assert isinstance(await c.push(p2, pad.channel_id), f.Ack)

    run(write, config)
    run(read, config)


@pytest.mark.parametrize("bus", ["postgres", "none"])
def test_a_client_of_another_relay_process_gets_the_record_first(bus: str) -> None:
    with fresh_postgres() as url:
        config = RelayConfig(
            store_url=url,
            web_dir=None,
            limits=small_limits(),
            bus=None if bus == "postgres" else "none",
            poll_seconds=0.2,
        )
        with running_relay(config) as one, running_relay(config) as two:

            async def scenario() -> None:
                pad = Pad()
                session, record = pad.session2()
                async with Client.connect(one) as writer, Client.connect(two) as reader:
                    await writer.subscribe(pad)
                    await reader.subscribe(pad)
                    assert isinstance(await writer.register(pad, record), f.Ack)
                    p1, id1 = pad.patch2(session, ZERO, 1, 1)
                    p2, _ = pad.patch2(session, id1, 2, 2)
                    for envelope in (p1, p2):
                        assert isinstance(await writer.push(envelope, pad.channel_id), f.Ack)
                    live = envelopes(await until(reader, 3))
                    assert live == [("RECORD", record), ("BROADCAST", p1), ("BROADCAST", p2)]

            asyncio.run(asyncio.wait_for(scenario(), TIMEOUT * 4))


def test_the_verifier_helper_checks_session_signatures_as_the_loop_does() -> None:
    pad = Pad()
    session, _ = pad.session2()
    good = [pad.patch2(session, ZERO, 1, n)[0] for n in range(1, 4)]
    forged = bytearray(good[0])
    forged[40] ^= 1
    wrong_channel = pad.patch2(session, ZERO, 1, 9)[0]
    checks = [(e, pad.channel_id) for e in good]
    checks += [(bytes(forged), pad.channel_id), (wrong_channel, Pad().channel_id)]
    expected = [Verdict.GOOD] * 3 + [Verdict.BAD_SIGNATURE] * 2

    async def helper() -> list[Verdict]:
        verifier = Verifier(processes=1)
        await verifier.start()
        try:
            futures = [verifier.check(e, session.public_key, channel) for e, channel in checks]
            verdicts = list(await asyncio.gather(*futures))
            assert (verifier.remote, verifier.inline) == (len(checks), 0), "not in the helper"
            return verdicts
        finally:
            await verifier.close()

    loop = [verdict(e, session.public_key, None, channel) for e, channel in checks]
    assert loop == expected
    assert asyncio.run(asyncio.wait_for(helper(), TIMEOUT * 4)) == expected


def test_a_session_whose_record_a_trim_dropped_registers_again_and_its_patch_lands(
    tmp_path: object,
) -> None:
    """PROTOCOL.md §9.3: a trim drops the record of a session whose envelopes it
    all took (registered before X).  The relay stores it again if that session
    sent through it since its last trim (an envelope of it may have been in
    flight); at the next trim it goes.  That session, still connected, is then
    refused UNKNOWN_SESSION when it sends again (the relay's cache forgot it
    too), registers again, and its patch lands with its record stored before it."""
    pad = Pad()
    idle, record_idle = pad.session2()
    writer, record_writer = pad.session2()
    p1, id1 = pad.patch2(idle, ZERO, 1, 1)
    p2, id2 = pad.patch2(idle, id1, 2, 2)
    p3, id3 = pad.patch2(writer, id2, 3, 1)
    p4, id4 = pad.patch2(writer, id3, 4, 2)
    p5, id5 = pad.patch2(writer, id4, 5, 3)
    p6, id6 = pad.patch2(writer, id5, 6, 4)
    snap3 = pad.sealed2(writer, Kind.SNAPSHOT, id3, 3, 5, b"text")
    snap5 = pad.sealed2(writer, Kind.SNAPSHOT, id5, 5, 6, b"text")
    p7, _ = pad.patch2(idle, id6, 7, 3)
    url = f"sqlite:///{tmp_path}/relay.sqlite3"
    config = RelayConfig(store_url=url, web_dir=None, limits=small_limits())

    async def trim_at(client: Client, x_id: bytes, height: int, counter: int) -> f.Ack | f.Refuse:
        rid = client.request_id()
        trim = pad.sealed2(writer, Kind.TRIM, x_id, height, counter, b"{}")
        await client.send(f.Trim(rid, 0, trim, channel_id=pad.channel_id))
        return await client.answer(rid)

    async def write(relay: RelayHandle) -> None:
        async with Client.connect(relay) as a, Client.connect(relay) as b:
            await a.subscribe(pad)
            await b.subscribe(pad)
            assert isinstance(await a.register(pad, record_idle), f.Ack)
            for envelope in (p1, p2):
                assert isinstance(await a.push(envelope, pad.channel_id), f.Ack)
            assert isinstance(await b.register(pad, record_writer), f.Ack)
            for envelope in (p3, p4):
                assert isinstance(await b.push(envelope, pad.channel_id), f.Ack)
            assert isinstance(await snapshot(b, pad, snap3), f.Ack)
            ack = await trim_at(b, id3, 3, 7)
            assert isinstance(ack, f.Ack)
            assert ack.seq == 3  # idle's record: dropped, and stored again (it sent here)
            for envelope in (p5, p6):
                assert isinstance(await b.push(envelope, pad.channel_id), f.Ack)
            assert isinstance(await snapshot(b, pad, snap5), f.Ack)
            ack = await trim_at(b, id5, 5, 8)
            assert isinstance(ack, f.Ack)
            assert ack.seq == 5  # idle's record: dropped (quiet since the last trim)
            refused = await a.push(p7, pad.channel_id)
            assert isinstance(refused, f.Refuse)
            assert refused.code == RefuseCode.UNKNOWN_SESSION
            assert isinstance(await a.register(pad, record_idle), f.Ack)
            ack = await a.push(p7, pad.channel_id)
            assert isinstance(ack, f.Ack)
            assert ack.seq == 7

    async def read(relay: RelayHandle) -> None:  # a new process: records from the store
        async with Client.connect(relay) as c:
            got = envelopes(await c.subscribe(pad, start=f.SubscribeFrom.SNAPSHOT))
            assert got == [
                ("RECORD", record_writer),
                ("SNAPSHOT", snap5),
                ("HISTORY", p6),
                ("RECORD", record_idle),
                ("HISTORY", p7),
            ]

    run(write, config)
    run(read, config)


def test_a_record_another_process_trimmed_away_is_stored_again_by_the_one_that_used_it() -> None:
    """Two relay processes: a session sending through one while the other trims
    away everything it signed.  Its record goes from the store, but the process
    it sent through stores it again at its next poll (an envelope accepted from
    its cache may name it), even though that session's connection, its last
    subscriber there, left at once; so a reader on the other process gets the
    record before that session's later patch."""
    with fresh_postgres() as url:
        config = RelayConfig(
            store_url=url, web_dir=None, limits=small_limits(), bus="none", poll_seconds=0.2
        )
        with running_relay(config) as one, running_relay(config) as two:

            async def scenario() -> None:
                pad = Pad()
                idle, record_idle = pad.session2()
                writer, record_writer = pad.session2()
                p1, id1 = pad.patch2(idle, ZERO, 1, 1)
                p2, id2 = pad.patch2(writer, id1, 2, 1)
                p3, id3 = pad.patch2(writer, id2, 3, 2)
                snap = pad.sealed2(writer, Kind.SNAPSHOT, id2, 2, 3, b"text")
                trim = pad.sealed2(writer, Kind.TRIM, id2, 2, 4, b"{}")
                p4, _ = pad.patch2(idle, id3, 4, 2)
                async with Client.connect(two) as a, Client.connect(one) as b:
                    await a.subscribe(pad)
                    await b.subscribe(pad)
                    assert isinstance(await a.register(pad, record_idle), f.Ack)
                    assert isinstance(await a.push(p1, pad.channel_id), f.Ack)
                    assert isinstance(await b.register(pad, record_writer), f.Ack)
                    for envelope in (p2, p3):
                        assert isinstance(await b.push(envelope, pad.channel_id), f.Ack)
                    assert isinstance(await snapshot(b, pad, snap), f.Ack)
                    # two offered p2 and p3 (else the trim would send a to resume)
                    got = envelopes(await until(a, 3))
                    assert got == [("RECORD", record_writer), ("BROADCAST", p2), ("BROADCAST", p3)]
                    rid = b.request_id()
                    await b.send(f.Trim(rid, 0, trim, channel_id=pad.channel_id))
                    assert await b.answer(rid) == f.Ack(rid, 2, envelope_id(trim))
                    ack = await a.push(p4, pad.channel_id)  # before or after two's poll
                    assert isinstance(ack, f.Ack)
                    assert ack.seq == 4
                expected = [
                    ("RECORD", record_writer),
                    ("SNAPSHOT", snap),
                    ("HISTORY", p3),
                    ("RECORD", record_idle),
                    ("HISTORY", p4),
                ]
                while True:  # until two's poll has stored the record again
                    async with Client.connect(one) as reader:
                        start = f.SubscribeFrom.SNAPSHOT
                        got = envelopes(await reader.subscribe(pad, start=start))
                    if got == expected:
                        break
                    assert got == [item for item in expected if item[1] != record_idle]
                    await asyncio.sleep(0.05)

            asyncio.run(asyncio.wait_for(scenario(), TIMEOUT * 4))
