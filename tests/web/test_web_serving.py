"""The relay serves the web client: hashed assets, MIME types, a lock of our wheel only.

Also the sans-I/O editor binding (client/browser.py) on CPython: crossing
edits, selections through remote changes, undo of one's own edits only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from relay_support import ROOT, running_relay

import crypto
from client import linebreaks, textdiff, textops
from client.browser import (
    clean_color,
    clean_name,
    color_of,
    edit_refused,
    failure_text,
    hex_color,
    read_profile,
)
from client.editor import EditorBinding, _Step, _through
from client.errors import InvalidEdit, ReadOnly
from client.events import Failed, TextChanged
from client.session import PadSession
from relay.app import DEFAULT_WEB_DIR, RelayConfig, create_app
from relay.edge import web
from wire import frames as f

needs_runtime = pytest.mark.skipif(
    not (ROOT / "node_modules" / "pyodide" / "pyodide.asm.wasm").is_file(),
    reason="node_modules/pyodide is missing (run scripts/setup)",
)


@needs_runtime
def test_page_assets_mime_types_and_lock() -> None:
    config = RelayConfig(store_url="memory:", web_dir=DEFAULT_WEB_DIR)

    async def fetch(url: str) -> None:
        async with httpx.AsyncClient(base_url=url) as http:
            page = await http.get("/p/")
            assert page.status_code == 200
            assert page.headers["cache-control"] == "no-cache"
            assert "default-src 'self'" in page.headers["content-security-policy"]
            assert (await http.get("/")).text == page.text
            urls = re.findall(r'(?:src|href|data-[a-z-]+)="(/assets/[^"]+)"', page.text)
            assert len(urls) >= 7
            assert all("{{" not in u for u in urls)
            base = next(u for u in urls if u.endswith("/") and "/pyodide-" in u)
            for name, mime in [
                ("pyodide.asm.wasm", "application/wasm"),
                ("pyodide.mjs", "text/javascript"),
                ("pyodide.asm.mjs", "text/javascript"),
                ("python_stdlib.zip", "application/zip"),
            ]:
                got = await http.get(base + name)
                assert got.status_code == 200, name
                assert got.headers["content-type"].startswith(mime), name
                assert "immutable" in got.headers["cache-control"]
            lock_url = next(u for u in urls if u.endswith("pyodide-lock.json"))
            lock = (await http.get(lock_url)).json()
            assert list(lock["packages"]) == ["blindpad"]
            entry = lock["packages"]["blindpad"]
            wheel = await http.get(lock_url.rsplit("/", 1)[0] + "/" + entry["file_name"])
            assert hashlib.sha256(wheel.content).hexdigest() == entry["sha256"]
            assert lock["info"]["abi_version"]
            names = zipfile.ZipFile(BytesIO(wheel.content)).namelist()
            assert "client/browser.py" in names
            assert not any(n.startswith("relay/") for n in names)
            for url in urls:
                if not url.endswith("/"):
                    assert (await http.get(url)).status_code == 200, url
            assert (await http.get("/assets/app.0000.js")).status_code == 404

    with running_relay(config) as relay:
        asyncio.run(fetch(relay.url))


@needs_runtime
def test_asset_names_follow_content(tmp_path: Path) -> None:
    web_dir = tmp_path / "web"
    web_dir.mkdir()
    for name in ("index.html", *web.PAGE_FILES):
        (web_dir / name).write_bytes((DEFAULT_WEB_DIR / name).read_bytes())
    modules = ROOT / "node_modules"
    first = web.build_bundle(web_dir, modules)
    assert web.build_bundle(web_dir, modules).urls == first.urls  # deterministic
    (web_dir / "app.js").write_text("// v2\n" + (DEFAULT_WEB_DIR / "app.js").read_text())
    second = web.build_bundle(web_dir, modules)
    assert second.urls["app.js"] != first.urls["app.js"]
    assert second.urls["pyodide"] == first.urls["pyodide"]
    assert second.urls["app.js"].encode() in second.html


def test_missing_runtime_refuses_with_the_command(tmp_path: Path) -> None:
    web_dir = tmp_path / "web"
    web_dir.mkdir()
    for name in ("index.html", *web.PAGE_FILES):
        (web_dir / name).write_bytes((DEFAULT_WEB_DIR / name).read_bytes())
    with pytest.raises(web.WebAssetsMissing, match="scripts/setup"):
        create_app(RelayConfig(store_url="memory:", web_dir=web_dir))
    result = subprocess.run(
        [sys.executable, "-m", "relay", "--port", "0", "--store", "memory:"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "BLINDPAD_NODE_MODULES": str(tmp_path / "none")},
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard only: the relay refuses at once
        check=False,
    )
    assert result.returncode == 1
    assert "scripts/setup" in result.stderr
    assert "pyodide" in result.stderr


# --- the binding, on CPython ----------------------------------------------------


def _ops(patch: textops.Patch) -> list[tuple[int, int, str]]:
    return [(op.pos, op.delete, op.insert) for op in patch]


def _joined(keys: crypto.PadKeys) -> PadSession:
    """A session live on an empty pad (HELLO, SUBSCRIBE answered by HISTORY_END)."""
    session = PadSession(keys, crypto.Author.generate("t"))
    session.connected()
    subscribe = f.decode_client(session.frames_to_send()[1])
    assert isinstance(subscribe, f.Subscribe)
    end = f.HistoryEnd(subscribe.request_id, subscribe.channel_id, 0, f.ZERO_ID)
    session.receive_frame(f.encode(end))
    return session


def _binding(text: str) -> EditorBinding:
    binding = EditorBinding(_joined(crypto.PadKeys.generate()))
    assert binding.reset() == ""
    if text:
        binding.local_edit(textops.normalize([(0, 0, text)]), 0)
    return binding


def _remote(binding: EditorBinding, patch: textops.Patch) -> None:
    """Feed a remote change the way the session reports one."""
    engine = binding.session.engine
    engine.view = textops.apply(engine.view, patch)
    engine.open = textops.transform(engine.open, patch)
    binding.session._events.append(TextChanged(patch))


def test_crossing_local_and_remote_edits_converge() -> None:
    b = _binding("hello world")
    _remote(b, textops.normalize([(0, 0, ">> ")]))  # not yet shown on the page
    shown = "hello world"
    local = textops.normalize([(11, 0, "!")])
    b.local_edit(local, 10_000)  # typed on the stale displayed text
    shown = textops.apply(shown, local)
    patches, sel = b.take_changes((12, 12))
    for patch in patches:
        shown = textops.apply(shown, patch)
    assert shown == b.session.text == ">> hello world!"
    assert sel == (15, 15)  # the caret moved with the remote insert before it


def test_undo_removes_only_own_edit_through_remote_changes() -> None:
    b = _binding("abc")
    b.local_edit(textops.normalize([(3, 0, " MINE")]), 5_000)
    _remote(b, textops.normalize([(0, 0, "THEIRS ")]))
    b.take_changes(None)
    undo = b.undo(6_000)
    assert undo is not None
    assert b.session.text == "THEIRS abc"
    redo = b.redo(7_000)
    assert redo is not None
    assert b.session.text == "THEIRS abc MINE"


def test_undo_stack_transform_keeps_entries_on_their_text() -> None:
    doc = "abc"
    first = textops.normalize([(3, 0, "X")])  # "abcX"
    second = textops.normalize([(0, 1, "")])  # "bcX"
    stack = [_Step(textops.invert(first, doc), 0)]
    doc1 = textops.apply(doc, first)
    stack.append(_Step(textops.invert(second, doc1), 0))
    doc2 = textops.apply(doc1, second)
    remote = textops.normalize([(1, 0, "R")])  # "bRcX"
    doc3 = textops.apply(doc2, remote)
    stack = _through(stack, remote)
    doc4 = textops.apply(doc3, stack[-1].patch)
    assert doc4 == "abRcX"
    assert textops.apply(doc4, stack[0].patch) == "abRc"


def test_colours_are_stable_and_distinct() -> None:
    assert color_of("aa" * 32) == color_of("aa" * 32)
    assert len({color_of(f"{i:064x}") for i in range(20)}) > 10
    assert json.dumps(color_of("00" * 32)).startswith('"hsl(')


def test_a_chosen_name_and_colour_are_cleaned_as_stored() -> None:
    """What the page's "You" menu stores: one line of at most 64 code points, #rrggbb."""
    assert clean_name("  Ada \n Lovelace 🧮 ") == "Ada Lovelace 🧮"
    assert clean_name("é" * 100) == "é" * 64
    assert clean_name(None) == ""
    assert clean_color("#11AA33") == "#11aa33"
    for bad in ("red", "#fff", "#11aa33;x", "url(x)", 7):
        assert clean_color(bad) == ""
    assert read_profile({"name": " Ada ", "color": "#11aa33"}) == ("Ada", "#11aa33")
    assert read_profile({"name": "", "color": "nope"}) == ("", "")
    assert read_profile("damaged") == ("", "")


