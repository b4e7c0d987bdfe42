"""Version-2 envelopes in a session: sealed under a session, registered before
they are sent, opened only with their session's record (PROTOCOL.md §9, §12.1).

Sans-I/O: the tests play the relay with frames."""

from __future__ import annotations

import hashlib
from typing import Any

from test_session import join, make, sent

import crypto
from client.events import Alarm, AlarmKind, Status
from client.session import PadSession
from client.textops import Op
from crypto import envelope2
from crypto.backend import get_backend
from wire import frames as f
from wire.codes import RefuseCode

ZERO = f.ZERO_ID


def raw(session: PadSession) -> list[Any]:
    """The frames the session queued, SESSION included and unanswered (presence
    and head beacons left out)."""
    frames = [f.decode_client(frame) for frame in session.frames_to_send()]
    return [frame for frame in frames if not isinstance(frame, f.Ephemeral)]


def alarms(session: PadSession) -> list[AlarmKind]:
    return [e.kind for e in session.events() if isinstance(e, Alarm)]


def one_letter_content(keys: crypto.PadKeys) -> bytes:
    """The content of a patch inserting "a" into an empty pad, as a writer seals it."""
    writer = make(keys=keys)
    join(writer)
    writer.edit((Op(0, 0, "a"),))
    (push,) = sent(writer)
    opened = writer.engine.codec.open(push.envelope)
    assert opened.content is not None
    return opened.content


def test_a_writer_seals_version_2_and_registers_its_session_first() -> None:
    session = make()
    join(session)
    session.edit((Op(0, 0, "a"),))
    register, push = raw(session)
    assert isinstance(register, f.Session)
    assert isinstance(push, f.Push)
    assert push.channel_id == register.channel_id == session.keys.channel_id
    header = envelope2.parse(push.envelope)
    assert (header.kind, header.ref, header.height, header.counter) == (1, ZERO, 1, 1)
    assert envelope2.session_tag(envelope2.session_key_of(register.record)) == header.tag
    assert len(push.envelope) < 150  # 303 bytes in version 1
    session.edit((Op(1, 0, "b"),))
    session.receive_frame(f.encode(f.Ack(push.request_id, 1, crypto.envelope_id(push.envelope))))
    (second,) = raw(session)  # the session is registered on this connection already
    assert isinstance(second, f.Push)
    assert envelope2.parse(second.envelope).counter == 2


def test_a_patch_signed_at_another_height_is_a_no_op_for_everyone() -> None:
    keys = crypto.PadKeys.generate()
    content = one_letter_content(keys)
    session = envelope2.SessionKeys.generate()
    author = crypto.Author.generate("mallory")
    record = envelope2.seal_session_record(keys, author, session, 1)
    wrong = envelope2.seal(keys, session, 1, ZERO, 5, 1, content)  # at height 1, signed 5
    reader = make(keys=keys.view())
    join(reader)
    reader.receive_frame(f.encode(f.Record(keys.channel_id, envelope2.SESSION, record)))
    reader.receive_frame(f.encode(f.Broadcast(keys.channel_id, 1, wrong)))
    assert reader.text == ""
    assert reader.engine.head.height == 1  # in the chain, as a no-op
    assert AlarmKind.INVALID_PATCH in alarms(reader)
    right = envelope2.seal(keys, session, 1, crypto.envelope_id(wrong), 2, 2, content)
    reader.receive_frame(f.encode(f.Broadcast(keys.channel_id, 2, right)))
    assert reader.text == "a"


def test_an_envelope_whose_session_record_never_came_is_unreadable() -> None:
    keys = crypto.PadKeys.generate()
    writer = make(keys=keys)
    join(writer)
    writer.edit((Op(0, 0, "a"),))
    register, push = raw(writer)
    reader = make(keys=keys.view())
    join(reader)
    reader.receive_frame(f.encode(f.Broadcast(keys.channel_id, 1, push.envelope)))
    assert reader.text == ""
    assert AlarmKind.UNREADABLE in alarms(reader)
    # A record of another pad is not learnt either: the relay could not have sent it.
    other = crypto.PadKeys.generate()
    foreign = envelope2.seal_session_record(
        other, writer.author, envelope2.SessionKeys.generate(), 1
    )
    reader.receive_frame(f.encode(f.Record(keys.channel_id, envelope2.SESSION, foreign)))
    assert AlarmKind.UNREADABLE in alarms(reader)
    # Nor a second record under a tag it knows (a relay cannot swap a session's key).
    reader.receive_frame(f.encode(f.Record(keys.channel_id, envelope2.SESSION, register.record)))
    assert alarms(reader) == []
    tag = envelope2.session_tag(envelope2.session_key_of(register.record))
    assert reader.engine.codec.learn(register.record) == tag  # the same again: fine
    other_record = _renamed(keys, register.record, b"x")
    reader.receive_frame(f.encode(f.Record(keys.channel_id, envelope2.SESSION, other_record)))
    assert AlarmKind.UNREADABLE in alarms(reader)


