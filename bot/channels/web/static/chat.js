/* feedbot web chat client: plain JS, no build step. Used by the /chat page and by widget.js.
   FeedbotChat.mount(element, {wsUrl, persist, customerToken, start, lang, shop}) */
(function () {
  "use strict";
  var UI = {
    vi: {
      chat: "Trò chuyện với {shop}", connecting: "Đang kết nối…", online: "Đã kết nối",
      offline: "Mất kết nối, đang thử lại…", label: "Tin nhắn của bạn", placeholder: "Nhập tin nhắn…",
      send: "Gửi", demo: "Thử khảo sát mẫu (demo)", demo_hint: "Chỉ để dùng thử: không tính vào số liệu của cửa hàng", complaint: "Gửi khiếu nại", status: "Khiếu nại của tôi",
      actions: "Thao tác nhanh", photo: "(Ảnh này chỉ xem được trong ứng dụng chat, không hiển thị trên web.)",
      too_long: "Tin nhắn quá dài (tối đa {n} ký tự).", too_large: "Tin nhắn quá lớn.",
      rate_limited: "Bạn gửi hơi nhanh, vui lòng chờ một chút rồi gửi lại.", error: "Không gửi được: {m}",
      you: "Bạn", bot: "{shop}", download: "Tải xuống {name}", download_label: "Tải xuống dữ liệu của bạn ({name})",
      expired: "(Tệp đã hết hạn, gửi /mydata để nhận lại.)",
      attach: "Gửi ảnh", image_alt: "Ảnh bạn gửi", image_too_large: "Ảnh quá lớn (tối đa {mb} MB).",
      not_image: "Chỉ gửi được ảnh JPEG, PNG, WebP hoặc GIF.",
      no_session: "Chat chưa kết nối xong, vui lòng thử lại sau giây lát.",
      origin: "Trang này không được phép gửi ảnh cho cửa hàng.", upload_failed: "Không gửi được ảnh, vui lòng thử lại."
    },
    en: {
      chat: "Chat with {shop}", connecting: "Connecting…", online: "Connected",
      offline: "Connection lost, retrying…", label: "Your message", placeholder: "Type a message…",
      send: "Send", demo: "Try a demo survey", demo_hint: "For trying the bot only: not counted in the shop's figures", complaint: "File a complaint", status: "My complaints",
      actions: "Quick actions", photo: "(This photo can only be seen in the chat app, not on the web.)",
      too_long: "Message too long (at most {n} characters).", too_large: "Message too large.",
      rate_limited: "You are sending quickly; please wait a moment and try again.", error: "Not sent: {m}",
      you: "You", bot: "{shop}", download: "Download {name}", download_label: "Download your data ({name})",
      expired: "(This file has expired; send /mydata to get it again.)",
      attach: "Attach an image", image_alt: "Your image", image_too_large: "Image too large (at most {mb} MB).",
      not_image: "Only JPEG, PNG, WebP or GIF images can be sent.",
      no_session: "The chat is not connected yet; please try again in a moment.",
      origin: "This site may not send images to the shop.", upload_failed: "The image could not be sent; please try again."
    }
  };

  function fmt(s, params) {
    return s.replace(/\{(\w+)\}/g, function (_, k) { return params[k] !== undefined ? params[k] : ""; });
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function stored(key, value) { // localStorage, when the browser allows it (private modes may not)
    try {
      if (value === undefined) return window.localStorage.getItem(key);
      window.localStorage.setItem(key, value);
    } catch (e) { /* the session then lasts as long as the page */ }
    return null;
  }
  function newId() {
    return "c" + Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
  }

  function mount(root, opts) {
    var lang = UI[opts.lang] ? opts.lang : "vi";
    var t = UI[lang];
    var shop = opts.shop || root.getAttribute("data-shop") || "";
    var storeKey = "feedbot-session:" + opts.wsUrl;
    var session = opts.persist ? stored(storeKey) : null;
    var lastSeq = 0, ws = null, attempt = 0, timer = null, pinger = null, maxChars = 2000;
    var maxUpload = 5 * 1024 * 1024;
    var uploadUrl = opts.wsUrl.replace(/^ws/, "http").replace(/\/chat\/ws$/, "/chat/upload");
    var IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp", "image/gif"];
    var pending = {}; // client id -> frame not yet accepted by the server
    var pendingOrder = [];
    var byChoice = {}; // client id of a button press -> the message element

    root.classList.add("fb-chat");
    root.setAttribute("lang", lang);
    root.textContent = "";
    var head = el("header", "fb-head");
    var title = el(opts.widget ? "h2" : "h1", "", fmt(t.chat, {shop: shop}));
    var status = el("span", "fb-status", t.connecting);
    status.setAttribute("role", "status");
    status.setAttribute("data-state", "connecting");
    head.appendChild(title); head.appendChild(status);
    var log = el("ol", "fb-log");
    log.setAttribute("role", "log");
    log.setAttribute("aria-live", "polite");
    log.setAttribute("aria-relevant", "additions text");
    log.setAttribute("tabindex", "0");
    log.setAttribute("aria-label", fmt(t.chat, {shop: shop}));
    var actions = el("div", "fb-actions");
    actions.setAttribute("role", "group");
    actions.setAttribute("aria-label", t.actions);
    var demo = el("button", "fb-demo", t.demo); demo.type = "button"; demo.hidden = true; demo.title = t.demo_hint;
    var complain = el("button", "fb-complain", t.complaint); complain.type = "button";
    var mine = el("button", "fb-mine", t.status); mine.type = "button";
    actions.appendChild(demo); actions.appendChild(complain); actions.appendChild(mine);
    var form = el("form", "fb-form");
    var inputId = "fb-input-" + Math.random().toString(36).slice(2, 8);
    var label = el("label", "fb-sr", t.label); label.htmlFor = inputId;
    var input = el("textarea"); input.id = inputId; input.rows = 1; input.placeholder = t.placeholder;
    input.setAttribute("enterkeyhint", "send");
    var send = el("button", "fb-send", t.send); send.type = "submit";
    // An image: the 📎 button opens the file picker (keyboard: Tab to it, Enter), or paste one.
    var attach = el("button", "fb-attach", "📎"); attach.type = "button";
    attach.setAttribute("aria-label", t.attach); attach.title = t.attach;
    var picker = el("input", "fb-sr"); picker.type = "file"; picker.accept = IMAGE_TYPES.join(",");
    picker.tabIndex = -1; picker.setAttribute("aria-hidden", "true");
    form.appendChild(attach); form.appendChild(picker);
    form.appendChild(label); form.appendChild(input); form.appendChild(send);
    root.appendChild(head); root.appendChild(log); root.appendChild(actions); root.appendChild(form);

    function setStatus(state) {
      status.setAttribute("data-state", state);
      status.textContent = t[state];
    }
    function scroll() { log.scrollTop = log.scrollHeight; }
    function transmit(frame) {
      if (ws && ws.readyState === 1) ws.send(JSON.stringify(frame));
    }
    function queue(frame) {
      pending[frame.id] = frame; pendingOrder.push(frame.id);
      transmit(frame);
    }

    function renderButtons(item, seq, rows) {
      var old = item.querySelector(".fb-buttons");
      if (old) old.remove();
      if (!rows || !rows.length) return;
      var box = el("div", "fb-buttons");
      rows.forEach(function (row) {
        var line = el("div", "fb-row");
        row.forEach(function (b) {
          var btn = el("button", "", b.label); btn.type = "button";
          btn.addEventListener("click", function () {
            var id = newId();
            byChoice[id] = item;
            item.querySelectorAll(".fb-buttons button").forEach(function (x) { x.disabled = true; });
            queue({type: "choice", id: id, data: b.data, message_id: seq});
          });
          line.appendChild(btn);
        });
        box.appendChild(line);
      });
      item.appendChild(box);
    }
    function setText(item, text) {
      var body = item.querySelector(".fb-text");
      body.textContent = text;
    }
    function botMessage(f) {
      var item = el("li", "fb-msg fb-bot");
      item.setAttribute("data-seq", f.seq);
      item.appendChild(el("span", "fb-sr", fmt(t.bot, {shop: shop}) + ": "));
      item.appendChild(el("span", "fb-text", f.text));
      if (f.photo === "unavailable") item.appendChild(el("span", "fb-note", t.photo));
      if (f.image) { var img = el("img"); img.src = f.image; img.alt = f.text || ""; item.appendChild(img); }
      if (f.document) item.appendChild(documentLink(f.document));
      renderButtons(item, f.seq, f.buttons);
      log.appendChild(item);
    }
    function documentLink(d) { // a /mydata file: a download built from the data the frame carries
      var name = String(d.filename || "file");
      if (!d.data) return el("span", "fb-note", t.expired);
      var bytes = atob(d.data), buf = new Uint8Array(bytes.length);
      for (var i = 0; i < bytes.length; i++) buf[i] = bytes.charCodeAt(i);
      var a = el("a", "fb-download", fmt(t.download, {name: name}));
      a.href = URL.createObjectURL(new Blob([buf], {type: d.mime_type || "application/octet-stream"}));
      a.download = name;
      a.setAttribute("aria-label", fmt(t.download_label, {name: name}));
      return a;
    }
    function myMessage(id, text, state) {
      var item = el("li", "fb-msg fb-me");
      item.setAttribute("data-client-id", id);
      item.setAttribute("data-state", state);
      item.appendChild(el("span", "fb-sr", t.you + ": "));
      item.appendChild(el("span", "fb-text", text));
      log.appendChild(item);
      return item;
    }
    function imageItem(id, state) {
      var item = el("li", "fb-msg fb-me fb-image");
      item.setAttribute("data-client-id", id);
      item.setAttribute("data-state", state);
      item.appendChild(el("span", "fb-sr", t.you + ": "));
      var img = el("img"); img.alt = t.image_alt;
      item.appendChild(img);
      log.appendChild(item);
      return img;
    }
    function showUploaded(id, seq) { // sent from another tab, or before a reload: fetched with the session
      var img = imageItem(id, "sent");
      var headers = {}; if (session) headers["X-Feedbot-Session"] = session;
      fetch(uploadUrl + "/" + seq, {headers: headers, credentials: "same-origin"}).then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
        return r.blob();
      }).then(function (b) { img.src = URL.createObjectURL(b); scroll(); }).catch(function () {
        img.replaceWith(el("span", "fb-note", t.upload_failed));
      });
    }
    function refuse(code, fallback) {
      notice(code === "too_large" ? fmt(t.image_too_large, {mb: Math.floor(maxUpload / 1048576 * 10) / 10})
             : t[code] && code !== "error" ? t[code] : fallback);
    }
    function upload(file) {
      if (!file) return;
      if (IMAGE_TYPES.indexOf(file.type) < 0) { refuse("not_image"); return; }
      if (file.size > maxUpload) { refuse("too_large"); return; }
      var id = newId();
      var img = imageItem(id, "pending");
      img.src = URL.createObjectURL(file);
      scroll();
      var item = mineFor(id);
      var headers = {"Content-Type": "application/octet-stream", "X-Feedbot-Id": id};
      if (session) headers["X-Feedbot-Session"] = session;
      fetch(uploadUrl + "?lang=" + lang, {method: "POST", headers: headers, body: file, credentials: "same-origin"})
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (body) {
            if (r.ok) { item.setAttribute("data-state", "sent"); return; }
            URL.revokeObjectURL(img.src);
            item.remove(); // refused: not in the conversation; the notice says why
            refuse(body.code || "", fmt(t.error, {m: body.message || r.status}));
          });
        }).catch(function () { item.setAttribute("data-state", "failed"); notice(t.upload_failed); });
    }
    attach.addEventListener("click", function () { picker.click(); });
    picker.addEventListener("change", function () {
      var file = picker.files && picker.files[0];
      picker.value = "";
      upload(file);
    });
    input.addEventListener("paste", function (ev) {
      var items = (ev.clipboardData && ev.clipboardData.items) || [];
      for (var i = 0; i < items.length; i++) {
        if (items[i].kind === "file" && /^image\//.test(items[i].type)) { ev.preventDefault(); upload(items[i].getAsFile()); return; }
      }
    });
    function notice(text) { log.appendChild(el("li", "fb-notice", text)); scroll(); }
    function mineFor(id) { return log.querySelector('[data-client-id="' + id + '"]'); }
    function settle(id) {
      delete pending[id];
      pendingOrder = pendingOrder.filter(function (x) { return x !== id; });
    }

    function onFrame(f) {
      if (typeof f.seq === "number") {
        if (f.seq <= lastSeq) return; // already shown (a resume overlapping a push)
        lastSeq = f.seq;
      }
      switch (f.type) {
        case "welcome":
          session = f.session;
          if (opts.persist) stored(storeKey, session);
          if (f.max_message_chars) maxChars = f.max_message_chars;
          if (f.max_upload_bytes) maxUpload = f.max_upload_bytes;
          demo.hidden = !f.demo;
          attempt = 0;
          setStatus("online");
          pendingOrder.forEach(function (id) { transmit(pending[id]); }); // resend what was not accepted
          break;
        case "message": case "document": botMessage(f); break;
        case "reset": // after /forget: the conversation is gone, here too
          log.querySelectorAll("a.fb-download").forEach(function (a) { URL.revokeObjectURL(a.href); });
          log.textContent = ""; byChoice = {};
          break;
        case "edit":
          var target = log.querySelector('[data-seq="' + f.target + '"]');
          if (target) { setText(target, f.text); renderButtons(target, f.target, f.buttons); }
          break;
        case "notice": notice(f.text); break;
        case "visitor":
          var mineItem = mineFor(f.id);
          if (mineItem) mineItem.setAttribute("data-state", "sent");
          else if (f.upload) showUploaded(f.id, f.seq);
          else myMessage(f.id, f.text, "sent");
          break;
        case "ack":
          var cid = String(f.choice_id || "").split(":").pop();
          var pressed = byChoice[cid];
          if (pressed) pressed.querySelectorAll(".fb-buttons button").forEach(function (x) { x.disabled = false; });
          delete byChoice[cid];
          break;
        case "accepted":
          settle(f.id);
          var accepted = mineFor(f.id);
          if (accepted) accepted.setAttribute("data-state", "sent");
          break;
        case "error":
          var text = t[f.code] ? fmt(t[f.code], {n: maxChars}) : fmt(t.error, {m: f.message});
          if (f.id) {
            settle(f.id);
            var failed = mineFor(f.id);
            if (failed) failed.setAttribute("data-state", "failed");
            if (byChoice[f.id]) {
              byChoice[f.id].querySelectorAll(".fb-buttons button").forEach(function (x) { x.disabled = false; });
              delete byChoice[f.id];
            }
          }
          notice(text);
          break;
      }
      scroll();
    }

    function connect() {
      setStatus(attempt ? "offline" : "connecting");
      ws = new WebSocket(opts.wsUrl);
      ws.onopen = function () {
        ws.send(JSON.stringify({
          type: "hello", session: session, resume: lastSeq, start: opts.start || null,
          customer_token: opts.customerToken || null, lang: lang
        }));
        pinger = setInterval(function () { transmit({type: "ping"}); }, 25000);
      };
      ws.onmessage = function (ev) {
        try { onFrame(JSON.parse(ev.data)); } catch (e) { /* a frame we do not understand */ }
      };
      ws.onclose = function () {
        clearInterval(pinger);
        setStatus("offline");
        // Reconnect with backoff (0.5 s doubling up to 30 s, with jitter); resume from lastSeq.
        var delay = Math.min(30000, 500 * Math.pow(2, attempt++)) * (0.5 + Math.random() / 2);
        clearTimeout(timer);
        timer = setTimeout(connect, delay);
      };
    }

    function submit() {
      var text = input.value.trim();
      if (!text) return;
      if (text.length > maxChars) { notice(fmt(t.too_long, {n: maxChars})); return; }
      var id = newId();
      myMessage(id, text, "pending");
      scroll();
      input.value = "";
      queue({type: "text", id: id, text: text});
    }
    form.addEventListener("submit", function (ev) { ev.preventDefault(); submit(); });
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); submit(); }
    });
    demo.addEventListener("click", function () { transmit({type: "demo"}); });
    complain.addEventListener("click", function () { input.value = "/complaint"; submit(); });
    mine.addEventListener("click", function () { input.value = "/status"; submit(); });
    connect();
    return {close: function () { clearTimeout(timer); if (ws) { ws.onclose = null; ws.close(); } }};
  }

  window.FeedbotChat = {mount: mount};

  var page = document.getElementById("feedbot-page");
  if (page) {
    var params = new URLSearchParams(location.search);
    var wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/chat/ws";
    mount(page, {wsUrl: wsUrl, persist: false, start: params.get("start"), lang: params.get("lang") || "vi",
                 customerToken: params.get("customer_token")});
    if (params.get("start")) history.replaceState(null, "", location.pathname); // not resent on reload
  }
})();
