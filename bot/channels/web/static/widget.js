/* feedbot chat widget. Embed on the shop's site (its origin must be in web.allowed_origins):
   <script src="https://bot.example.com/widget.js" data-lang="vi" data-shop="Shop An"
           data-customer-token="(from `feedbot web-token`, for a logged-in customer)" async></script>
   Adds a chat button; the conversation survives reloads (session kept in localStorage). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__feedbotWidget) return;
  window.__feedbotWidget = true;
  var base = new URL(script.src, location.href).origin;
  var data = script.dataset;
  var lang = data.lang === "en" ? "en" : "vi";
  var css = document.createElement("link");
  css.rel = "stylesheet"; css.href = base + "/chat/static/chat.css";
  document.head.appendChild(css);

  var launcher = document.createElement("button");
  launcher.type = "button"; launcher.className = "fb-launcher";
  launcher.textContent = lang === "en" ? "Chat with us" : "Chat với chúng tôi";
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "feedbot-panel");
  var panel = document.createElement("section");
  panel.id = "feedbot-panel"; panel.className = "fb-panel"; panel.hidden = true;
  panel.setAttribute("aria-label", "Chat");
  document.body.appendChild(panel); document.body.appendChild(launcher);

  var mounted = false;
  function open() {
    panel.hidden = false; launcher.setAttribute("aria-expanded", "true");
    if (!mounted) {
      mounted = true;
      var js = document.createElement("script");
      js.src = base + "/chat/static/chat.js";
      js.onload = function () {
        window.FeedbotChat.mount(panel, {
          wsUrl: base.replace(/^http/, "ws") + "/chat/ws", persist: true, widget: true, lang: lang,
          shop: data.shop || "", customerToken: data.customerToken || null
        });
        var box = panel.querySelector("textarea"); if (box) box.focus();
      };
      document.head.appendChild(js);
    } else {
      var input = panel.querySelector("textarea"); if (input) input.focus();
    }
  }
  function close() { panel.hidden = true; launcher.setAttribute("aria-expanded", "false"); launcher.focus(); }
  launcher.addEventListener("click", function () { panel.hidden ? open() : close(); });
  panel.addEventListener("keydown", function (ev) { if (ev.key === "Escape") close(); });
})();