def _renamed(keys: crypto.PadKeys, record: bytes, name: bytes) -> bytes:
    """``record`` with its sealed name replaced (same length) and signed again by
    the channel key: an editor binding a session to a name its author did not sign."""
    backend = get_backend()
    nonce, box = record[34:58], record[58:-64]
    content = backend.secretbox_open(keys.sym_key, nonce, box)
    content = content[: -len(name)] + name
    unsigned = record[:58] + backend.secretbox_seal(keys.sym_key, nonce, content)
    seed = keys.require_sign_seed("test")
    return unsigned + backend.sign(seed, b"blindpad/v2/session" + keys.channel_id + unsigned)


def test_a_session_bound_to_a_name_its_author_did_not_sign_writes_only_no_ops() -> None:
    keys = crypto.PadKeys.generate()
    content = one_letter_content(keys)
    session = envelope2.SessionKeys.generate()
    author = crypto.Author.generate("alice")
    record = _renamed(keys, envelope2.seal_session_record(keys, author, session, 1), b"bob__")
    envelope2.verify_session_record(record, keys.verify_key, keys.channel_id)  # relay: fine
    patch = envelope2.seal(keys, session, 1, ZERO, 1, 1, content)
    reader = make(keys=keys.view())
    join(reader)
    reader.receive_frame(f.encode(f.Record(keys.channel_id, envelope2.SESSION, record)))
    reader.receive_frame(f.encode(f.Broadcast(keys.channel_id, 1, patch)))
    assert reader.text == ""
    assert reader.engine.head.height == 1
    assert AlarmKind.INVALID_PATCH in alarms(reader)


def test_a_taken_tag_makes_a_new_session_and_the_work_lands_under_it() -> None:
    session = make()
    join(session)
    session.edit((Op(0, 0, "a"),))
    register, push = raw(session)
    old_tag = envelope2.parse(push.envelope).tag
    taken = f.Refuse(register.request_id, RefuseCode.SESSION_TAG_TAKEN, 0, 0, ZERO)
    unknown = f.Refuse(push.request_id, RefuseCode.UNKNOWN_SESSION, 0, 0, ZERO)
    session.receive_frame(f.encode(taken))
    session.receive_frame(f.encode(unknown))
    assert session.failure is None
    register, push = raw(session)  # sealed again, under a new session registered first
    assert isinstance(register, f.Session)
    assert isinstance(push, f.Push)
    header = envelope2.parse(push.envelope)
    assert header.tag != old_tag
    assert (header.ref, header.height, header.counter) == (ZERO, 1, 1)
    assert envelope2.session_tag(envelope2.session_key_of(register.record)) == header.tag
    session.receive_frame(f.encode(f.Ack(register.request_id, 0, b"r" * 32)))
    session.receive_frame(f.encode(f.Ack(push.request_id, 1, crypto.envelope_id(push.envelope))))
    assert session.status is Status.SAVED
    assert session.text == "a"


def test_a_relay_that_forgets_a_session_is_told_again_and_the_work_lands() -> None:
    session = make()
    join(session)
    session.edit((Op(0, 0, "a"),))
    register, push = raw(session)
    session.receive_frame(f.encode(f.Ack(register.request_id, 0, b"r" * 32)))
    unknown = f.Refuse(push.request_id, RefuseCode.UNKNOWN_SESSION, 0, 0, ZERO)
    session.receive_frame(f.encode(unknown))  # a relay restored from an older backup, say
    again, resealed = raw(session)
    assert isinstance(again, f.Session)
    assert again.record == register.record  # the same session, registered again
    assert envelope2.parse(resealed.envelope).counter == 2  # a new envelope, a new nonce
    ack = f.Ack(resealed.request_id, 1, crypto.envelope_id(resealed.envelope))
    session.receive_frame(f.encode(ack))
    assert session.status is Status.SAVED
    assert session.text == "a"


def test_a_restart_registers_the_logged_session_before_it_resends_the_log() -> None:
    keys = crypto.PadKeys.generate()
    typist = make(keys=keys)
    join(typist)
    typist.edit((Op(0, 0, "typed"),))
    _, push = raw(typist)  # sent, never answered: the process dies
    log = typist.write_ahead()
    assert log == [typist.engine.codec.record(envelope2.parse(push.envelope).tag), push.envelope]
    restarted = make(keys=keys, recovered=log)
    restarted.connected()
    subscribe = next(x for x in raw(restarted) if isinstance(x, f.Subscribe))
    restarted.receive_frame(f.encode(f.Welcome(1, 7, 4096, 65536, 1 << 24, 4096, 64, 200, 400)))
    end = f.HistoryEnd(subscribe.request_id, keys.channel_id, 0, ZERO)
    restarted.receive_frame(f.encode(end))
    register, resent = raw(restarted)
    assert isinstance(register, f.Session)
    assert register.record == log[0]  # the dead session's, so its sealed bytes land as they are
    assert isinstance(resent, f.Push)
    assert resent.envelope == push.envelope
    ack = f.Ack(resent.request_id, 1, hashlib.sha256(push.envelope).digest())
    restarted.receive_frame(f.encode(ack))
    assert restarted.text == "typed"
    restarted.edit((Op(5, 0, "!"),))  # new work: under a session of its own
    (register, fresh) = raw(restarted)
    assert isinstance(register, f.Session)
    assert envelope2.parse(fresh.envelope).tag != envelope2.parse(push.envelope).tag
