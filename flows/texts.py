"""Message catalogs: every text a customer sees, in Vietnamese (default) and English."""
from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo

SUPPORTED = ("vi", "en")
# Version of the privacy notice ("privacy.notice"): change it whenever the notice's meaning
# changes, and every contact is shown the new one and asked again (contacts.consent_version).
PRIVACY_NOTICE_VERSION = "2026-11-v1"
DEFAULT = "vi"

CATALOG: dict[str, dict[str, str]] = {
    "vi": {
        "csat.question": "{shop} xin hỏi: bạn hài lòng thế nào với đơn hàng #{order}?\n"
        "(1 = rất không hài lòng, 5 = rất hài lòng)",
        "csat.reminder": "{shop} vẫn rất mong được nghe ý kiến của bạn về đơn hàng #{order}. "
        "Bạn thấy đơn hàng thế nào?",
        "csat.chosen": "Bạn đã chọn: {score}/5",
        "csat.pick_score": "Bạn bấm chọn điểm từ 1 đến 5 ở các nút bên dưới nhé.",
        "csat.thanks_high": "Cảm ơn bạn đã chấm {score}/5! 💚",
        "csat.thanks_low": "Cảm ơn bạn đã chia sẻ. Chúng tôi rất tiếc vì đã để bạn chưa hài lòng.",
        "csat.followup_high": "Bạn thích điều gì nhất, và chúng tôi nên làm gì để phục vụ bạn tốt hơn nữa? "
        "Bạn cứ nhắn trả lời ngay tại đây, hoặc bấm Bỏ qua nếu không muốn trả lời.",
        "csat.followup_low": "Chuyện gì đã xảy ra vậy? Bạn kể giúp để cửa hàng khắc phục nhé. "
        "Bạn cứ nhắn trả lời ngay tại đây, hoặc bấm Bỏ qua nếu không muốn trả lời.",
        "csat.skip": "Bỏ qua",
        "csat.comment_thanks": "Cảm ơn bạn! Ý kiến của bạn đã được chuyển tới {shop}.",
        "csat.skipped": "Không sao ạ. Cảm ơn bạn đã dành thời gian!",
        "csat.already_answered": "Bạn đã trả lời khảo sát này rồi. Cảm ơn bạn!",
        "csat.closed": "Khảo sát này đã đóng. Cảm ơn bạn!",
        # Per touchpoint (flows/wording.py): what the customer just lived through, in its words.
        "csat.question.delivery": "Đơn hàng của bạn đã đến tay rồi ạ. {shop} xin hỏi: bạn hài lòng thế nào với "
        "đơn hàng #{order} và việc giao hàng?\n(1 = rất không hài lòng, 5 = rất hài lòng)",
        "csat.question.in_store": "Cảm ơn bạn đã ghé {shop}! Bạn hài lòng thế nào với đơn hàng #{order} và cách "
        "cửa hàng phục vụ bạn hôm nay?\n(1 = rất không hài lòng, 5 = rất hài lòng)",
        "csat.question.online": "Cảm ơn bạn đã đặt hàng online tại {shop}! Bạn hài lòng thế nào với đơn hàng #{order} "
        "và việc đặt hàng trên mạng?\n(1 = rất không hài lòng, 5 = rất hài lòng)",
        "csat.followup_low.delivery": "Chuyện gì đã xảy ra khi giao hàng vậy ạ: giao trễ, hàng bị móp vỡ, hay người giao "
        "chưa chu đáo? Bạn kể giúp để cửa hàng khắc phục nhé. Bạn cứ nhắn trả lời ngay tại đây, hoặc bấm Bỏ qua "
        "nếu không muốn trả lời.",
        "csat.followup_low.in_store": "Điều gì ở cửa hàng làm bạn chưa vui: phải chờ lâu, nhân viên, hay sản phẩm? "
        "Bạn kể giúp để cửa hàng khắc phục nhé. Bạn cứ nhắn trả lời ngay tại đây, hoặc bấm Bỏ qua nếu không muốn trả lời.",
        "csat.followup_low.online": "Bạn gặp khó ở bước nào: tìm sản phẩm, thanh toán, hay xác nhận đơn? Bạn kể giúp "
        "để cửa hàng khắc phục nhé. Bạn cứ nhắn trả lời ngay tại đây, hoặc bấm Bỏ qua nếu không muốn trả lời.",
        # Survey programs (flows/programs.py): the shop may replace any of these in [[programs]].
        "program.other": "Khác…",
        "program.chosen": "Bạn đã chọn: {answer}",
        "program.pick": "Bạn bấm chọn một câu trả lời ở các nút bên dưới nhé.",
        "program.csat.question": "{shop} xin hỏi: gần đây bạn hài lòng thế nào với {shop}?\n"
        "(1 = rất không hài lòng, 5 = rất hài lòng)",
        "program.csat.thanks": "Cảm ơn bạn đã trả lời! 💚",
        "program.csat.follow_up": "Bạn thích điều gì nhất, và chúng tôi nên làm gì để tốt hơn nữa? Bạn cứ nhắn ngay "
        "tại đây, hoặc bấm Bỏ qua.",
        "program.csat.follow_up_low": "Điều gì làm bạn chưa hài lòng? Bạn kể giúp để {shop} khắc phục nhé, hoặc bấm Bỏ qua.",
        "program.nps.question": "Bạn có sẵn lòng giới thiệu {shop} cho bạn bè hay người thân không?\n"
        "(0 = chắc chắn không, 10 = chắc chắn có)",
        "program.nps.thanks": "Cảm ơn bạn! 💚",
        "program.nps.follow_up": "Vì sao bạn chọn điểm này? Bạn cứ nhắn ngay tại đây, hoặc bấm Bỏ qua.",
        "program.nps.follow_up_low": "Điều gì khiến bạn chưa muốn giới thiệu chúng tôi? Bạn kể giúp nhé, hoặc bấm Bỏ qua.",
        "program.ces.question": "Khiếu nại vừa rồi của bạn đã được xử lý. Bạn thấy việc được giải quyết vấn đề có dễ "
        "dàng không?\n(1 = rất khó khăn, 7 = rất dễ dàng)",
        "program.ces.thanks": "Cảm ơn bạn đã cho chúng tôi biết!",
        "program.ces.follow_up": "Có điều gì chúng tôi có thể làm để việc này dễ hơn nữa không? Bạn cứ nhắn ngay tại "
        "đây, hoặc bấm Bỏ qua.",
        "program.ces.follow_up_low": "Xin lỗi vì đã làm bạn vất vả. Bước nào làm bạn mất công nhất? Bạn kể giúp nhé, "
        "hoặc bấm Bỏ qua.",
        "program.usage.question": "Đã được ít lâu kể từ đơn hàng #{order}. Bạn dùng sản phẩm chủ yếu vào việc gì?",
        "program.usage.options": "Dùng hằng ngày|Làm quà tặng|Cho công việc|Cho gia đình",
        "program.usage.other": "Bạn dùng vào việc gì? Bạn cứ nhắn ngay tại đây nhé.",
        "program.usage.thanks": "Cảm ơn bạn đã chia sẻ! 💚",
        "program.usage.follow_up": "",
        "program.brand.question": "Bạn biết đến {shop} lần đầu qua đâu?",
        "program.brand.options": "Bạn bè, người thân|Facebook|TikTok|Google|Đi ngang cửa hàng",
        "program.brand.other": "Bạn biết đến chúng tôi qua đâu? Bạn cứ nhắn ngay tại đây nhé.",
        "program.brand.thanks": "Cảm ơn bạn!",
        "program.brand.follow_up": "Khi nghĩ đến {shop}, từ nào hiện ra đầu tiên trong đầu bạn? Bạn nhắn một từ thôi, "
        "hoặc bấm Bỏ qua.",
        "program.ideas.question": "{shop} luôn muốn làm tốt hơn: bạn muốn cửa hàng bán thêm gì, thay đổi điều gì, hay "
        "có góp ý gì về giá không? Bạn cứ nhắn ngay tại đây.",
        "program.ideas.thanks": "Cảm ơn bạn đã góp ý! {shop} đã ghi lại và sẽ chuyển tới người phụ trách.",
        # Ideas and wishes (/gopy): their own kind, never a complaint.
        "idea.ask_topic": "Cảm ơn bạn muốn góp ý cho {shop}! Ý tưởng của bạn về điều gì?",
        "idea.ask_text": "Bạn cứ viết ý tưởng hoặc mong muốn của mình vào đây nhé: muốn cửa hàng bán thêm gì, thay đổi "
        "điều gì, giá thế nào…",
        "idea.thanks": "Cảm ơn bạn đã góp ý! {shop} đã ghi lại và sẽ chuyển tới người phụ trách. 💡",
        "idea.cancelled": "Không sao ạ. Khi nào có ý tưởng, bạn gửi /gopy nhé.",
        "idea.button": "💡 Góp ý",
        "idea.topic.product": "Sản phẩm mới",
        "idea.topic.price": "Giá cả",
        "idea.topic.service": "Phục vụ",
        "idea.topic.delivery": "Giao hàng",
        "idea.topic.other": "Khác",
        "idea.routed": "💡 Góp ý mới ({topic}) từ khách hàng:\n{text}",
        "complaint.routed": "📌 Khiếu nại {number} ({category}) thuộc bộ phận của bạn:\n{text}",
        # The weekly digests of issue 21 (flows/feedback_digest.py).
        "fd.owner_title": "📋 {shop}: lắng nghe khách hàng, tuần {week}",
        "fd.programs": "Các chương trình khảo sát:",
        "fd.nps": "{name}: NPS {score} ({answers} trả lời; {promoters} ủng hộ, {detractors} không hài lòng)",
        "fd.ces": "{name}: mức dễ dàng {mean}/7, {easy}% thấy dễ ({answers} trả lời)",
        "fd.csat": "{name}: {pct} hài lòng ({answers} trả lời)",
        "fd.choices": "{name}: {top} ({answers} trả lời)",
        "fd.answers": "{name}: {answers} trả lời",
        "fd.journey": "Hành trình khách hàng (hài lòng · số trả lời):",
        "fd.journey_empty": "Chưa có đánh giá nào gắn với một giai đoạn.",
        "fd.stage_complaints": " · {count} khiếu nại, nhiều nhất: {category}",
        "fd.drop_started": "⚠️ Mức hài lòng tuần này giảm bắt đầu từ giai đoạn {stage}: nên sửa từ đó, không chỉ ở điểm cuối.",
        "fd.ideas": "💡 Góp ý mới: {count}",
        "fd.staff": "Hài lòng theo nhân viên (chỉ chủ shop và quản lý cửa hàng xem):",
        "fd.department_title": "📋 Bộ phận {name} ({shop}), tuần {week}",
        "fd.dept_complaints": "Khiếu nại: {count}",
        "fd.store_title": "🏬 Cửa hàng {store} ({shop}), tuần {week}",
        "fd.store_csat": "Hài lòng: {pct} ({answers} trả lời; tuần trước {before})",
        "stage.consult": "Tư vấn",
        "stage.order": "Đặt hàng",
        "stage.payment": "Thanh toán",
        "stage.delivery": "Giao hàng",
        "stage.after_sales": "Hậu mãi",
        "stage.none": "Chưa ghi giai đoạn",
        "start.linked": "Xin chào {name}! Bạn đã kết nối với {shop}. Sau mỗi đơn hàng, chúng tôi sẽ "
        "hỏi bạn một câu ngắn về trải nghiệm mua hàng. Nếu không muốn nhận khảo sát, bạn gửi /stop nhé.",
        "start.welcome": "Xin chào! Đây là kênh chăm sóc khách hàng của {shop}. "
        "Bạn cần gì cứ nhắn cho chúng tôi, bất cứ lúc nào. Nếu không muốn nhận khảo sát, bạn gửi /stop nhé.",
        "start.bad_link": "Liên kết này không hợp lệ hoặc đã hết hạn. Bạn vẫn có thể nhắn tin cho {shop} tại đây.",
        # A receipt's link opened in a chat not (yet) proved to be the customer's: no name.
        "start.order": "Xin chào! Đây là kênh chăm sóc khách hàng của {shop}. Tại đây bạn có thể đánh giá "
        "đơn hàng #{order} và gửi khiếu nại về đơn hàng này. Nếu không muốn nhận khảo sát, bạn gửi /stop nhé.",
        "start.expired": "Liên kết này đã hết hạn hoặc đã được cửa hàng thay bằng liên kết mới, nên không dùng "
        "được nữa. Bạn vẫn có thể nhắn tin cho {shop} tại đây.",
        "start.share_phone": "Nếu đây là đơn hàng của bạn, hãy bấm nút “📱 Chia sẻ số điện thoại” bên dưới: khi số "
        "trùng với số {shop} có, cuộc trò chuyện này sẽ được nhận là của bạn.",
        "phone.share_button": "📱 Chia sẻ số điện thoại",
        "phone.linked": "Cảm ơn {name}! Cuộc trò chuyện này đã được kết nối với hồ sơ khách hàng của bạn tại {shop}.",
        "phone.unknown": "Cảm ơn bạn! {shop} chưa có khách hàng nào với số điện thoại này.",
        "phone.not_proved": "Cảm ơn bạn! Chỉ số điện thoại của chính tài khoản này (nút chia sẻ số điện thoại) "
        "mới giúp {shop} nhận ra bạn, nên cuộc trò chuyện này chưa được kết nối với hồ sơ khách hàng nào.",
        "stop.done": "Bạn sẽ không nhận khảo sát từ {shop} nữa. Khi nào muốn nhận lại, bạn gửi /start nhé.",
        "help": "Các lệnh:\n/complaint: gửi khiếu nại\n/gopy: góp ý, mong muốn của bạn\n/status: xem khiếu nại của bạn\n/start: bắt đầu, nhận lại khảo sát\n"
        "/stop: không nhận khảo sát nữa\n/mydata: xem dữ liệu của bạn\n/forget: xoá dữ liệu của bạn\n/help: trợ giúp\nBạn cũng có thể nhắn tin trực tiếp cho {shop} tại đây.",
        "idle.received": "Cảm ơn bạn đã nhắn tin! {shop} đã nhận được và sẽ phản hồi sớm.",
        "unknown_command": "Xin lỗi, chúng tôi chưa hiểu lệnh này. Gửi /help để xem các lệnh.",
        "csat.complain": "Gửi khiếu nại",
        "complaint.ask_order": "Bạn muốn khiếu nại về đơn hàng nào?",
        "complaint.other_order": "Khác / không có đơn",
        "complaint.ask_category": "Vấn đề thuộc loại nào?",
        "complaint.ask_description": "Bạn mô tả giúp chúng tôi chuyện gì đã xảy ra nhé.",
        "complaint.too_short": "Bạn viết thêm một chút để chúng tôi hiểu rõ vấn đề nhé (ít nhất vài từ).",
        "complaint.ask_photos": "Bạn có ảnh nào không? Gửi ảnh vào đây (tối đa {max} ảnh) rồi bấm Tiếp tục. "
        "Nếu không có ảnh, bạn bấm Tiếp tục luôn nhé.",
        "complaint.photo_received": "Đã nhận {count} ảnh. Bạn gửi thêm hoặc bấm Tiếp tục nhé.",
        "complaint.photo_received.one": "Đã nhận {count} ảnh. Bạn gửi thêm hoặc bấm Tiếp tục nhé.",
        "complaint.photo_limit": "Đã đủ {max} ảnh rồi. Bạn bấm Tiếp tục nhé.",
        "complaint.continue": "Tiếp tục",
        "complaint.confirm": "Bạn kiểm tra lại giúp nhé:\nĐơn hàng: {order}\nLoại: {category}\nMô tả: {description}\nẢnh: {photos}\n\nGửi khiếu nại này?",
        "complaint.submit": "Gửi",
        "complaint.cancel": "Huỷ",
        "complaint.cancelled": "Đã huỷ. Khi cần, bạn cứ gửi /complaint nhé.",
        "complaint.reask_buttons": "Bạn chọn giúp một trong các nút bên dưới nhé (hoặc bấm Huỷ).",
        "complaint.opened": "Đã ghi nhận khiếu nại {number}. Nhân viên sẽ phản hồi trước {due}. "
        "Mọi tin nhắn bạn gửi ở đây sẽ được chuyển tới nhân viên. Gửi /status để xem tình trạng.",
        "complaint.already_open": "Khiếu nại {number} của bạn vẫn đang được xử lý. Bạn cứ nhắn ở đây, nhân viên sẽ đọc được.",
        "complaint.busy": "Hiện có quá nhiều yêu cầu gửi từ mạng của bạn nên chúng tôi chưa ghi nhận được yêu cầu này. "
        "Bạn vui lòng thử lại sau ít phút, hoặc liên hệ trực tiếp với cửa hàng.",
        "complaint.claimed": "{number}: nhân viên {agent} đang xử lý khiếu nại của bạn.",
        "complaint.agent_says": "💬 {shop} ({number}): {text}",
        "complaint.agent_photo": "📷 {shop} ({number}) đã gửi một ảnh",
        "complaint.resolved": "Khiếu nại {number} đã được xử lý xong. Bạn thấy cách chúng tôi giải quyết thế nào? (1–5)",
        "complaint.rated": "Cảm ơn bạn đã đánh giá {score}/5.",
        "complaint.resolved_plain": "Khiếu nại {number} đã được xử lý xong.",
        "complaint.offer_reopen": "Nếu vấn đề vẫn chưa được giải quyết, bạn có thể mở lại khiếu nại trong vòng {days} ngày.",
        "complaint.reopen": "Mở lại khiếu nại",
        "complaint.reopened": "Đã mở lại khiếu nại {number}. Nhân viên sẽ phản hồi bạn trước {due}.",
        "complaint.reopen_closed": "Đã quá hạn mở lại khiếu nại này. Bạn gửi /complaint để tạo khiếu nại mới nhé.",
        "complaint.not_yours": "Không tìm thấy khiếu nại này.",
        "complaint.status_none": "Bạn không có khiếu nại nào đang mở.",
        "complaint.status_line": "{number} · {category} · {status} · mở lúc {opened}",
        "status.open": "đang chờ nhân viên",
        "status.claimed": "{agent} đang xử lý",
        "status.resolved": "đã xử lý xong",
        "photos.none": "không có",
        "photos.count": "{count} ảnh",
        "photos.count.one": "{count} ảnh",
        "order.none": "không gắn với đơn nào",
        "category.delivery": "Giao hàng",
        "category.product_quality": "Chất lượng sản phẩm",
        "category.staff_attitude": "Thái độ nhân viên",
        "category.price_billing": "Giá / thanh toán",
        "category.other": "Khác",
        "category.question": "Câu hỏi",
        "idle.unsupported": "Xin lỗi, hiện shop chỉ đọc được tin nhắn chữ và ảnh. Bạn nhắn bằng chữ giúp shop nhé.",
        # Questions (flows/questions.py): a message no flow waits for goes to an agent.
        "question.opened": "{shop} đã nhận câu hỏi của bạn ({number}). Nhân viên sẽ trả lời trong khoảng {within}, "
        "trước {due}. Bạn cứ nhắn thêm ở đây, nhân viên sẽ đọc được hết.",
        "question.follow_up": "{shop} đã nhận tin nhắn của bạn và chuyển cho nhân viên (câu hỏi {number}). "
        "Nhân viên sẽ trả lời trong khoảng {within}, trước {due}.",
        "question.claimed": "{number}: nhân viên {agent} đang trả lời câu hỏi của bạn.",
        "question.no_agents": "Cảm ơn bạn đã nhắn tin! Hiện chưa có nhân viên của {shop} trực ở kênh này nên "
        "tin nhắn chưa được trả lời tại đây. Bạn vui lòng liên hệ trực tiếp với {shop} nhé.",
        "question.closed": "Câu hỏi {number} đã được đóng. Cảm ơn bạn! Cần gì thêm, bạn cứ nhắn ở đây nhé.",
        "duration.minutes": "{n} phút",
        "duration.hour": "{n} giờ",
        "duration.hours": "{n} giờ",
        "duration.day": "{n} ngày",
        "duration.days": "{n} ngày",
        "desk.question_card": "❓ Câu hỏi {number}\nKhách: {customer} ({tier})\nNội dung: {description}\nẢnh: {photos}\n"
        "Hạn phản hồi: {first_due}\nTrạng thái: {status}",
        "complaint.description_added": "Đã thêm vào phần mô tả. Bạn gửi ảnh nếu có, hoặc bấm Tiếp tục nhé.",
        "complaint.status_draft": "Bạn đang soạn dở một khiếu nại. Bạn làm tiếp ở tin nhắn phía trên, hoặc gửi /cancel để huỷ nhé.",
        "csat.offer_complaint": "Có vẻ đơn hàng này gặp sự cố. Bạn có muốn gửi khiếu nại để nhân viên xử lý không?",
        "desk.card": "{marker}{number} · ưu tiên {priority}\nKhách: {customer} ({tier})\nĐơn: {order}\nLoại: {category}\n"
        "Mô tả: {description}\nẢnh: {photos}\nCSAT trước đây: {past_csat}\nHạn phản hồi: {first_due} · hạn xử lý: {resolution_due}\n"
        "Trạng thái: {status}",
        "desk.card_hint_reply": "Trả lời (reply) tin này để nhắn cho khách; /note <ghi chú> để ghi chú nội bộ.",
        "desk.card_hint_topic": "Nhắn trong chủ đề này để trả lời khách; /note <ghi chú> để ghi chú nội bộ.",
        "desk.claim": "✋ Nhận xử lý",
        "desk.resolve": "✅ Đã xong",
        "desk.escalate": "⏫ Chuyển cấp",
        "desk.customer_says": "👤 {customer} ({number}): {text}",
        "desk.customer_photo": "👤 {customer} ({number}) gửi ảnh",
        "desk.claimed": "✋ {agent} nhận xử lý {number}.",
        "desk.resolved": "✅ {agent} đã đóng {number}.",
        "desk.escalated": "⏫ {agent} đã chuyển cấp {number}: ưu tiên {priority}. {supervisor}",
        "orders.refused": "⚠️ Nguồn đơn hàng {source} ({platform}): một yêu cầu bị từ chối ({reason}). Kiểm tra secret của nguồn trong cấu hình và trên {platform}; `feedbot source status` cho biết thêm. Các lần sau không báo lại.",
        "desk.breach_first": "⏰ {number} quá hạn phản hồi đầu tiên (hạn {due}). Ưu tiên nâng lên {priority}. {supervisor}",
        "desk.breach_resolution": "⏰ {number} quá hạn xử lý (hạn {due}). Ưu tiên nâng lên {priority}. {supervisor}",
        "desk.reopened": "🔁 Khách đã mở lại {number}.",
        "desk.rated": "⭐ Khách chấm cách xử lý {number}: {score}/5.",
        "desk.denied": "Bạn không có quyền xử lý khiếu nại này.",
        "desk.anonymous": "Quản trị viên ẩn danh không thể trả lời khách: hãy tắt chế độ ẩn danh.",
        "desk.already_claimed": "{agent} đang xử lý khiếu nại này.",
        "desk.already_resolved": "Khiếu nại này đã được đóng.",
        "desk.unknown_ticket": "Không tìm thấy khiếu nại.",
        "desk.not_sent_resolved": "{number} đã đóng: tin nhắn không được gửi cho khách.",
        "desk.note_saved": "📝 Đã lưu ghi chú cho {number}.",
        "desk.status_open": "chờ nhận",
        "desk.status_claimed": "{agent} đang xử lý",
        "desk.status_resolved": "đã đóng",
        "tier.vip": "VIP",
        "tier.regular": "thường",
        "priority.normal": "thường",
        "priority.high": "cao",
        "priority.urgent": "khẩn",
        "desk.no_csat": "chưa có",
        "desk.already_top": "{number} đã ở mức ưu tiên cao nhất: đã ghi lại, không nhắc quản lý thêm lần nữa.",
        "backup.failed": "⚠️ Sao lưu dữ liệu tự động không thành công ({error}). Dữ liệu hiện tại vẫn an toàn, "
        "nhưng bản sao lưu mới nhất là {last}. Hãy kiểm tra máy chủ (dung lượng đĩa, thư mục sao lưu) và "
        "chạy `feedbot check-config`.",
        "desk.card_undelivered": "⚠️ Thẻ {number} không gửi được vào nhóm nhân viên ({error}). "
        "Nội dung vẫn được lưu; hãy kiểm tra xem bot còn trong nhóm không.",
        "desk.reply_undelivered": "⚠️ {number}: tin nhắn tới khách không gửi được ({error}). Khách chưa nhận "
        "được; hãy liên hệ khách cách khác.",
        "desk.reply_no_chat": "⚠️ {number}: khách chỉ có số điện thoại, không có cuộc trò chuyện nào với shop, "
        "nên tin trả lời không gửi được (đã lưu vào khiếu nại). Hãy gọi điện cho khách.",
        "desk.card_unsure": "⚠️ Không chắc thẻ {number} đã tới nhóm nhân viên (Telegram không trả lời kịp). "
        "Hãy kiểm tra lại nhóm.",
        "desk.see_agent_page": "Nhân viên vẫn xem và xử lý được trên trang /agent.",
        "complaint.kept": "Chúng tôi đã lưu khiếu nại {number} của bạn. Cửa hàng sẽ xem và liên hệ lại với bạn. "
        "Gửi /status để xem tình trạng.",
        "question.not_delivered": "Chúng tôi đã lưu câu hỏi {number} của bạn, nhưng hiện chưa chuyển được tới "
        "nhân viên. Cửa hàng sẽ trả lời bạn sớm nhất có thể.",
        "complaint.not_delivered": "Chúng tôi đã lưu khiếu nại {number} của bạn, nhưng hiện chưa chuyển được "
        "tới nhân viên. Cửa hàng sẽ liên hệ lại với bạn sớm nhất có thể. Gửi /status để xem tình trạng.",
        # The owners' weekly digest (flows/digest.py) and its chart.
        "digest.title": "📊 {shop} · báo cáo tuần {week} ({first}–{last})",
        "digest.partial": "(tuần chưa kết thúc: số liệu tính đến hiện tại)",
        "digest.empty": "Tuần {week} không có dữ liệu: không có câu trả lời khảo sát, không gửi khảo sát nào và không có khiếu nại.",
        "digest.still_open_only": "Vẫn còn {count} khiếu nại đang mở từ trước.",
        "digest.still_open_only.one": "Vẫn còn {count} khiếu nại đang mở từ trước.",
        "digest.csat": "⭐ CSAT {csat} · điểm TB {mean} · {answers}{answers_change} · tỉ lệ phản hồi {rate}",
        "digest.n_answers": "{n} câu trả lời",
        "digest.n_answers.one": "{n} câu trả lời",
        "digest.csat_none": "⭐ CSAT: chưa có câu trả lời nào ({sent}).",
        "digest.n_sent": "{n} khảo sát đã gửi",
        "digest.n_sent.one": "{n} khảo sát đã gửi",
        "digest.undelivered": "📭 {count} khảo sát không gửi được (ngoài khung tương tác, hết hạn mức, khách bỏ quan tâm…): không tính vào tỉ lệ phản hồi.",
        "digest.routes": "📮 Khảo sát đã gửi theo kênh: {routes}.",
        "digest.zns_spend": "💸 ZNS tuần này: {messages} tin, khoảng {vnd} đ.",
        "digest.resolution_zns": "📮 Đánh giá sau xử lý gửi qua ZNS: {asked} tin, {answered} lượt trả lời.",
        "zns.quota_reached": "⚠️ ZNS: đã gửi đủ {limit} tin hôm nay (giới hạn daily_messages). Các khảo sát còn lại chờ đến ngày mai; tăng giới hạn trong [zalo.zns] nếu cần.",
        "zns.budget_reached": "⚠️ ZNS: đã dùng hết ngân sách {limit} đ hôm nay (daily_budget_vnd). Các khảo sát còn lại chờ đến ngày mai; tăng ngân sách trong [zalo.zns] nếu cần.",
        "zalo.refresh_failed": "🚨 Zalo: không làm mới được access token ({error}). Nếu lỗi còn tiếp diễn, tin Zalo sẽ ngừng gửi: hãy cấp quyền lại cho ứng dụng với OA (developers.zalo.me) rồi đặt access_token / refresh_token mới vào [zalo] và khởi động lại bot.",
        "zalo.request_info_title": "Liên kết tài khoản với cửa hàng",
        "zalo.request_info_subtitle": "Chia sẻ số điện thoại để chúng tôi gửi khảo sát và hỗ trợ đơn hàng của bạn ngay tại đây.",
        "digest.by_touchpoint": "Theo điểm chạm: {items}",
        "digest.by_store": "Theo cửa hàng: {items}",
        "digest.by_tier": "Theo hạng khách: {items}",
        "digest.complaints": "🛠 Khiếu nại: {opened} mới{opened_change} · {resolved} đã xử lý · {still_open} còn mở",
        "digest.categories": "Theo loại: {items}",
        "digest.times": "Phản hồi đầu: trung vị {first_median}, P90 {first_p90} · Xử lý: trung vị {resolution_median}, P90 {resolution_p90}",
        "digest.sla": "Đạt SLA: {sla} · CSAT sau xử lý: {resolution_csat} · Mở lại: {reopened}",
        "digest.oldest": "Mở lâu nhất: {items}",
        "digest.questions": "❓ Câu hỏi của khách: {opened} · thời gian phản hồi đầu (trung vị): {first_median}",
        "digest.open_item": "{number} ({category}, từ {date})",
        "digest.voice": "💬 Khách hàng nói gì",
        "digest.lowest": "Điểm thấp nhất:",
        "digest.ideas": "Góp ý hay nhất:",
        "digest.themes": "Chủ đề khiếu nại: {items}",
        "digest.voice_none": "Tuần này không có bình luận nào.",
        "digest.alert": "⚠️ CSAT {kind} {name} giảm còn {csat} (TB 4 tuần trước {baseline}, {drop}; {answers})",
        "digest.kind_touchpoint": "điểm chạm",
        "digest.kind_store": "cửa hàng",
        "digest.no_store": "không rõ cửa hàng",
        "digest.points": "{value} điểm",
        "digest.minutes": "{value} phút",
        "digest.hours": "{value} giờ",
        "digest.days": "{value} ngày",
        "digest.photo_caption": "📈 Biểu đồ tuần {week}",
        "digest.chart_csat": "CSAT theo tuần (%) và số câu trả lời",
        "digest.chart_answers": "Câu trả lời",
        "digest.chart_no_answers": "Chưa có câu trả lời",
        "digest.chart_complaints": "Khiếu nại theo loại · {week}",
        "digest.chart_no_complaints": "Không có khiếu nại tuần này",
        "touchpoint.delivery": "giao hàng",
        "touchpoint.in_store": "tại cửa hàng",
        "touchpoint.online": "online",
        # Privacy (flows/privacy.py): the notice shown once per version, /mydata, /forget.
        "privacy.notice": "🔒 Về dữ liệu của bạn: chúng tôi lưu điểm đánh giá, góp ý, nội dung và ảnh khiếu nại, "
        "tin nhắn bạn gửi ở đây, cùng tên, số điện thoại và đơn hàng do cửa hàng cung cấp, để cải thiện dịch vụ "
        "và xử lý khiếu nại của bạn. Tiếp tục trả lời hoặc nhắn tin nghĩa là bạn đồng ý. "
        "Gửi /mydata để xem dữ liệu của bạn, /forget để xoá, /stop để không nhận khảo sát nữa.",
        "privacy.mydata_caption": "Dữ liệu {shop} lưu về bạn (JSON): {customers} hồ sơ khách hàng, {purchases} đơn hàng, "
        "{surveys} khảo sát, {tickets} khiếu nại, {messages} tin nhắn. Gửi /forget để xoá.",
        "privacy.mydata_chat_only": "Tệp này chỉ gồm dữ liệu của cuộc trò chuyện này: liên kết trên hoá đơn không "
        "mở được hồ sơ khách hàng. Nếu bạn là chủ đơn hàng, hãy liên hệ {shop} để nhận toàn bộ dữ liệu của mình.",
        "privacy.forget_confirm": "Bạn muốn xoá toàn bộ dữ liệu của mình tại {shop}? Điểm đánh giá chỉ được giữ "
        "ẩn danh để thống kê. Không thể hoàn tác.",
        "privacy.forget_yes": "Xoá dữ liệu",
        "privacy.forget_no": "Huỷ",
        "privacy.forget_cancelled": "Đã huỷ: dữ liệu của bạn vẫn được giữ nguyên.",
        "privacy.forgotten": "Đã xoá dữ liệu của bạn. Cảm ơn bạn đã đồng hành cùng chúng tôi.",
        "privacy.mydata_link": "Bạn tải tệp ở liên kết sau (dùng được trong {hours} giờ, vui lòng không chia sẻ cho ai): {url}",
        "privacy.mydata_ask_shop": "Kênh này chưa gửi được tệp dữ liệu. Bạn vui lòng liên hệ {shop} để nhận bản sao "
        "dữ liệu của mình. Muốn xoá dữ liệu, bạn gửi /forget.",
        "privacy.mydata_file_failed": "Xin lỗi, tệp dữ liệu của bạn không gửi được qua đây.",
        # To the customer's other chats (TellOtherChats): something happened in one of them.
        "privacy.told_token_reused": "Lưu ý từ {shop}: liên kết của đơn hàng #{order} vừa được mở trong một cuộc "
        "trò chuyện khác. Cuộc trò chuyện đó chỉ đánh giá và khiếu nại được về đơn hàng này, không xem được dữ liệu "
        "của bạn. Nếu không phải bạn mở, hãy báo cho cửa hàng.",
        "privacy.told_export": "Lưu ý từ {shop}: một cuộc trò chuyện khác của bạn vừa yêu cầu bản sao toàn bộ dữ liệu "
        "của bạn (/mydata). Nếu không phải bạn, hãy báo ngay cho cửa hàng.",
        "privacy.told_erase": "Lưu ý từ {shop}: dữ liệu của bạn vừa được xoá theo yêu cầu (/forget) từ một cuộc trò "
        "chuyện khác của bạn. Nếu không phải bạn, hãy báo cho cửa hàng.",
        "privacy.told_phone_claimed": "Lưu ý từ {shop}: một tài khoản chat khác vừa gửi số điện thoại của bạn. "
        "Tài khoản đó chưa được xem là của bạn và không xem được dữ liệu của bạn. Nếu không phải bạn, hãy báo cho "
        "cửa hàng.",
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
        "csat.question.delivery": "{shop} here: how satisfied are you with order #{order}? We hope it reached you "
        "safe and sound: tell us about the order and its delivery.\n(1 = very unsatisfied, 5 = very satisfied)",
        "csat.question.in_store": "Thank you for visiting {shop}! How satisfied are you with order #{order} and how "
        "the store served you today?\n(1 = very unsatisfied, 5 = very satisfied)",
        "csat.question.online": "Thank you for ordering online at {shop}! How satisfied are you with order #{order} "
        "and ordering online?\n(1 = very unsatisfied, 5 = very satisfied)",
        "csat.followup_low.delivery": "What went wrong with the delivery: late, damaged, or the courier? Tell us so "
        "the shop can put it right. Just reply here, or tap Skip.",
        "csat.followup_low.in_store": "What was not right at the store: the wait, the staff, or the products? Tell us "
        "so the shop can put it right. Just reply here, or tap Skip.",
        "csat.followup_low.online": "Which step was hard: finding the product, paying, or confirming the order? Tell "
        "us so the shop can put it right. Just reply here, or tap Skip.",
        "program.other": "Other…",
        "program.chosen": "Your answer: {answer}",
        "program.pick": "Please pick an answer with the buttons below.",
        "program.csat.question": "{shop} here: how satisfied are you with {shop} lately?\n"
        "(1 = very unsatisfied, 5 = very satisfied)",
        "program.csat.thanks": "Thank you for answering! 💚",
        "program.csat.follow_up": "What do you like most, and what could we do better? Just reply here, or tap Skip.",
        "program.csat.follow_up_low": "What was not right? Tell us so {shop} can fix it, or tap Skip.",
        "program.nps.question": "How likely are you to recommend {shop} to a friend or family member?\n"
        "(0 = not at all, 10 = extremely likely)",
        "program.nps.thanks": "Thank you! 💚",
        "program.nps.follow_up": "Why that score? Just reply here, or tap Skip.",
        "program.nps.follow_up_low": "What keeps you from recommending us? Tell us, or tap Skip.",
        "program.ces.question": "Your complaint was resolved. How easy was it to get your problem solved?\n"
        "(1 = very difficult, 7 = very easy)",
        "program.ces.thanks": "Thank you for telling us!",
        "program.ces.follow_up": "Is there anything that would have made it even easier? Just reply here, or tap Skip.",
        "program.ces.follow_up_low": "Sorry it took so much effort. Which step was hardest? Tell us, or tap Skip.",
        "program.usage.question": "It has been a while since order #{order}. What do you mostly use it for?",
        "program.usage.options": "Every day|As a gift|For work|For the family",
        "program.usage.other": "What do you use it for? Just reply here.",
        "program.usage.thanks": "Thank you for telling us! 💚",
        "program.usage.follow_up": "",
        "program.brand.question": "How did you first hear of {shop}?",
        "program.brand.options": "Friends or family|Facebook|TikTok|Google|Walked past the store",
        "program.brand.other": "Where did you hear of us? Just reply here.",
        "program.brand.thanks": "Thank you!",
        "program.brand.follow_up": "What one word comes to mind when you think of {shop}? Just one word, or tap Skip.",
        "program.ideas.question": "{shop} always wants to do better: what should we sell next, what should we change, "
        "what about our prices? Just reply here.",
        "program.ideas.thanks": "Thank you for your idea! {shop} noted it and will pass it on to the right person.",
        "idea.ask_topic": "Thank you for sharing an idea with {shop}! What is it about?",
        "idea.ask_text": "Write your idea or wish here: what we should sell next, what to change, prices…",
        "idea.thanks": "Thank you for your idea! {shop} noted it and will pass it on to the right person. 💡",
        "idea.cancelled": "No problem. Whenever you have an idea, send /gopy.",
        "idea.button": "💡 Share an idea",
        "idea.topic.product": "New products",
        "idea.topic.price": "Prices",
        "idea.topic.service": "Service",
        "idea.topic.delivery": "Delivery",
        "idea.topic.other": "Other",
        "idea.routed": "💡 New idea ({topic}) from a customer:\n{text}",
        "complaint.routed": "📌 Complaint {number} ({category}) for your department:\n{text}",
        "fd.owner_title": "📋 {shop}: listening to customers, week {week}",
        "fd.programs": "Survey programs:",
        "fd.nps": "{name}: NPS {score} ({answers} answers; {promoters} promoters, {detractors} detractors)",
        "fd.ces": "{name}: ease {mean}/7, {easy}% found it easy ({answers} answers)",
        "fd.csat": "{name}: {pct} satisfied ({answers} answers)",
        "fd.choices": "{name}: {top} ({answers} answers)",
        "fd.answers": "{name}: {answers} answers",
        "fd.journey": "The customer journey (satisfied · answers):",
        "fd.journey_empty": "No rating is tied to a stage yet.",
        "fd.stage_complaints": " · {count} complaints, mostly: {category}",
        "fd.drop_started": "⚠️ This week's drop in satisfaction started at the {stage} stage: fix it there, not only at the last touchpoint.",
        "fd.ideas": "💡 New ideas: {count}",
        "fd.staff": "Satisfaction per staff member (owners and the store's manager only):",
        "fd.department_title": "📋 Department {name} ({shop}), week {week}",
        "fd.dept_complaints": "Complaints: {count}",
        "fd.store_title": "🏬 Store {store} ({shop}), week {week}",
        "fd.store_csat": "Satisfied: {pct} ({answers} answers; week before {before})",
        "stage.consult": "Consultation",
        "stage.order": "Ordering",
        "stage.payment": "Payment",
        "stage.delivery": "Delivery",
        "stage.after_sales": "After-sales",
        "stage.none": "No stage given",
        "start.linked": "Hello {name}! You are now connected to {shop}. After each order we will ask "
        "you one short question about it. Send /stop if you do not want surveys.",
        "start.welcome": "Hello! This is the customer care chat of {shop}. "
        "Write to us any time. Send /stop if you do not want surveys.",
        "start.bad_link": "This link is not valid or has expired. You can still write to {shop} here.",
        "start.order": "Hello! This is the customer care chat of {shop}. Here you can rate order #{order} "
        "and file a complaint about it. Send /stop if you do not want surveys.",
        "start.expired": "This link has expired or the shop has replaced it with a new one, so it no longer "
        "works. You can still write to {shop} here.",
        "start.share_phone": "If this order is yours, tap “📱 Share my phone number” below: if it matches the "
        "number {shop} has, this chat is recognised as yours.",
        "phone.share_button": "📱 Share my phone number",
        "phone.linked": "Thank you, {name}! This chat is now connected to your customer record at {shop}.",
        "phone.unknown": "Thank you! {shop} has no customer with this phone number.",
        "phone.not_proved": "Thank you! Only this account's own number (the share phone number button) lets "
        "{shop} recognise you, so this chat is not connected to any customer record.",
        "stop.done": "You will not get surveys from {shop} any more. Send /start to turn them back on.",
        "help": "Commands:\n/complaint: file a complaint\n/gopy: share an idea or a wish\n/status: see your complaints\n/start: start, receive surveys again\n"
        "/stop: stop receiving surveys\n/mydata: see your data\n/forget: delete your data\n/help: this help\nYou can also write to {shop} directly here.",
        "idle.received": "Thank you for your message! {shop} has received it and will reply soon.",
        "unknown_command": "Sorry, we do not know that command. Send /help to see the commands.",
        "csat.complain": "File a complaint",
        "complaint.ask_order": "Which order is your complaint about?",
        "complaint.other_order": "Other / no order",
        "complaint.ask_category": "What kind of problem is it?",
        "complaint.ask_description": "Please describe what happened.",
        "complaint.too_short": "Please tell us a little more so we understand the problem (a few words at least).",
        "complaint.ask_photos": "Do you have photos? Send them here (up to {max}), then tap Continue. No photos: just tap Continue.",
        "complaint.photo_received": "Got {count} photos. Send more, or tap Continue.",
        "complaint.photo_received.one": "Got {count} photo. Send more, or tap Continue.",
        "complaint.photo_limit": "That is {max} photos, the most we take. Please tap Continue.",
        "complaint.continue": "Continue",
        "complaint.confirm": "Please check:\nOrder: {order}\nType: {category}\nDescription: {description}\nPhotos: {photos}\n\nSend this complaint?",
        "complaint.submit": "Send",
        "complaint.cancel": "Cancel",
        "complaint.cancelled": "Cancelled. You can send /complaint any time.",
        "complaint.reask_buttons": "Please pick one of the buttons below (or tap Cancel).",
        "complaint.opened": "We have your complaint {number}. An agent will answer by {due}. "
        "Everything you write here goes to the agent. Send /status to see where it stands.",
        "complaint.already_open": "Your complaint {number} is still open. Just write here and the agent will see it.",
        "complaint.busy": "Too many requests have come from your network just now, so this one was not taken. "
        "Please try again in a little while, or contact the shop directly.",
        "complaint.claimed": "{number}: {agent} is now handling your complaint.",
        "complaint.agent_says": "💬 {shop} ({number}): {text}",
        "complaint.agent_photo": "📷 {shop} ({number}) sent a photo",
        "complaint.resolved": "{number} has been resolved. How satisfied are you with how we handled it? (1–5)",
        "complaint.rated": "Thank you for rating us {score}/5.",
        "complaint.resolved_plain": "{number} has been resolved.",
        "complaint.offer_reopen": "If the problem is not solved, you can reopen the complaint within {days} days.",
        "complaint.reopen": "Reopen complaint",
        "complaint.reopened": "{number} is open again. An agent will answer by {due}.",
        "complaint.reopen_closed": "This complaint can no longer be reopened. Send /complaint to file a new one.",
        "complaint.not_yours": "We could not find that complaint.",
        "complaint.status_none": "You have no open complaints.",
        "complaint.status_line": "{number} · {category} · {status} · opened {opened}",
        "status.open": "waiting for an agent",
        "status.claimed": "{agent} is on it",
        "status.resolved": "resolved",
        "photos.none": "none",
        "photos.count": "{count} photos",
        "photos.count.one": "{count} photo",
        "order.none": "none",
        "category.delivery": "Delivery",
        "category.product_quality": "Product quality",
        "category.staff_attitude": "Staff attitude",
        "category.price_billing": "Price / billing",
        "category.other": "Other",
        "category.question": "Question",
        "idle.unsupported": "Sorry, we can only read text and photos here. Please write your message as text.",
        "question.opened": "{shop} has your question ({number}). An agent will answer within about {within}, "
        "by {due}. Write here if there is more: the agent sees all of it.",
        "question.follow_up": "{shop} has your message; it was added to your question {number}. "
        "An agent will answer within about {within}, by {due}.",
        "question.claimed": "{number}: {agent} is answering your question.",
        "question.no_agents": "Thank you for your message! No one at {shop} reads this chat yet, so it cannot be "
        "answered here. Please contact {shop} directly.",
        "question.closed": "Your question {number} is closed. Thank you! If you need anything else, just write here.",
        "duration.minutes": "{n} minutes",
        "duration.hour": "{n} hour",
        "duration.hours": "{n} hours",
        "duration.day": "{n} day",
        "duration.days": "{n} days",
        "desk.question_card": "❓ Question {number}\nCustomer: {customer} ({tier})\nMessage: {description}\nPhotos: {photos}\n"
        "First response due: {first_due}\nStatus: {status}",
        "complaint.description_added": "Added to the description. Send photos if you have any, or tap Continue.",
        "complaint.status_draft": "You have an unfinished complaint. Carry on with the message above, or send /cancel to drop it.",
        "csat.offer_complaint": "It sounds like something went wrong with this order. Would you like to file a complaint so an agent can put it right?",
        "desk.card": "{marker}{number} · priority {priority}\nCustomer: {customer} ({tier})\nOrder: {order}\nType: {category}\n"
        "Description: {description}\nPhotos: {photos}\nPast CSAT: {past_csat}\nFirst response due: {first_due} · resolution due: {resolution_due}\n"
        "Status: {status}",
        "desk.card_hint_reply": "Reply to this message to write to the customer; /note <text> for an internal note.",
        "desk.card_hint_topic": "Write in this topic to answer the customer; /note <text> for an internal note.",
        "desk.claim": "✋ Claim",
        "desk.resolve": "✅ Resolve",
        "desk.escalate": "⏫ Escalate",
        "desk.customer_says": "👤 {customer} ({number}): {text}",
        "desk.customer_photo": "👤 {customer} ({number}) sent a photo",
        "desk.claimed": "✋ {agent} claimed {number}.",
        "desk.resolved": "✅ {agent} resolved {number}.",
        "desk.escalated": "⏫ {number} escalated by {agent}: priority {priority}. {supervisor}",
        "orders.refused": "⚠️ Order source {source} ({platform}): a request was refused ({reason}). Check the source's secret in the config and on {platform}; `feedbot source status` tells more. Not repeated for this source.",
        "desk.breach_first": "⏰ {number} missed its first-response target ({due}). Priority raised to {priority}. {supervisor}",
        "desk.breach_resolution": "⏰ {number} missed its resolution target ({due}). Priority raised to {priority}. {supervisor}",
        "desk.reopened": "🔁 The customer reopened {number}.",
        "desk.rated": "⭐ The customer rated the handling of {number}: {score}/5.",
        "desk.denied": "You are not allowed to act on complaints.",
        "desk.anonymous": "Anonymous admins cannot answer customers: turn anonymity off.",
        "desk.already_claimed": "{agent} is handling this complaint.",
        "desk.already_resolved": "This complaint is already resolved.",
        "desk.unknown_ticket": "Complaint not found.",
        "desk.not_sent_resolved": "{number} is resolved: the message was not sent to the customer.",
        "desk.note_saved": "📝 Note saved on {number}.",
        "desk.status_open": "waiting to be claimed",
        "desk.status_claimed": "{agent} is on it",
        "desk.status_resolved": "resolved",
        "tier.vip": "VIP",
        "tier.regular": "regular",
        "priority.normal": "normal",
        "priority.high": "high",
        "priority.urgent": "urgent",
        "desk.no_csat": "none yet",
        "desk.already_top": "{number} is already at the top priority: recorded, nobody pinged again.",
        "backup.failed": "⚠️ The automatic backup failed ({error}). The data itself is safe, but the newest "
        "backup is {last}. Check the server (disk space, the backup folder) and run `feedbot check-config`.",
        "desk.card_undelivered": "⚠️ The card of {number} could not be posted in the agents' group ({error}). "
        "It is saved; check that the bot is still in the group.",
        "desk.reply_undelivered": "⚠️ {number}: a message to the customer could not be delivered ({error}). "
        "They did not get it; please reach them another way.",
        "desk.reply_no_chat": "⚠️ {number}: the customer is known by phone only, with no chat with the shop, so "
        "the reply could not be sent (it is saved on the ticket). Please call them.",
        "desk.card_unsure": "⚠️ The card of {number} may not have reached the agents' group (Telegram did not "
        "answer in time). Please check the group.",
        "desk.see_agent_page": "Agents can still see and handle it on the /agent page.",
        "complaint.kept": "We have saved your complaint {number}. The shop will look at it and get back to you. "
        "Send /status to check on it.",
        "question.not_delivered": "We have saved your question {number}, but could not pass it to our staff just now. "
        "The shop will answer you as soon as it can.",
        "complaint.not_delivered": "We have saved your complaint {number}, but could not pass it to our staff just now. "
        "The shop will get back to you as soon as it can. Send /status to check on it.",
        # The owners' weekly digest (flows/digest.py) and its chart.
        "digest.title": "📊 {shop} · weekly report {week} ({first}–{last})",
        "digest.partial": "(the week is not over yet: figures so far)",
        "digest.empty": "No data for week {week}: no survey answers, no surveys sent and no complaints.",
        "digest.still_open_only": "{count} complaints from before are still open.",
        "digest.still_open_only.one": "{count} complaint from before is still open.",
        "digest.csat": "⭐ CSAT {csat} · mean score {mean} · {answers}{answers_change} · response rate {rate}",
        "digest.n_answers": "{n} answers",
        "digest.n_answers.one": "{n} answer",
        "digest.csat_none": "⭐ CSAT: no answers yet ({sent}).",
        "digest.n_sent": "{n} surveys sent",
        "digest.n_sent.one": "{n} survey sent",
        "digest.undelivered": "📭 Surveys not delivered: {count} (outside the chat window, quota, unfollowed…), not counted in the response rate.",
        "digest.routes": "📮 Surveys sent by route: {routes}.",
        "digest.zns_spend": "💸 ZNS this week: {messages} messages, about {vnd} VND.",
        "digest.resolution_zns": "📮 Resolution ratings sent by ZNS: {asked}, answered: {answered}.",
        "zns.quota_reached": "⚠️ ZNS: {limit} messages sent today (daily_messages). The remaining surveys wait until tomorrow; raise the limit in [zalo.zns] if needed.",
        "zns.budget_reached": "⚠️ ZNS: today's budget of {limit} VND is used up (daily_budget_vnd). The remaining surveys wait until tomorrow; raise it in [zalo.zns] if needed.",
        "zalo.refresh_failed": "🚨 Zalo: the access token could not be refreshed ({error}). If this goes on, Zalo messages stop: re-authorize the app for the OA (developers.zalo.me), put the new access_token / refresh_token in [zalo] and restart the bot.",
        "zalo.request_info_title": "Link your account with the shop",
        "zalo.request_info_subtitle": "Share your phone number so we can send your order's survey and help you right here.",
        "digest.by_touchpoint": "By touchpoint: {items}",
        "digest.by_store": "By store: {items}",
        "digest.by_tier": "By customer tier: {items}",
        "digest.complaints": "🛠 Complaints: {opened} new{opened_change} · {resolved} resolved · {still_open} still open",
        "digest.categories": "By category: {items}",
        "digest.times": "First response: median {first_median}, p90 {first_p90} · Resolution: median {resolution_median}, p90 {resolution_p90}",
        "digest.sla": "Within SLA: {sla} · Resolution CSAT: {resolution_csat} · Reopened: {reopened}",
        "digest.oldest": "Oldest open: {items}",
        "digest.questions": "❓ Customers' questions: {opened} · first response (median): {first_median}",
        "digest.open_item": "{number} ({category}, since {date})",
        "digest.voice": "💬 What customers said",
        "digest.lowest": "Lowest scores:",
        "digest.ideas": "Best ideas:",
        "digest.themes": "Complaint themes: {items}",
        "digest.voice_none": "No comments this week.",
        "digest.alert": "⚠️ CSAT at {kind} {name} fell to {csat} (previous 4 weeks {baseline}, {drop}; {answers})",
        "digest.kind_touchpoint": "touchpoint",
        "digest.kind_store": "store",
        "digest.no_store": "no store",
        "digest.points": "{value} pts",
        "digest.minutes": "{value} min",
        "digest.hours": "{value} h",
        "digest.days": "{value} days",
        "digest.photo_caption": "📈 Chart for week {week}",
        "digest.chart_csat": "CSAT per week (%) and answers",
        "digest.chart_answers": "Answers",
        "digest.chart_no_answers": "No answers yet",
        "digest.chart_complaints": "Complaints by category · {week}",
        "digest.chart_no_complaints": "No complaints this week",
        "touchpoint.delivery": "delivery",
        "touchpoint.in_store": "in store",
        "touchpoint.online": "online",
        "privacy.notice": "🔒 About your data: we keep your ratings, comments, complaint texts and photos, "
        "the messages you send here, and the name, phone and orders the shop gave us, to improve its service and "
        "handle your complaints. By answering or writing on, you agree. "
        "Send /mydata to see your data, /forget to delete it, /stop to get no more surveys.",
        "privacy.mydata_caption": "The data {shop} keeps about you (JSON): {customers} customer record(s), {purchases} order(s), "
        "{surveys} survey(s), {tickets} complaint(s), {messages} message(s). Send /forget to delete it.",
        "privacy.mydata_chat_only": "This file holds this chat's own data only: a receipt's link does not open the "
        "customer's record. If the order is yours, ask {shop} for all your data.",
        "privacy.forget_confirm": "Delete all your data at {shop}? Ratings are kept only anonymously, for statistics. "
        "This cannot be undone.",
        "privacy.forget_yes": "Delete my data",
        "privacy.forget_no": "Cancel",
        "privacy.forget_cancelled": "Cancelled: your data is unchanged.",
        "privacy.forgotten": "Your data has been deleted. Thank you for having been with us.",
        "privacy.mydata_link": "Download it here (expires in {hours} hours; do not share this link): {url}",
        "privacy.mydata_ask_shop": "Files cannot be sent over this channel yet. Please ask {shop} for a copy of your "
        "data. Send /forget to delete it.",
        "privacy.told_token_reused": "Note from {shop}: the link of order #{order} was just opened in another chat. "
        "That chat can only rate and complain about this order; it cannot see your data. If it was not you, "
        "please tell the shop.",
        "privacy.told_export": "Note from {shop}: another of your chats just asked for a copy of all your data "
        "(/mydata). If it was not you, tell the shop now.",
        "privacy.told_erase": "Note from {shop}: your data was just deleted at the request (/forget) of another "
        "of your chats. If it was not you, please tell the shop.",
        "privacy.told_phone_claimed": "Note from {shop}: another chat account just gave your phone number. It is "
        "not treated as yours and cannot see your data. If it was not you, please tell the shop.",
        "privacy.mydata_file_failed": "Sorry, your data file could not be sent here.",
    },
}


MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day_month(at: date, language: str) -> str:
    """A day as each language writes it: vi "05/12", en "5 Dec" (05/12 reads as May 12 to many)."""
    return f"{at.day} {MONTHS_EN[at.month - 1]}" if language == "en" else f"{at.day:02d}/{at.month:02d}"


def local_time(at: datetime, tz: tzinfo, language: str = DEFAULT) -> str:
    """A time as a customer reads it, in the shop's time zone: vi "14:30 23/11", en "14:30, 23 Nov"."""
    local = at.astimezone(tz)
    if language == "en":
        return f"{local.hour:02d}:{local.minute:02d}, {day_month(local, language)}"
    return local.strftime("%H:%M %d/%m")


def fmt_number(value: float, language: str, decimals: int = 0) -> str:
    """One number format everywhere: en "1,234.5"; vi "1.234,5" (dot for thousands, comma for decimals)."""
    body = f"{value:,.{decimals}f}"
    return body.translate(str.maketrans(",.", ".,")) if language == "vi" else body


def plural(language: str, key: str, count: int, /, **params: object) -> str:
    """A counted phrase: `key + ".one"` for exactly one where there is one (English: "1 answer"), else `key`."""
    one = f"{key}.one"
    return text(language, one if count == 1 and has(language, one) else key, **params)