def test_hex_color_of_the_default_colours() -> None:
    """The colour input needs #rrggbb; the default is color_of's hsl()."""
    assert hex_color("hsl(0 100% 50%)") == "#ff0000"
    assert hex_color("hsl(120 100% 25%)") == "#008000"
    assert hex_color("#11aa33") == "#11aa33"
    assert all(len(hex_color(color_of(f"{i:064x}"))) == 7 for i in range(50))
    with pytest.raises(ValueError, match="not a colour"):
        hex_color("rebeccapurple")


def _page(binding: EditorBinding, shown: str) -> str:
    """What the page shows after taking the binding's changes."""
    patches, _ = binding.take_changes(None)
    for patch in patches:
        shown = textops.apply(shown, patch)
    return shown


def test_crlf_document_is_shown_with_newlines_and_keeps_its_breaks() -> None:
    doc = "line 1 😀\r\nline 2\r\nlone CR\rend\r\n"
    b = _binding(doc)
    shown = b.reset()
    assert shown == "line 1 😀\nline 2\nlone CR\nend\n"
    assert _page(b, shown) == shown  # opening changes nothing
    assert b.session.text == doc
    typed = textops.normalize([(len(shown), 0, "typed ✓")])
    b.local_edit(typed, 1_000)
    shown = textops.apply(shown, typed)
    assert b.session.text == doc + "typed ✓"
    enter = textops.normalize([(shown.index("line 2") + 4, 0, "\n")])
    b.local_edit(enter, 2_000)
    assert b.session.text == "line 1 😀\r\nline\n 2\r\nlone CR\rend\r\ntyped ✓"
    joined = textops.normalize([(shown.index("\nline 2"), 1, "")])  # delete a \r\n break
    b.local_edit(joined, 9_000)
    assert b.session.text.startswith("line 1 😀line\n 2\r\n")


