"""Issue 7's fault and abuse items for the web chat and Zalo (the Telegram and HTTP API side
is in tests/test_faults_*.py; the map of every item is in tests/faults/test_index.py).

item 1: one web frame sent 2-5 times, on one socket and from two tabs of the same session at
        once -> one inbox row, one visitor echo, one reply.
item 6: SQL-looking text, Vietnamese NFC and NFD, 10,000 characters over the web chat and
        over Zalo: stored byte for byte and relayed to the agents' group unchanged, or (web,
        over its limits) refused with an error frame and nothing stored.
item 9: SIGTERM of a real `feedbot run` while a visitor's frames arrive over a WebSocket.
item 2: kill -9 of a real `feedbot run` mid-complaint for a web visitor.
"""
from __future__ import annotations

import asyncio
import json
import unicodedata
from typing import Any

import aiohttp

from tests.conftest import Harness, make_config
from tests.faults.test_process import BotProcess
from tests.channels.web.test_server import Visitor
from tests.channels.zalo.test_channel import USER as ZALO_USER, next_message, outbox_settled, say, settled, started, tap
from tests.channels.zalo.test_channel import zfake  # noqa: F401 - the fixture

GROUP = -1001234567890
AGENT = 9001
SQL = ["'; DROP TABLE tickets; --", "1' OR '1'='1", "Robert'); DELETE FROM inbox WHERE ('1'='1",
       '" UNION SELECT value FROM settings --']
VIETNAMESE = "Hộp bị móp, giao trễ; tôi muốn đổi hàng mới. Cảm ơn shop ạ!"
NFC = unicodedata.normalize("NFC", VIETNAMESE)
NFD = unicodedata.normalize("NFD", VIETNAMESE)
assert NFC != NFD


def web_harness(tmp_path, clock, tg=None, **sections: Any) -> Harness:
    if tg is not None:
        tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: "Minh"})
        sections = {"agents": {"chat_id": GROUP}, "sender": {"group_messages_per_minute": 600}, **sections}
    return Harness(make_config(tmp_path, tg, web={"messages_per_minute": 600}, **sections), tg, clock)


async def web_complaint(v: Visitor, description: str) -> dict:
    await v.message("Xin chào")
    assert (await v.say("/complaint"))["type"] == "accepted"
    await v.tap(await v.message("Vấn đề thuộc loại nào"), "Giao hàng")
    await v.message("mô tả")
    assert (await v.say(description))["type"] == "accepted"
    await v.tap(await v.message("ảnh"), "Tiếp tục")
    await v.tap(await v.message("Gửi khiếu nại này?"), "Gửi")
    return await v.message("KN-0001")


def session_of(v: Visitor) -> str:
    assert v.session is not None
    return v.session.split(".")[0]


async def inbox_payloads(h: Harness, platform: str) -> list[dict]:
    return [json.loads(r["payload"]) for r in await h.rows("SELECT payload FROM inbox WHERE platform = ? ORDER BY id",
                                                           (platform,))]


# --- item 1: the same web frame 2-5 times ---------------------------------------------------------