def duration_text(language: str, span: timedelta) -> str:
    """A response target as a customer reads it: "4 giờ", "30 phút", "1 day"."""
    minutes = int(span.total_seconds() // 60)
    if minutes < 60 or minutes % 60:
        return text(language, "duration.minutes", n=minutes)
    hours = minutes // 60
    if hours < 24 or hours % 24:
        return text(language, "duration.hour" if hours == 1 else "duration.hours", n=hours)
    days = hours // 24
    return text(language, "duration.day" if days == 1 else "duration.days", n=days)


def category_label(language: str, category: str) -> str:
    key = f"category.{category}"
    return text(language, key) if has(language, key) else category.replace("_", " ").capitalize()


def pick_language(language_code: str | None, default: str = DEFAULT) -> str:
    """Map a platform language code ("en-US", "vi") to a catalog we have."""
    if language_code:
        base = language_code.split("-")[0].split("_")[0].lower()
        if base in CATALOG:
            return base
    return default if default in CATALOG else DEFAULT


def has(language: str, key: str) -> bool:
    return key in CATALOG.get(language, {}) or key in CATALOG[DEFAULT]


def text(language: str, key: str, **params: object) -> str:
    catalog = CATALOG.get(language, CATALOG[DEFAULT])
    template = catalog.get(key) or CATALOG[DEFAULT][key]
    return template.format(**params)
