"""Crash runs with an exact oracle: a relay and SDK typists SIGKILLed at random.

One **run** (:func:`crash_run`) is a fresh SQLite store, a real relay
process and 2-3 typists, each a real ``client.Pad`` in its own process with
its own state directory.  Every typist types **unique tokens** (``<typist>.<n>``
followed by a space, inserted at a token boundary, never deleted), so the
oracle is exact.  A seeded RNG SIGKILLs the relay and the typists at random
moments and restarts them; a typist restarts with its state directory, so
its write-ahead log is recovered.  At the end every typist finishes its
tokens and waits until the relay acknowledged them, a fresh reader (no state)
opens the pad, and :func:`check` compares.

Each typist journals, in a file of its own (plain ``write`` on an
``O_APPEND`` descriptor: a SIGKILL cannot lose what the kernel already has):

* ``a <token>`` before the edit call: *attempted*;
* ``t <token>`` after the call returned: *typed* (the SDK then owes it to us);
* ``s <count>`` after ``Pad.synced()`` returned: every token typed before
  it is *acknowledged* by the relay.

The oracle: every token appears at most once in the final text; every typed
token is present (so every acknowledged one is); nothing is present that was
never attempted; all readers see the same text.  A token attempted but never
typed (killed inside the call) may be present or absent, once.

Processes are made by ``os.fork`` from the test process, which has imported
the client and the relay already: a typist or relay costs milliseconds to
start instead of an interpreter's start-up, so hundreds of runs fit in CI.
The children are real processes, and SIGKILL is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

# Imported before any fork, so the children start warm.
import httpx
from relay_support import Client, RelayHandle

import crypto
import relay.cli
from client import Backoff, Pad
from crypto.envelope import Kind, seal
from crypto.envelope2 import ref_of
from wire import frames as f
from wire.history import parse_history

FAST = Backoff(initial=0.02, cap=0.2)
HANG_GUARD_S = float(os.environ.get("BLINDPAD_CRASH_HANG_GUARD_S", "600"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _child(target: str, log: Path, body: object) -> int:
    """Fork; the child redirects its output to ``log`` and runs ``body()``."""
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        code = body()  # type: ignore[operator]
    except BaseException as error:  # the child must never return into pytest
        with contextlib.suppress(Exception):
            os.write(2, f"{target} failed: {error!r}\n".encode())
    finally:
        os._exit(code if isinstance(code, int) else 70)


def start_relay(db: Path, port: int, log: Path) -> int:
    argv = ["serve", "--port", str(port), "--store", f"sqlite:///{db}", "--no-web"]
    return _child("relay", log, lambda: relay.cli.main(argv))


async def _type(
    link: str, state: Path, journal: Path, who: str, tokens: int, seed: int, filler: int
) -> int:
    rng = random.Random(seed)
    done = _journal_read(journal)
    start = max((int(tok.split(".")[1].split("|")[0]) + 1 for tok in done.attempted), default=0)
    fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    pad = await Pad.open(link, state_dir=state, backoff=FAST, open_timeout=HANG_GUARD_S)
    print(f"{time.time():.3f} opened at {start} with text {pad.text!r}", flush=True)
    try:
        for n in range(start, tokens):
            token = f"{who}.{n}|" + _filler(f"{who}.{n}", filler) if filler else f"{who}.{n}"
            text = pad.text
            bounds = [0] + [i + 1 for i, char in enumerate(text) if char == " "]
            at = rng.choice(bounds)
            os.write(fd, f"a {token}\n".encode())
            await pad.insert(at, token + " ")
            os.write(fd, f"t {token}\n".encode())
            if rng.random() < 0.15:
                await pad.synced(HANG_GUARD_S)
                os.write(fd, f"s {n + 1}\n".encode())
            await asyncio.sleep(rng.random() * 0.01)
        await pad.synced(HANG_GUARD_S)
        os.write(fd, f"s {tokens}\n".encode())
        os.write(fd, b"done\n")
    finally:
        for alarm in pad.alarms:
            print(f"alarm: {alarm}", flush=True)
        await pad.aclose()
        os.close(fd)
    return 0


def _filler(token: str, length: int) -> str:
    """Text that lengthens ``token`` without repeating its neighbours' (hex of
    its hash): long identical runs make the recovery's text diff ambiguous,
    which docs/RELIABILITY.md lists as a known limit."""
    blocks = (hashlib.sha256(f"{token}/{n}".encode()).hexdigest() for n in range(length // 64 + 1))
    return "".join(blocks)[:length]


def start_typist(
    link: str, state: Path, journal: Path, who: str, tokens: int, seed: int, filler: int, log: Path
) -> int:
    return _child(
        "typist",
        log,
        lambda: asyncio.run(_type(link, state, journal, who, tokens, seed, filler)),
    )


@dataclass
class Journal:
    attempted: list[str] = field(default_factory=list)
    typed: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    done: bool = False


def _journal_read(path: Path) -> Journal:
    journal = Journal()
    if not path.exists():
        return journal
    for line in path.read_text("utf-8").splitlines():
        kind, _, value = line.partition(" ")
        if kind == "a":
            journal.attempted.append(value)
        elif kind == "t":
            journal.typed.append(value)
        elif kind == "s":
            journal.acknowledged = list(journal.typed)
        elif kind == "done":
            journal.done = True
    return journal


@dataclass
class RunResult:
    seed: int
    kills: int
    tokens: int
    final: str
    problems: list[str]
    trimmed: bool = False


class _Channel:
    """What relay_support.Client.subscribe needs of a pad: its keys."""

    def __init__(self, keys: crypto.PadKeys) -> None:
        self.keys = keys
        self.channel_id = keys.channel_id


async def _trim(base_url: str, link_text: str) -> str:
    """As an editor: trim the history at the latest snapshot ("" if none)."""
    keys = crypto.parse_link(link_text).keys
    url = f"{base_url}v1/channels/{keys.channel_id.hex()}/history?from=snapshot"
    headers = {"Authorization": f"Blindpad-Read {keys.read_token.hex()}"}
    async with httpx.AsyncClient(headers=headers) as http:
        body = parse_history((await http.get(url)).content)
    if body.snapshot is None:
        return ""
    x = ref_of(body.snapshot[1])
    trim = seal(keys, crypto.Author.generate("compactor"), Kind.TRIM, x, b"trim")
    async with Client.connect(RelayHandle(base_url)) as client:
        await client.subscribe(_Channel(keys))  # type: ignore[arg-type]
        rid = client.request_id()
        await client.send(f.Trim(rid, 0, trim))
        answer = await client.answer(rid)
    return "trimmed" if isinstance(answer, f.Ack) else ""


def check(final_texts: list[str], journals: dict[str, Journal]) -> list[str]:
    """The exact oracle; returns what is wrong (empty: the run is good)."""
    problems: list[str] = []
    if len(set(final_texts)) != 1:
        problems.append(f"readers disagree: {len(set(final_texts))} different texts")
    final = final_texts[0]
    present = final.split()
    counts: dict[str, int] = {}
    for token in present:
        counts[token] = counts.get(token, 0) + 1
    attempted = {tok for j in journals.values() for tok in j.attempted}
    for token, count in counts.items():
        if count > 1:
            problems.append(f"duplicated {count}x: {token}")
        if token not in attempted:
            problems.append(f"never typed, yet present: {token}")
    for who, journal in journals.items():
        lost_acked = [tok for tok in journal.acknowledged if tok not in counts]
        lost_typed = [tok for tok in journal.typed if tok not in counts]
        if lost_acked:
            problems.append(f"{who}: acknowledged but lost: {lost_acked}")
        elif lost_typed:
            problems.append(f"{who}: typed but lost: {lost_typed}")
        if not journal.done:
            problems.append(f"{who}: never finished its tokens")
    return problems


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _exited(pid: int) -> int | None:
    """The exit status if ``pid`` has exited (reaped), else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return -1
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status)