async def test_the_same_web_frame_2_to_5_times_on_one_socket_and_from_two_tabs_is_handled_once(tmp_path, clock):
    h = web_harness(tmp_path, clock)
    await h.start()
    try:
        visitors: list[tuple[str, Visitor]] = []
        for times in range(2, 6):
            # Sequential: a page that resends after a lost "accepted".
            one = await Visitor.connect(h)
            await one.message("Xin chào")
            outcomes = [await one.say("/complaint", "same-frame") for _ in range(times)]
            assert [o["type"] for o in outcomes] == ["accepted"] * times
            visitors.append(("sequential", one))
            # Concurrent: two tabs of one session both send it at once (a reconnect race).
            first = await Visitor.connect(h)
            await first.message("Xin chào")
            second = await Visitor.connect(h, session=first.session, resume=10_000)
            tabs = ([first, second] * times)[:times]
            frame = {"type": "text", "id": "same-frame", "text": "/complaint"}
            await asyncio.gather(*(tab.ws.send_json(frame) for tab in tabs))

            async def outcomes_of(tab: Visitor) -> list[str]:
                return [(await tab.next(("accepted", "error"), id="same-frame"))["type"] for _ in range(tabs.count(tab))]

            outcomes = await asyncio.gather(outcomes_of(first), outcomes_of(second))
            assert sum(outcomes, []) == ["accepted"] * times
            visitors.append(("concurrent", first))
        await h.app.sender.drain(5)
        await asyncio.sleep(0.2)
        for mode, v in visitors:
            session = session_of(v)
            inbox = await h.rows("SELECT processed_at, error FROM inbox WHERE update_id = ?", (f"{session}:same-frame",))
            assert len(inbox) == 1 and inbox[0]["processed_at"] and inbox[0]["error"] is None, mode
            rows = await h.rows("SELECT kind, body FROM web_messages WHERE session_id = ? ORDER BY id", (session,))
            assert [r["kind"] for r in rows].count("visitor") == 1, mode
            questions = [r for r in rows if "Vấn đề thuộc loại nào" in json.loads(r["body"]).get("text", "")]
            assert len(questions) == 1, (mode, rows)  # one reply
        states = await h.rows("SELECT state FROM conversations c JOIN contacts t ON t.id = c.contact_id"
                              " WHERE t.channel = 'web'")
        assert len(states) == 8 and all(s["state"] != "idle" for s in states)
    finally:
        await h.close()


# --- item 6: injection, Unicode forms and size, web chat -------------------------------------------


async def test_web_sql_text_and_vietnamese_nfc_nfd_are_stored_and_relayed_byte_for_byte(tmp_path, clock, tg):
    h = web_harness(tmp_path, clock, tg)
    await h.start()
    try:
        v = await Visitor.connect(h)
        description = f"{SQL[0]} {NFD}"
        await web_complaint(v, description)
        card = (await tg.wait_for_messages(GROUP, 1))[0]
        assert description in card.text
        ticket = (await h.rows("SELECT description FROM tickets"))[0]
        assert ticket["description"].encode() == description.encode()

        texts = [*SQL[1:], NFC, NFD]
        for n, text in enumerate(texts, start=2):
            assert (await v.say(text))["type"] == "accepted"
            relayed = (await tg.wait_for_messages(GROUP, n))[n - 1]
            assert relayed.text.endswith(f"(KN-0001): {text}")
            assert relayed.text.split("(KN-0001): ", 1)[1].encode() == text.encode()  # NFD stays NFD
        payloads = [p["text"] for p in await inbox_payloads(h, "web") if isinstance(p.get("text"), str)]
        for text in [description, *texts]:
            assert [p.encode() for p in payloads].count(text.encode()) == 1
        echoes = [json.loads(r["body"])["text"] for r in await h.rows("SELECT body FROM web_messages WHERE kind = 'visitor'")]
        assert [e.encode() for e in echoes[-len(texts):]] == [t.encode() for t in texts]
        # Nothing was executed: every table is still there and whole.
        assert len(await h.rows("SELECT id FROM tickets")) == 1
        assert len(await h.rows("SELECT key FROM settings")) >= 1
    finally:
        await h.close()