def test_a_newline_typed_after_a_lone_cr_stays_a_second_break() -> None:
    b = _binding("a\rb")
    assert b.reset() == "a\nb"
    b.local_edit(textops.normalize([(2, 0, "\n")]), 0)  # Enter at the start of "b"
    assert b.session.text == "a\r\r\nb"  # two breaks in the document, as on the page


def test_two_edits_in_one_frame_keep_the_breaks_between_them() -> None:
    # The page takes one diff per frame: typing at the end and an Enter in the
    # middle before the next frame arrive as one replace of all between them.
    # That span's \r\n and lone \r were shown the same and must stay (a
    # browser run once saved every break after the Enter as a bare \n).
    doc = "line 1 😀\r\nline 2\r\nlone CR\rend\r\n"
    b = _binding(doc)
    shown = b.reset()
    new = shown.replace("line 2", "line\n 2") + "typed ✓"
    start = shown.index(" 2")
    b.local_edit(textops.normalize([(start, len(shown) - start, new[start:])]), 1_000)
    assert b.session.text == "line 1 😀\r\nline\n 2\r\nlone CR\rend\r\ntyped ✓"


def test_a_replace_over_line_breaks_touches_only_what_it_changes() -> None:
    rng = random.Random(11)
    pieces = ["\r", "\n", "\r\n", "a", "b", "😀"]
    for _ in range(3000):
        doc = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        shown = linebreaks.shown(doc)
        new = shown
        for _ in range(rng.randint(1, 3)):  # a few edits, taken as one replace
            at = rng.randint(0, len(new))
            cut = rng.randint(0, min(2, len(new) - at))
            new = (
                new[:at]
                + "".join(rng.choice("\nx😀") for _ in range(rng.randint(0, 2)))
                + new[at + cut :]
            )
        head = 0
        while head < min(len(shown), len(new)) and shown[head] == new[head]:
            head += 1
        tail = 0
        while tail < min(len(shown), len(new)) - head and shown[-1 - tail] == new[-1 - tail]:
            tail += 1
        one = textops.normalize([(head, len(shown) - head - tail, new[head : len(new) - tail])])
        after = textops.apply(doc, linebreaks.edit_to_doc(doc, one))
        assert linebreaks.shown(after) == new
        # Every break the smallest edit leaves alone keeps its \r.
        gone = sum(
            shown[op.pos : op.pos + op.delete].count("\n") for op in textdiff.diff(shown, new)
        )
        assert after.count("\r") >= doc.count("\r") - gone, (doc, new, after)


