/*
 * Leaddesk web chat widget: one script tag, no build step, no dependencies.
 *
 *   <script src="https://YOUR-LEADDESK/static/leaddesk-widget.js" async
 *           data-title="Chat with us" data-greeting="Hi! How can we help?"></script>
 *
 * The greeting and the optional pre-chat form come from the business's prompts/ (GET /api/chat/config);
 * data-greeting replaces the greeting's words. Optional attributes: data-api (the Leaddesk base URL, default: where this script comes from),
 * data-open="true" (open the panel on load), data-name / data-email / data-phone (a visitor the
 * site already knows), data-color (accent colour), data-identity + data-identity-hash (the site's
 * own id, email or phone for a signed-in visitor and its HMAC-SHA256 with LEADDESK_WEBCHAT_SECRET,
 * computed on the site's server: the visitor is then verified, not merely claimed), data-key (the
 * web widget key of a workspace other than the install's own: `leaddesk workspaces channel SLUG
 * set web` prints it; sent with every call as X-Leaddesk-Widget-Key).
 * The session token is kept in localStorage, so a reload shows the conversation again.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script) {
    var found = document.querySelectorAll("script[src*='leaddesk-widget']");
    script = found[found.length - 1];
  }
  if (!script || window.__leaddeskWidget) { return; }
  window.__leaddeskWidget = true;

  var data = script.dataset || {};
  var api = (data.api || script.src.replace(/\/static\/[^\/?#]*([?#].*)?$/, "")).replace(/\/+$/, "");
  var widgetKey = data.key || "";
  // One session per widget: two businesses' widgets on one Leaddesk keep their chats apart.
  var storageKey = "leaddesk:session:" + api + (widgetKey ? ":" + widgetKey : "");
  var title = data.title || "Chat with us";
  var color = data.color || "#2563eb";
  var MAX_CHARS = 2000;

  var token = null;
  try { token = window.localStorage.getItem(storageKey); } catch (e) { token = null; }
  var lastId = 0;
  var shown = {};
  var polling = false;
  var waitingForReply = false;
  var typingTimer = null;
  var config = { greeting: "", language: "", prechat: { enabled: false, ask: [], required: false } };
  var greetedWith = null; // the language of the greeting shown before the first message

  // ---- the DOM (in a shadow root so the host page's CSS cannot reach in) ----------------------
  var host = document.createElement("div");
  host.id = "leaddesk-widget";
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  root.innerHTML =
    "<style>" +
    ":host{all:initial}" +
    ".ld{position:fixed;right:20px;bottom:20px;z-index:2147483000;display:flex;flex-direction:column;align-items:flex-end;font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#111}" +
    ".ld-launcher{width:56px;height:56px;border-radius:50%;border:0;background:" + color + ";color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center}" +
    ".ld-launcher svg{width:28px;height:28px;fill:currentColor}" +
    ".ld-panel{display:none;flex-direction:column;width:340px;max-width:calc(100vw - 40px);height:460px;max-height:calc(100vh - 100px);background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);overflow:hidden;margin-bottom:12px}" +
    ".ld.open .ld-panel{display:flex}" +
    ".ld-head{background:" + color + ";color:#fff;padding:12px 14px;font-weight:600;display:flex;justify-content:space-between;align-items:center}" +
    ".ld-close{background:none;border:0;color:#fff;font-size:20px;cursor:pointer}" +
    ".ld-log{flex:1;overflow-y:auto;padding:12px;background:#f6f7f9}" +
    ".ld-msg{max-width:80%;margin:6px 0;padding:8px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word}" +
    ".ld-customer{margin-left:auto;background:" + color + ";color:#fff;border-bottom-right-radius:4px}" +
    ".ld-bot,.ld-agent{background:#fff;border:1px solid #e3e5e8;border-bottom-left-radius:4px}" +
    ".ld-who{display:block;font-size:11px;color:#6b7280;margin-bottom:2px}" +
    ".ld-msg[data-time]::after{content:attr(data-time);display:block;font-size:10px;opacity:.7;margin-top:3px;text-align:right}" +
    ".ld-prechat{display:none;flex-direction:column;gap:8px;padding:12px;border-top:1px solid #e3e5e8}" +
    ".ld-prechat.on{display:flex}" +
    ".ld-fields{display:flex;flex-direction:column;gap:8px}" +
    ".ld-prechat input{border:1px solid #d1d5db;border-radius:6px;padding:8px;font:inherit}" +
    ".ld-prechat .ld-row{display:flex;gap:8px;justify-content:flex-end}" +
    ".ld-prechat button{border:0;border-radius:6px;padding:8px 12px;font:inherit;cursor:pointer;background:" + color + ";color:#fff}" +
    ".ld-prechat button.ld-skip{background:none;color:#6b7280}" +
    ".ld-typing{color:#6b7280;font-style:italic;margin:6px 0;display:none}" +
    ".ld-note{color:#b45309;font-size:12px;padding:0 12px;min-height:0}" +
    ".ld-form{display:flex;border-top:1px solid #e3e5e8}" +
    ".ld-input{flex:1;border:0;padding:12px;font:inherit;outline:none;resize:none}" +
    ".ld-send{border:0;background:none;color:" + color + ";font-weight:600;padding:0 14px;cursor:pointer}" +
    ".ld-send:disabled{color:#9ca3af;cursor:default}" +
    "</style>" +
    "<div class='ld'>" +
    "<div class='ld-panel' role='dialog' aria-label='" + escapeAttr(title) + "'>" +
    "<div class='ld-head'><span class='ld-title'></span><button class='ld-close' aria-label='Close chat'>&times;</button></div>" +
    "<div class='ld-log' aria-live='polite'><div class='ld-typing'>typing&hellip;</div></div>" +
    "<div class='ld-note' role='status'></div>" +
    "<form class='ld-prechat' aria-label='Before we start'><div class='ld-fields'></div>" +
    "<div class='ld-row'><button type='button' class='ld-skip'>Skip</button><button type='submit'>Start chat</button></div></form>" +
    "<form class='ld-form'><input class='ld-input' name='text' autocomplete='off' placeholder='Type a message&hellip;' aria-label='Message' maxlength='" + MAX_CHARS + "'>" +
    "<button class='ld-send' type='submit'>Send</button></form>" +
    "</div>" +
    "<button class='ld-launcher' aria-label='Open chat'><svg viewBox='0 0 24 24' aria-hidden='true'>" +
    "<path d='M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z'/></svg></button>" +
    "</div>";

  var box = root.querySelector(".ld");
  var log = root.querySelector(".ld-log");
  var typing = root.querySelector(".ld-typing");
  var note = root.querySelector(".ld-note");
  var form = root.querySelector(".ld-form");
  var input = root.querySelector(".ld-input");
  var send = root.querySelector(".ld-send");
  var prechat = root.querySelector(".ld-prechat");
  root.querySelector(".ld-title").textContent = title;

  function escapeAttr(text) {
    return String(text).replace(/[&<>'"]/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; });
  }

  function setNote(text) { note.textContent = text || ""; }

  function setTyping(on) {
    waitingForReply = on;
    typing.style.display = on ? "block" : "none";
    if (typingTimer) { clearTimeout(typingTimer); typingTimer = null; }
    if (on) { typingTimer = setTimeout(function () { setTyping(false); }, 45000); }
    log.appendChild(typing);
    log.scrollTop = log.scrollHeight;
  }

  function render(message) {
    if (shown[message.id]) { return; }
    shown[message.id] = true;
    if (message.id > lastId) { lastId = message.id; }
    var bubble = document.createElement("div");
    bubble.className = "ld-msg ld-" + message.author;
    bubble.setAttribute("data-id", message.id);
    bubble.setAttribute("data-author", message.author);
    if (message.kind === "greeting") {
      // The greeting the widget showed before the first message (kept by the server): shown once,
      // at the top, as it was before a reload.
      if (!root.querySelector(".ld-greeting")) { showGreeting(message.text); }
      return;
    }
    if (message.author === "agent") {
      var who = document.createElement("span");
      who.className = "ld-who";
      who.textContent = message.agent_name || "Agent";
      bubble.appendChild(who);
    }
    bubble.appendChild(document.createTextNode(message.text));
    var at = message.at ? new Date(message.at) : new Date();
    if (!isNaN(at.getTime())) {
      // Drawn by the stylesheet (::after), so the bubble's text stays the message alone.
      bubble.setAttribute("data-time", at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
      bubble.title = at.toLocaleString();
    }
    log.insertBefore(bubble, typing);
    if (message.author !== "customer") { setTyping(false); }
    log.scrollTop = log.scrollHeight;
  }

  function greet() {
    // One greeting: the bot's own (from prompts/), which the conversation then keeps, so the bot
    // does not greet again when it answers.
    var words = data.greeting || config.greeting;
    if (words && !root.querySelector(".ld-greeting") && !lastId) {
      showGreeting(words);
      greetedWith = config.language || "";
    }
  }

  function showGreeting(words) {
    var bubble = document.createElement("div");
    bubble.className = "ld-msg ld-bot ld-greeting";
    bubble.textContent = words;
    log.insertBefore(bubble, log.firstChild);
  }

  function showPrechat() {
    if (token || !config.prechat.enabled) { return; }
    var fields = prechat.querySelector(".ld-fields");
    var labels = { name: "Your name", email: "Email", phone: "Phone" };
    var types = { name: "text", email: "email", phone: "tel" };
    fields.innerHTML = "";
    config.prechat.ask.forEach(function (key) {
      var field = document.createElement("input");
      field.name = key;
      field.type = types[key] || "text";
      field.placeholder = labels[key] || key;
      field.setAttribute("aria-label", labels[key] || key);
      if (data[key]) { field.value = data[key]; }
      if (config.prechat.required) { field.required = true; }
      fields.appendChild(field);
    });
    prechat.querySelector(".ld-skip").style.display = config.prechat.required ? "none" : "";
    prechat.classList.add("on");
    form.style.display = "none";
  }

  function hidePrechat() {
    prechat.classList.remove("on");
    form.style.display = "";
    input.focus();
  }

  // ---- the API ---------------------------------------------------------------------------------
  function request(method, path, body) {
    var headers = { "Content-Type": "application/json" };
    if (token) { headers.Authorization = "Bearer " + token; }
    if (widgetKey) { headers["X-Leaddesk-Widget-Key"] = widgetKey; }
    return fetch(api + path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      mode: "cors"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        return { status: response.status, ok: response.ok, json: json };
      });
    });
  }

  function forgetSession() {
    token = null;
    try { window.localStorage.removeItem(storageKey); } catch (e) { /* private mode */ }
  }

  function startSession(given) {
    var known = {};
    ["name", "email", "phone"].forEach(function (key) {
      var value = (given && given[key]) || data[key];
      if (value) { known[key] = value; }
    });
    if (data.identity) {
      known.identity = data.identity;
      if (data.identityHash) { known.identity_hash = data.identityHash; }
    }
    return request("POST", "/api/chat/sessions", known).then(function (res) {
      if (!res.ok || !res.json.session) { throw new Error(errorText(res)); }
      token = res.json.session;
      try { window.localStorage.setItem(storageKey, token); } catch (e) { /* private mode */ }
      poll();
    });
  }

  function errorText(res) {
    return (res.json && res.json.error && res.json.error.message) || ("error " + res.status);
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function poll() {
    if (polling || !token) { return; }
    polling = true;
    var failures = 0;
    (function loop() {
      if (!token) { polling = false; return; }
      var started = Date.now();
      request("GET", "/api/chat/messages?after=" + lastId + "&wait=25").then(function (res) {
        if (res.status === 401) { forgetSession(); polling = false; return null; }
        if (!res.ok) { throw new Error(errorText(res)); }
        failures = 0;
        (res.json.messages || []).forEach(render);
        // An empty answer that came back at once means the server is busy: do not hammer it.
        var quick = !(res.json.messages || []).length && Date.now() - started < 1000;
        return sleep(quick ? 3000 : 0);
      }).catch(function () {
        failures += 1;
        return sleep(Math.min(30000, 1000 * Math.pow(2, failures)));
      }).then(function (stop) {
        if (stop === null) { return; }
        loop();
      });
    })();
  }

  function submit(text) {
    var clientId = Math.random().toString(36).slice(2) + Date.now().toString(36);
    send.disabled = true;
    setNote("");
    var ready = token ? Promise.resolve() : startSession();
    return ready.then(function () {
      var body = { text: text, client_id: clientId };
      if (greetedWith !== null) { body.greeted = greetedWith; }
      return request("POST", "/api/chat/messages", body);
    }).then(function (res) {
      if (res.status === 401) {
        forgetSession();
        return startSession().then(function () { return submit(text); });
      }
      if (res.status === 429) { setNote("You are sending messages too fast. Please wait a moment."); return; }
      if (!res.ok) { setNote(errorText(res)); return; }
      input.value = "";
      greetedWith = null; // the conversation has the greeting now
      render({ id: res.json.id, author: "customer", text: text });
      setTyping(true);
      poll();
    }).catch(function () {
      setNote("Could not send your message. Check your connection and try again.");
    }).then(function () { send.disabled = false; input.focus(); });
  }

  // The agents see "typing…" while the visitor types (at most one note every 3 seconds).
  var typingSent = 0;
  input.addEventListener("input", function () {
    if (!token || Date.now() - typingSent < 3000 || !input.value.trim()) { return; }
    typingSent = Date.now();
    request("POST", "/api/chat/typing").catch(function () { /* only a courtesy */ });
  });

  // ---- events ----------------------------------------------------------------------------------
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || send.disabled) { return; }
    if (text.length > MAX_CHARS) { setNote("Please keep messages under " + MAX_CHARS + " characters."); return; }
    submit(text);
  });
  root.querySelector(".ld-launcher").addEventListener("click", function () {
    box.classList.toggle("open");
    if (box.classList.contains("open")) { input.focus(); }
  });
  root.querySelector(".ld-close").addEventListener("click", function () { box.classList.remove("open"); });
  prechat.addEventListener("submit", function (event) {
    event.preventDefault();
    var given = {};
    prechat.querySelectorAll("input").forEach(function (field) {
      if (field.value.trim()) { given[field.name] = field.value.trim(); }
    });
    setNote("");
    startSession(given).then(hidePrechat).catch(function (err) { setNote(err.message); });
  });
  prechat.querySelector(".ld-skip").addEventListener("click", hidePrechat);

  function mount() {
    document.body.appendChild(host);
    if (data.open === "true") { box.classList.add("open"); }
    var lang = (navigator.language || "").slice(0, 2);
    request("GET", "/api/chat/config?lang=" + encodeURIComponent(lang)).then(function (res) {
      if (res.ok && res.json) { config = res.json; }
    }).catch(function () { /* the widget works without it: no greeting, no form */ }).then(function () {
      if (!token) { greet(); showPrechat(); }
      if (token) { poll(); }
    });
  }
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();