async def test_web_10000_characters_are_refused_with_an_error_and_nothing_is_stored(tmp_path, clock):
    h = web_harness(tmp_path, clock)
    await h.start()
    try:
        v = await Visitor.connect(h)
        await v.message("Xin chào")
        counts = "SELECT (SELECT COUNT(*) FROM inbox) AS inbox, (SELECT COUNT(*) FROM web_messages) AS log"
        before = (await h.rows(counts))[0]
        # 10,000 ASCII characters fit a frame (16 KiB) but not a message (2,000 characters).
        assert (await v.say("x" * 10_000)) == {"type": "error", "code": "too_long", "id": v.frames[-1]["id"],
                                                "message": "text longer than 2000 characters"}
        # 10,000 Vietnamese characters (NFC and NFD) are larger than a frame.
        for text in (unicodedata.normalize("NFC", "ệ" * 10_000), unicodedata.normalize("NFD", "ệ" * 10_000)):
            await v.ws.send_str(json.dumps({"type": "text", "id": v.new_id(), "text": text}, ensure_ascii=False))
            assert (await v.next("error"))["code"] == "too_large"
        assert (await h.rows(counts))[0] == before  # nothing stored
        assert (await v.say("vẫn dùng được"))["type"] == "accepted"  # the socket is still usable
    finally:
        await h.close()


# --- item 6: injection, Unicode forms and size, Zalo ----------------------------------------------


