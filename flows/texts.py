"""Message catalogs: every text a customer sees, in Vietnamese (default) and English."""
from __future__ import annotations

SUPPORTED = ("vi", "en")
DEFAULT = "vi"

CATALOG: dict[str, dict[str, str]] = {
    "vi": {
        "csat.question": "{shop} xin hỏi: bạn hài lòng thế nào với đơn hàng #{order}?\n"
        "(1 = rất không hài lòng, 5 = rất hài lòng)",
        "csat.reminder": "Nhắc nhẹ: {shop} rất mong nghe ý kiến của bạn về đơn hàng #{order}. "
        "Bạn hài lòng thế nào?",
        "csat.chosen": "Bạn đã chọn: {score}/5",
        "csat.pick_score": "Bạn vui lòng chọn một điểm từ 1 đến 5 bằng các nút bên dưới nhé.",
        "csat.thanks_high": "Cảm ơn bạn đã chấm {score}/5! 💚",
        "csat.thanks_low": "Cảm ơn bạn đã cho chúng tôi biết. Rất tiếc vì trải nghiệm chưa tốt.",
        "csat.followup_high": "Bạn thích điều gì nhất, và chúng tôi có thể làm gì để tốt hơn nữa? "
        "(Không bắt buộc: cứ nhắn cho chúng tôi, hoặc bấm Bỏ qua.)",
        "csat.followup_low": "Chuyện gì đã xảy ra vậy? Bạn kể giúp chúng tôi để cửa hàng khắc phục nhé. "
        "(Không bắt buộc: cứ nhắn cho chúng tôi, hoặc bấm Bỏ qua.)",
        "csat.skip": "Bỏ qua",
        "csat.comment_thanks": "Cảm ơn bạn! Ý kiến của bạn đã được gửi tới {shop}.",
        "csat.skipped": "Đã rõ. Cảm ơn bạn đã dành thời gian!",
        "csat.already_answered": "Bạn đã trả lời khảo sát này rồi. Cảm ơn bạn!",
        "csat.closed": "Khảo sát này đã đóng. Cảm ơn bạn!",
        "start.linked": "Xin chào {name}! Bạn đã kết nối với {shop}. Sau mỗi đơn hàng, chúng tôi sẽ "
        "hỏi bạn một câu ngắn về trải nghiệm. Gửi /stop nếu không muốn nhận khảo sát.",
        "start.welcome": "Xin chào! Đây là kênh chăm sóc khách hàng của {shop}. "
        "Hãy nhắn cho chúng tôi bất cứ lúc nào. Gửi /stop nếu không muốn nhận khảo sát.",
        "start.bad_link": "Liên kết này không hợp lệ hoặc đã cũ. Bạn vẫn có thể nhắn tin cho {shop} tại đây.",
        "stop.done": "Bạn sẽ không nhận khảo sát từ {shop} nữa. Gửi /start để bật lại bất cứ lúc nào.",
        "help": "Các lệnh:\n/start: bắt đầu, nhận lại khảo sát\n/stop: không nhận khảo sát nữa\n"
        "/help: trợ giúp\nBạn cũng có thể nhắn tin trực tiếp cho {shop} tại đây.",
        "idle.received": "Cảm ơn bạn đã nhắn tin! {shop} đã nhận được và sẽ phản hồi sớm.",
        "unknown_command": "Xin lỗi, chúng tôi chưa hiểu lệnh này. Gửi /help để xem các lệnh.",
    },
    "en": {
        "csat.question": "{shop} here: how satisfied are you with order #{order}?\n"
        "(1 = very dissatisfied, 5 = very satisfied)",
        "csat.reminder": "A gentle reminder: {shop} would love to hear how order #{order} went. "
        "How satisfied are you?",
        "csat.chosen": "Your answer: {score}/5",
        "csat.pick_score": "Please pick a score from 1 to 5 with the buttons below.",
        "csat.thanks_high": "Thank you for rating us {score}/5! 💚",
        "csat.thanks_low": "Thank you for telling us. We are sorry it was not a good experience.",
        "csat.followup_high": "What did you like most, and what could we do even better? "
        "(Optional: just write to us, or tap Skip.)",
        "csat.followup_low": "What went wrong? Tell us so the shop can put it right. "
        "(Optional: just write to us, or tap Skip.)",
        "csat.skip": "Skip",
        "csat.comment_thanks": "Thank you! Your feedback has been passed on to {shop}.",
        "csat.skipped": "Got it. Thank you for your time!",
        "csat.already_answered": "You already answered this survey. Thank you!",
        "csat.closed": "This survey is closed. Thank you!",
        "start.linked": "Hello {name}! You are now connected to {shop}. After each order we will ask "
        "you one short question about it. Send /stop if you do not want surveys.",
        "start.welcome": "Hello! This is the customer care chat of {shop}. "
        "Write to us any time. Send /stop if you do not want surveys.",
        "start.bad_link": "This link is not valid or has expired. You can still write to {shop} here.",
        "stop.done": "You will not get surveys from {shop} any more. Send /start to turn them back on.",
        "help": "Commands:\n/start: start, receive surveys again\n/stop: stop receiving surveys\n"
        "/help: this help\nYou can also write to {shop} directly here.",
        "idle.received": "Thank you for your message! {shop} has received it and will reply soon.",
        "unknown_command": "Sorry, we do not know that command. Send /help to see the commands.",
    },
}


def pick_language(language_code: str | None, default: str = DEFAULT) -> str:
    """Map a platform language code ("en-US", "vi") to a catalog we have."""
    if language_code:
        base = language_code.split("-")[0].split("_")[0].lower()
        if base in CATALOG:
            return base
    return default if default in CATALOG else DEFAULT


def text(language: str, key: str, **params: object) -> str:
    catalog = CATALOG.get(language, CATALOG[DEFAULT])
    template = catalog.get(key) or CATALOG[DEFAULT][key]
    return template.format(**params)