async def _create(base_url: str) -> str:
    links = await Pad.create(base_url, open_timeout=HANG_GUARD_S)
    return links.edit_link


async def _read(link: str, state: Path | None) -> str:
    pad = await Pad.open(link, state_dir=state, backoff=FAST, open_timeout=HANG_GUARD_S)
    try:
        await pad.synced(HANG_GUARD_S)
        return pad.text
    finally:
        await pad.aclose()


def crash_run(
    workdir: Path,
    seed: int,
    *,
    typists: int = 3,
    tokens: int = 12,
    away: bool = False,
    filler: int = 0,
) -> RunResult:
    """One run; see the module docstring.  Nothing here waits on wall-clock
    thresholds except the hang guard, whose message says what hung.

    ``away``: the first typist killed stays away until the others have
    finished (and written enough for snapshots); then the history is trimmed
    at the latest snapshot, and only then does it come back.  ``filler``
    lengthens every token (so that the pad writes snapshots sooner).
    """
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    db, port = workdir / "relay.sqlite3", free_port()
    relay_log = workdir / "relay.log"
    relay_pid = start_relay(db, port, relay_log)
    base = f"http://127.0.0.1:{port}/"
    names = [chr(ord("a") + i) for i in range(typists)]
    pids: dict[str, int] = {}
    kills = 0
    away_who: str | None = None
    trimmed = False
    try:
        link = _in_child_loop(lambda: _create(base))
        (workdir / "link").write_text(link + "\n", "utf-8")
        for who in names:
            pids[who] = _spawn(workdir, link, who, tokens, rng.randrange(2**32), filler)
        deadline = time.monotonic() + HANG_GUARD_S
        while True:
            finished = []
            for who, pid in list(pids.items()):
                status = _exited(pid)
                if status is None:
                    continue
                if _journal_read(workdir / f"{who}.journal").done:
                    finished.append(who)
                else:  # died on its own (not by us): the log says why
                    raise AssertionError(
                        f"seed {seed}: typist {who} exited {status} unfinished; "
                        f"see {workdir / (who + '.log')}"
                    )
            for who in finished:
                del pids[who]
            if away_who is not None and not pids:  # the others are done: trim, come back
                trimmed = _in_child_loop(lambda: _trim(base, link)) == "trimmed"
                pids[away_who] = _spawn(
                    workdir, link, away_who, tokens, rng.randrange(2**32), filler
                )
                away_who = None
                continue
            if not pids:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"seed {seed}: typists {sorted(pids)} hung (hang guard)")
            time.sleep(rng.random() * 0.15)
            if kills < 4 and rng.random() < 0.5:
                victim = rng.choice(["relay", *pids] if not (away and kills == 0) else [*pids])
                kills += 1
                with (workdir / "kills").open("a") as note:
                    note.write(f"{time.time():.3f} {victim}\n")
                if victim == "relay":
                    _kill(relay_pid)
                    time.sleep(rng.random() * 0.05)
                    relay_pid = start_relay(db, port, relay_log)
                elif away and kills == 1:
                    _kill(pids.pop(victim))
                    away_who = victim
                else:
                    _kill(pids[victim])
                    pids[victim] = _spawn(
                        workdir, link, victim, tokens, rng.randrange(2**32), filler
                    )
        journals = {who: _journal_read(workdir / f"{who}.journal") for who in names}
        texts = [_in_child_loop(lambda: _read(link, None))]
        for who in names:
            state = workdir / f"{who}.state"
            texts.append(_in_child_loop(lambda state=state: _read(link, state)))  # type: ignore[misc]
        problems = check(texts, journals)
        return RunResult(seed, kills, typists * tokens, texts[0], problems, trimmed)
    finally:
        for pid in pids.values():
            _kill(pid)
        _kill(relay_pid)


def _spawn(workdir: Path, link: str, who: str, tokens: int, seed: int, filler: int) -> int:
    return start_typist(
        link,
        workdir / f"{who}.state",
        workdir / f"{who}.journal",
        who,
        tokens,
        seed,
        filler,
        workdir / f"{who}.log",
    )


def _in_child_loop(make: object) -> str:
    """Run the coroutine ``make()`` in a forked child and return its string.

    The test process itself never runs an event loop, so forking stays safe.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.close(read)
            result = asyncio.run(make())  # type: ignore[operator]
            data = result.encode("utf-8", "surrogatepass")
            view = memoryview(data)
            while view:
                view = view[os.write(write, view) :]
            code = 0
        except BaseException as error:
            with contextlib.suppress(Exception):
                os.write(2, f"crashkit child failed: {error!r}\n".encode())
        finally:
            os._exit(code)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise AssertionError("a reader child failed (its error is on stderr above)")
    return b"".join(chunks).decode("utf-8", "surrogatepass")