async def test_zalo_sql_nfc_nfd_and_10000_characters_are_stored_whole_and_relayed_unchanged(tmp_path, tg, clock, zfake):  # noqa: F811
    h = await started(tmp_path, tg, clock, zfake)
    try:
        zfake.add_follower(ZALO_USER)
        description = f"{SQL[0]} {NFD}"
        await say(h, zfake, "/complaint")
        await next_message(zfake)  # the numbered categories
        await say(h, zfake, "1")
        await next_message(zfake)  # what happened?
        await say(h, zfake, description)
        await tap(h, zfake, await next_message(zfake), "Tiếp tục")
        await tap(h, zfake, await next_message(zfake), "Gửi")
        assert "KN-0001" in (await next_message(zfake)).text
        card = (await tg.wait_for_messages(GROUP, 1))[0]
        assert description in card.text
        assert (await h.rows("SELECT description FROM tickets"))[0]["description"].encode() == description.encode()

        texts = [*SQL[1:], NFC, NFD]
        for n, text in enumerate(texts, start=2):
            await say(h, zfake, text)
            relayed = (await tg.wait_for_messages(GROUP, n))[n - 1]
            assert relayed.text.split("(KN-0001): ", 1)[1].encode() == text.encode()
        # 10,000 characters: Zalo's webhook takes it (256 KiB body limit), it is stored whole and
        # reaches the agents in pieces that join back to it.
        long = (NFD + " ") * (10_000 // (len(NFD) + 1)) + "z" * (10_000 % (len(NFD) + 1))
        assert len(long) == 10_000
        before = len(tg.sent_messages(GROUP))
        await say(h, zfake, long)
        await outbox_settled(h)
        pieces = [m.text for m in tg.sent_messages(GROUP)[before:]]
        assert len(pieces) >= 3 and all(len(p) <= 4096 for p in pieces)
        joined = "".join(p.split("(KN-0001): ", 1)[1] if i == 0 else p for i, p in enumerate(pieces))
        assert joined.replace("\n", "").replace(" ", "") == long.replace(" ", "")  # nothing lost (splits at spaces)
        payloads = [p["message"]["text"] for p in await inbox_payloads(h, "zalo") if "message" in p]
        for text in [description, *texts, long]:
            assert [p.encode() for p in payloads].count(text.encode()) == 1
        assert (await h.rows("SELECT COUNT(*) AS n FROM inbox WHERE error IS NOT NULL"))[0]["n"] == 0
        await settled(h)
    finally:
        await h.close()


# --- items 9 and 2: a real process ----------------------------------------------------------------


class Tab:
    """A page's socket to a real bot process: everything it receives, by seq."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self.http = http
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.session: str | None = None
        self.seqs: list[int] = []  # every log entry received, over every connection
        self.log: list[dict] = []
        self.accepted: set[str] = set()
        self.closed = asyncio.Event()
        self._reader: asyncio.Task | None = None

    async def connect(self) -> None:
        self.ws = await self.http.ws_connect(f"{self.url}/chat/ws")
        self.closed.clear()
        await self.ws.send_json({"type": "hello", "session": self.session, "resume": max(self.seqs, default=0)})
        welcome = json.loads((await self.ws.receive(timeout=10)).data)
        assert welcome["type"] == "welcome"
        self.session = welcome["session"]
        self._reader = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if isinstance(frame.get("seq"), int):
                self.seqs.append(frame["seq"])
                self.log.append(frame)
            elif frame["type"] == "accepted":
                self.accepted.add(frame["id"])
        self.closed.set()

    async def send(self, frame: dict) -> bool:
        try:
            assert self.ws is not None
            await self.ws.send_json(frame)
            return True
        except (ConnectionError, RuntimeError):
            return False

    async def wait_for(self, predicate, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.02)

    def texts(self) -> list[str]:
        return [f.get("text", "") for f in self.log if f["type"] == "message"]

    def message(self, containing: str) -> dict:
        return next(f for f in reversed(self.log) if f["type"] == "message" and containing in f["text"])

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


def web_inbox(bot: BotProcess, session_token: str) -> list[dict]:
    session = session_token.split(".")[0]
    return bot.rows("SELECT update_id, processed_at, error FROM inbox WHERE platform = 'web' AND update_id LIKE ?",
                    (f"{session}:%",))


FRAMES = [(f"m{i:02d}", f"Tin nhắn số {i}") for i in range(60)]


async def test_sigterm_while_web_frames_arrive_exits_0_and_the_visitor_resumes_losing_and_repeating_nothing(tmp_path, tg):
    bot = BotProcess(tmp_path, tg, web={"messages_per_minute": 600})
    try:
        await bot.start()
        async with aiohttp.ClientSession() as http:
            tab = Tab(bot.url, http)
            await tab.connect()
            await tab.wait_for(lambda: any("Xin chào" in t for t in tab.texts()))
            sent: list[str] = []

            async def stream() -> None:  # frames keep coming while the bot stops
                for frame_id, text in FRAMES:
                    if tab.closed.is_set() or not await tab.send({"type": "text", "id": frame_id, "text": text}):
                        return
                    sent.append(frame_id)
                    await asyncio.sleep(0.005)

            streaming = asyncio.create_task(stream())
            await tab.wait_for(lambda: len(tab.accepted) >= 5)
            took = await bot.terminate()  # exit 0 within the deadline
            await streaming
            await asyncio.wait_for(tab.closed.wait(), 5)  # the server said "going away"
            acked_before = set(tab.accepted)
            recorded = {r["update_id"].split(":", 1)[1] for r in web_inbox(bot, tab.session)}
            print(f"\nitem 9 (web): SIGTERM with a visitor's frames arriving: exit 0 in {took:.2f}s; "
                  f"{len(sent)} frames sent, {len(acked_before)} accepted, {len(recorded)} recorded before the stop")
            assert 5 <= len(acked_before) < len(FRAMES)
            assert acked_before <= recorded  # accepted means recorded
            assert bot.integrity() == "ok"

            await bot.start()
            await tab.connect()  # the page reconnects, resumes from the last seq it saw ...
            for frame_id, text in FRAMES:  # ... and resends what was not accepted; then the rest
                if frame_id not in acked_before:
                    assert await tab.send({"type": "text", "id": frame_id, "text": text})
            for frame_id, text in FRAMES[:3]:  # an over-eager page resends accepted ones too: no-ops
                assert await tab.send({"type": "text", "id": frame_id, "text": text})
            await tab.wait_for(lambda: tab.accepted >= {f for f, _ in FRAMES})
            await bot.until(lambda: not bot.rows("SELECT id FROM outbox WHERE status IN ('pending', 'sending')")
                            and all(r["processed_at"] for r in web_inbox(bot, tab.session)),
                            what="every frame handled and the outbox drained")
            await tab.send({"type": "ping"})
            await asyncio.sleep(0.3)
            await tab.close()
        await bot.terminate()
        inbox = web_inbox(bot, tab.session)
        by_frame = sorted(r["update_id"].split(":", 1)[1] for r in inbox)
        assert [f for f in by_frame if f.startswith("m")] == [f for f, _ in FRAMES]  # each once
        assert all(r["processed_at"] and r["error"] is None for r in inbox)
        session = tab.session.split(".")[0]
        entries = bot.rows("SELECT id, kind, client_id FROM web_messages WHERE session_id = ? ORDER BY id", (session,))
        assert sorted(e["client_id"] for e in entries if e["kind"] == "visitor") == [f for f, _ in FRAMES]
        # The page saw every entry of its log exactly once, in order, across both connections.
        assert tab.seqs == [e["id"] for e in entries]
        assert bot.integrity() == "ok"
    finally:
        bot.close()


async def test_kill_9_mid_complaint_on_the_web_resumes_at_the_same_step_and_the_page_gets_what_it_missed(tmp_path, tg):
    bot = BotProcess(tmp_path, tg)
    try:
        await bot.start()
        async with aiohttp.ClientSession() as http:
            tab = Tab(bot.url, http)
            await tab.connect()
            await tab.wait_for(lambda: any("Xin chào" in t for t in tab.texts()))

            async def say(frame_id: str, text: str) -> None:
                assert await tab.send({"type": "text", "id": frame_id, "text": text})
                await tab.wait_for(lambda: frame_id in tab.accepted)

            async def choose(frame_id: str, in_message: str, label: str) -> None:
                await tab.wait_for(lambda: any(in_message in t for t in tab.texts()))
                message = tab.message(in_message)
                button = next(b for row in message["buttons"] for b in row if b["label"] == label)
                assert await tab.send({"type": "choice", "id": frame_id, "data": button["data"],
                                       "message_id": message["seq"]})
                await tab.wait_for(lambda: frame_id in tab.accepted)

            await say("c1", "/complaint")
            await choose("c2", "Vấn đề thuộc loại nào", "Giao hàng")
            await tab.wait_for(lambda: any("mô tả" in t for t in tab.texts()))
            # The visitor's page goes away the moment the description is accepted (what came after
            # it was never shown), and the bot dies at that moment too.
            seen = max(tab.seqs)
            await say("c3", "Hộp bị móp, giao trễ 3 ngày")
            await bot.kill()
            await tab.close()
            state_at_kill = bot.rows("SELECT c.state FROM conversations c JOIN contacts t ON t.id = c.contact_id"
                                     " WHERE t.channel = 'web'")
            assert bot.integrity() == "ok"

            await bot.start()
            tab.seqs = [s for s in tab.seqs if s <= seen]
            tab.log = [f for f in tab.log if f["seq"] <= seen]
            await tab.connect()  # the page reloads: resume from the last entry it showed
            await tab.wait_for(lambda: any("ảnh nào" in t for t in tab.texts()))
            assert min(tab.seqs[tab.seqs.index(seen) + 1:]) > seen  # only what it missed, in order
            await choose("c4", "ảnh nào", "Tiếp tục")
            await choose("c5", "Gửi khiếu nại này?", "Gửi")
            await tab.wait_for(lambda: any("Đã ghi nhận khiếu nại KN-0001" in t for t in tab.texts()))
            await asyncio.sleep(0.3)
            await tab.close()
        await bot.terminate()
        print(f"\nitem 2 (web): kill -9 after the description; conversation at the kill: {state_at_kill}")
        texts = [t for t in tab.texts()]
        assert sum("ảnh nào" in t for t in texts) == 1  # the photo question: shown once, not lost, not twice
        assert sum("Đã ghi nhận khiếu nại" in t for t in texts) == 1
        tickets = bot.rows("SELECT category, description, status FROM tickets")
        assert tickets == [{"category": "delivery", "description": "Hộp bị móp, giao trễ 3 ngày", "status": "open"}]
        assert all(r["processed_at"] and r["error"] is None for r in web_inbox(bot, tab.session))
        assert len(tab.seqs) == len(set(tab.seqs))
        assert bot.integrity() == "ok"
    finally:
        bot.close()
