"""Issue 19 item 12: the log names internal ids only (survey 1, contact 1, outbox 7), never
a customer's order id, external id, name, phone, chat id, link token or what they wrote; so
an erased customer leaves nothing of theirs in the log. The whole path at DEBUG: purchase,
link, survey, a low score and its comment, a send that fails and is retried, /forget."""
from __future__ import annotations

import logging

from bot import logs
from tests.conftest import Harness, hours, make_config
from tests.secrets_guard import record_text
from tests.test_e2e_complaints import buttons

USER = 7_123_456_789  # the customer's Telegram user id (and chat id)
ORDER, EXTERNAL = "ORDSECRET-77", "C-SECRET-42"
NAME, PHONE, CHAT_NAME = "Phạm Thị Hoà", "+84 977 000 111", "Hoà Bình Minh"
COMMENT = "Giao hàng chậm, hộp vỡ mất hai cái cốc"


class Recorded(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(record_text(record))


async def test_purchase_survey_and_erase_log_no_customer_identifier(tmp_path, tg, clock):
    root = logging.getLogger()
    recorded, level = Recorded(), root.level
    root.addHandler(recorded)
    root.setLevel(logging.DEBUG)
    logs.quiet_noisy_loggers()  # as `feedbot run` sets it up at logging.level = "DEBUG"
    h = Harness(make_config(tmp_path, tg), tg, clock)
    try:
        await h.start()
        status, body = await h.post_purchase(ORDER, customer={"external_id": EXTERNAL, "name": NAME, "phone": PHONE})
        assert status == 202
        token = body["links"]["telegram"].split("start=")[1]
        await h.deliver(tg.make_message_update(USER, f"/start {token}", first_name=CHAT_NAME))
        await tg.wait_for_messages(USER, 1)
        h.clock.advance(hours(3))
        tg.fail_next("sendMessage", 500)  # the survey's first send fails and is retried: logged
        assert await h.app.dispatcher.dispatch_due() == {"sent": 1}
        question = (await tg.wait_for_messages(USER, 2))[1]
        await h.customer_taps(USER, buttons(question)[1]["callback_data"], question.message_id)
        await tg.wait_for_messages(USER, 3)
        await h.customer_says(USER, COMMENT)
        await tg.wait_for_messages(USER, 4)
        await h.customer_says(USER, "/forget")
        ask = (await tg.wait_for_messages(USER, 5))[4]
        await h.customer_taps(USER, buttons(ask)[0]["callback_data"], ask.message_id)
        await tg.wait_for_messages(USER, 6)
        await h.outbox_settled()
        await h.app.privacy.purge()
    finally:
        root.removeHandler(recorded)
        root.setLevel(level)
        await h.close()
    log_text = "\n".join(recorded.texts)
    assert "survey 1 " in log_text and "contact 1" in log_text and "retry 1" in log_text  # the lines are there...
    identifiers = (ORDER, EXTERNAL, NAME, PHONE, CHAT_NAME, COMMENT, str(USER), token)
    assert [i for i in identifiers if i in log_text] == []  # ... naming none of the customer's identifiers