def test_remote_changes_reach_the_page_in_its_line_breaks() -> None:
    b = _binding("x\r\ny")
    shown = b.reset()
    _remote(b, textops.normalize([(1, 0, "\r\nmid")]))  # "x\r\nmid\r\ny"
    patches, sel = b.take_changes((len(shown), len(shown)))
    for patch in patches:
        shown = textops.apply(shown, patch)
    assert shown == "x\nmid\ny"
    assert sel == (len(shown), len(shown))
    _remote(b, textops.normalize([(6, 1, "")]))  # delete the \r of the second pair
    assert _page(b, shown) == "x\nmid\ny"  # a lone \n is still one break


def test_line_break_mapping_round_trips_on_random_documents() -> None:
    rng = random.Random(7)
    pieces = ["\r", "\n", "\r\n", "a", "😀"]
    for _ in range(3000):
        doc = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 9)))
        shown = linebreaks.shown(doc)
        start = rng.randint(0, len(shown))
        end = rng.randint(start, len(shown))
        insert = "".join(rng.choice(["\n", "x", "😀"]) for _ in range(rng.randint(0, 2)))
        edit = textops.normalize([(start, end - start, insert)])
        after = textops.apply(doc, linebreaks.edit_to_doc(doc, edit))
        assert linebreaks.shown(after) == textops.apply(shown, edit)
        ops = linebreaks.edit_to_doc(doc, edit)
        if ops:  # nothing outside the edited span changed (a no-op edit: nothing at all)
            first, last = ops[0], ops[-1]
            assert after[: first.pos] == doc[: first.pos]
            assert after.endswith(doc[last.pos + last.delete :])
        change = textops.normalize([(rng.randint(0, len(doc)), 0, rng.choice(pieces))])
        moved = linebreaks.change_to_shown(doc, change)
        assert textops.apply(shown, moved) == linebreaks.shown(textops.apply(doc, change))


def test_page_failures_are_one_line_saying_what_to_do() -> None:
    refused = failure_text(Failed("CREATE_TOKEN_REQUIRED", "the relay refused a subscribe"))
    assert "does not exist on this relay" in refused
    assert "check that the link is complete" in refused
    missing = failure_text(Failed("NO_VERIFY_KEY", "the relay refused a subscribe"))
    assert "does not exist on this relay" in missing
    assert "create a new pad" in missing
    other = failure_text(Failed("CODE_99", "the relay refused a patch"))
    assert "Reload the page" in other
    flooded = failure_text(Failed("CREATE_RATE_LIMITED", "the relay refused a subscribe", 30_000))
    assert flooded == (
        "This relay limits how many pads one address may create a minute: the pad was not "
        "created (try again in 30 s) (CREATE_RATE_LIMITED)."
    )
    viewer = edit_refused(ReadOnly("view link"))
    assert "Ask for the edit link" in viewer
    for line in (refused, other, viewer, edit_refused(InvalidEdit("bad"))):
        assert "\n" not in line
        assert "Traceback" not in line


def test_undo_in_a_crlf_document_gives_back_its_line_breaks() -> None:
    doc = "one\r\ntwo\rthree"
    b = _binding(doc)
    shown = b.reset()
    cut = textops.normalize([(2, 3, "")])  # "e\nt" on the page: "e\r\nt" in the document
    b.local_edit(cut, 1_000)
    shown = textops.apply(shown, cut)
    assert b.session.text == "onwo\rthree"
    undo = b.undo(5_000)
    assert undo is not None
    assert textops.apply(shown, undo) == "one\ntwo\nthree"
    assert b.session.text == doc
