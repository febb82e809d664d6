// Leaddesk console: small progressive enhancements; every page works without this file.
document.addEventListener("DOMContentLoaded", function () {
  var all = document.getElementById("select-all");
  var counter = document.getElementById("selected-count");
  var boxes = function () { return document.querySelectorAll("input[name=ids]"); };
  var count = function () {
    if (counter) counter.textContent = document.querySelectorAll("input[name=ids]:checked").length;
  };
  if (all) {
    all.addEventListener("change", function () {
      boxes().forEach(function (box) { box.checked = all.checked; });
      count();
    });
  }
  boxes().forEach(function (box) { box.addEventListener("change", count); });
  // A conversation opens at its newest message (and shows the reply just sent).
  var timeline = document.getElementById("timeline");
  if (timeline) timeline.scrollTop = timeline.scrollHeight;
  // The lead page's reply box: the channel and 24-hour window of the conversation chosen.
  var room = document.getElementById("reply-conversation");
  if (room) {
    room.addEventListener("change", function () {
      document.querySelectorAll(".reply-window").forEach(function (note) {
        note.hidden = note.getAttribute("data-conversation") !== room.value;
      });
    });
  }
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
});

// Live updates: the store's events over Server-Sent Events (or polling when a stream is refused),
// refreshing the inbox list, the open conversation and the unread counts without a reload.
(function () {
  var body = document.body;
  var eventsUrl = body.getAttribute("data-events-url");
  if (!eventsUrl) return;
  var pollUrl = body.getAttribute("data-poll-url");
  var inbox = document.getElementById("inbox");
  var state = document.getElementById("live-state");
  var baseTitle = document.title;
  var lastId = "";
  var timer = null;
  // The sound is a preference of the console in this browser (off until the agent turns it on).
  var sound = document.getElementById("console-sound");
  if (sound) {
    sound.checked = !!window.localStorage && localStorage.getItem("leaddesk-sound") === "1";
    sound.addEventListener("change", function () {
      if (window.localStorage) localStorage.setItem("leaddesk-sound", sound.checked ? "1" : "0");
    });
  }

  function say(text) { if (state) state.textContent = text; }

  function setCount(id, value) {
    var node = document.getElementById(id);
    if (!node) return;
    node.textContent = value > 99 ? "99+" : String(value);
    node.hidden = !value;
  }

  function setTitle(unread) {
    document.title = (unread ? "(" + unread + ") " : "") + baseTitle;
  }

  function beep() {
    if (!sound || !sound.checked) return;
    try {
      var context = new (window.AudioContext || window.webkitAudioContext)();
      var tone = context.createOscillator();
      tone.frequency.value = 880;
      tone.connect(context.destination);
      tone.start();
      tone.stop(context.currentTime + 0.12);
    } catch (err) { /* no audio: nothing to do */ }
  }

  function selected() { return inbox ? inbox.getAttribute("data-selected") : ""; }

  function paneUrl(conversationId) {
    return inbox.getAttribute("data-pane-url").replace(/\/0$/, "/" + conversationId) +
      "?tab=" + encodeURIComponent(inbox.getAttribute("data-tab"));
  }

  function scrollTimeline() {
    var timeline = document.getElementById("timeline");
    if (timeline) timeline.scrollTop = timeline.scrollHeight;
  }

  function refreshList() {
    var url = inbox ? inbox.getAttribute("data-list-url") + "?tab=" +
      encodeURIComponent(inbox.getAttribute("data-tab")) + "&c=" + encodeURIComponent(selected() || "")
      : "/console/inbox/list?tab=mine";
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        if (inbox) {
          document.getElementById("inbox-rows").innerHTML = data.html;
          bindRows();
        }
        setCount("inbox-unread", data.unread_conversations);
        setTitle(data.unread_conversations);
      });
  }

  function refreshPane(keepDraft) {
    var id = selected();
    if (!inbox || !id) return;
    fetch(paneUrl(id), { credentials: "same-origin" }).then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var pane = document.getElementById("inbox-pane");
        if (keepDraft && pane.querySelector("#timeline")) {
          // Everything but the reply being written: messages, badges, owner and bot state, window.
          var fresh = document.createElement("div");
          fresh.innerHTML = html;
          ["#timeline", ".card-head", "aside.profile", "#reply-window"].forEach(function (part) {
            var now = pane.querySelector(part);
            var next = fresh.querySelector(part);
            if (now && next) now.replaceWith(next);
          });
        } else {
          pane.innerHTML = html;
        }
        scrollTimeline();
        refreshList();
      });
  }

  function open(conversationId, href) {
    inbox.setAttribute("data-selected", conversationId);
    if (href) history.pushState({ c: conversationId }, "", href);
    document.querySelectorAll(".conversation").forEach(function (row) {
      row.classList.toggle("on", row.getAttribute("data-conversation") === String(conversationId));
    });
    refreshPane(false);
  }

  function bindRows() {
    document.querySelectorAll(".conversation a.open").forEach(function (link) {
      link.addEventListener("click", function (event) {
        if (event.metaKey || event.ctrlKey || event.shiftKey) return;
        event.preventDefault();
        open(link.parentNode.getAttribute("data-conversation"), link.getAttribute("href"));
      });
    });
  }

  function handle(item) {
    if (item.id) lastId = item.id;
    if (item.kind === "notification") {
      var node = document.getElementById("unread-count");
      var now = node && node.textContent ? parseInt(node.textContent, 10) || 0 : 0;
      setCount("unread-count", now + 1);
      beep();
    }
    var mine = inbox && selected() &&
      (String(item.conversation_id) === selected() ||
        String(item.lead_id) === (document.querySelector(".pane") || { getAttribute: function () { return ""; } }).getAttribute("data-lead"));
    if (item.kind === "typing") {
      if (mine) showTyping();
      return;
    }
    if (item.kind === "message" && item.data && item.data.author === "customer" && !mine) beep();
    if (mine) {
      var note = document.getElementById("customer-typing");
      if (note && item.kind === "message") note.hidden = true;
      refreshPane(true);
    } else if (!inbox && item.kind === "message" && leadPage() === String(item.lead_id)) {
      refreshLeadTimeline();
    }
    clearTimeout(timer);
    timer = setTimeout(refreshList, 200);
  }

  function leadPage() {
    var timeline = document.getElementById("timeline");
    return timeline ? timeline.getAttribute("data-lead") || "" : "";
  }

  // The lead page shows a new message of its lead without a reload (the rest of the page stays).
  function refreshLeadTimeline() {
    fetch(location.href, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("timeline");
        var timeline = document.getElementById("timeline");
        if (fresh && timeline) {
          timeline.replaceWith(fresh);
          scrollTimeline();
        }
      });
  }

  var typingTimer = null;
  function showTyping() {
    var pane = document.querySelector(".pane");
    if (!pane) return;
    var note = document.getElementById("customer-typing");
    if (!note) {
      note = document.createElement("p");
      note.id = "customer-typing";
      note.className = "muted small typing";
      note.textContent = "The customer is typing…";
      var timeline = document.getElementById("timeline");
      timeline.parentNode.insertBefore(note, timeline.nextSibling);
    }
    note.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { note.hidden = true; }, 6000);
  }

  function poll() {
    say("Live updates: polling");
    var since = Date.now();
    var go = function () {
      var started = Date.now();
      fetch(pollUrl + "?wait=5&after=" + encodeURIComponent(lastId), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { events: [], last_id: lastId }; })
        .then(function (data) {
          var first = !lastId;
          (data.events || []).forEach(handle);
          lastId = data.last_id || lastId;
          // Polling is the fallback: every few seconds try the stream again (a slot may be free
          // by now: back to live; refused, polling goes on).
          if (!first && Date.now() - since >= 4000) { stream(); return; }
          // Nothing, at once: the server has no thread to wait with; ask again a little later.
          var busy = !(data.events || []).length && Date.now() - started < 1000;
          setTimeout(go, first ? 0 : (busy ? 3000 : 300));
        })
        .catch(function () { setTimeout(go, 5000); });
    };
    go();
  }

  var source = null;
  // Leaving the page frees the server's thread at once rather than at the next keep-alive.
  window.addEventListener("pagehide", function () { if (source) source.close(); });

  function stream() {
    if (!window.EventSource) { poll(); return; }
    // From where this page got to (after polling), or, on a fresh page, from now.
    var es = new EventSource(eventsUrl + (lastId ? "?after=" + encodeURIComponent(lastId) : ""));
    source = es;
    var opened = false;
    es.onopen = function () { opened = true; say("Live updates: on"); };
    ["message", "lead", "notification", "typing", "reset"].forEach(function (kind) {
      es.addEventListener(kind, function (event) {
        var item = JSON.parse(event.data);
        item.id = event.lastEventId || item.id;
        handle(item);
      });
    });
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED && !opened) {
        // Refused (every stream slot taken, or live updates off): poll instead.
        es.close();
        poll();
      } else {
        say("Live updates: reconnecting…");
      }
    };
  }

  // Unread conversations in the title on every console page, kept current by refreshList.
  setTitle(parseInt(body.getAttribute("data-unread"), 10) || 0);
  if (inbox) {
    bindRows();
    window.addEventListener("popstate", function () {
      var c = new URLSearchParams(location.search).get("c");
      if (c) open(c, null);
    });
  }
  stream();
})();

// Relative times ("5 min ago") stay true on a page left open all day.
(function () {
  function ago(iso) {
    var seconds = (Date.now() - Date.parse(iso)) / 1000;
    if (isNaN(seconds)) return null;
    var units = [["d", 86400], ["h", 3600], ["min", 60]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1]) return Math.floor(seconds / units[i][1]) + " " + units[i][0] + " ago";
    }
    return "just now";
  }
  var relative = /(^|\u00b7 )(just now|\d+ (min|h|d) ago)$/;
  setInterval(function () {
    document.querySelectorAll("time[datetime]").forEach(function (node) {
      var text = node.textContent;
      var found = relative.exec(text);
      var now = found && ago(node.getAttribute("datetime"));
      if (now) node.textContent = text.slice(0, found.index) + found[1] + now;
    });
  }, 30000);
})();

// Canned replies: type "/" in a reply box to pick one (prompts/replies/*.md), filled in for the lead.
(function () {
  var cache = {};
  var menu = null;
  var active = 0;

  function leadOf(form) {
    var match = /\/leads\/(\d+)\/reply/.exec(form.getAttribute("action") || "");
    return match ? match[1] : "";
  }

  function close() { if (menu) { menu.remove(); menu = null; } }

  function choose(box, reply) {
    box.value = reply.text;
    close();
    box.focus();
  }

  function show(box, replies) {
    close();
    var typed = box.value.slice(1).toLowerCase();
    var found = replies.filter(function (r) {
      return r.shortcut.indexOf(typed) === 0 || r.title.toLowerCase().indexOf(typed) !== -1;
    });
    if (!found.length) return;
    menu = document.createElement("ul");
    menu.className = "canned";
    menu.setAttribute("role", "listbox");
    active = 0;
    found.forEach(function (reply, index) {
      var item = document.createElement("li");
      item.setAttribute("role", "option");
      item.className = index === 0 ? "on" : "";
      item.innerHTML = "<strong></strong> <span class='muted small'></span>";
      item.querySelector("strong").textContent = "/" + reply.shortcut;
      item.querySelector("span").textContent = reply.title;
      item.addEventListener("mousedown", function (event) { event.preventDefault(); choose(box, reply); });
      menu.appendChild(item);
    });
    menu.replies = found;
    box.parentNode.insertBefore(menu, box.nextSibling);
  }

  document.addEventListener("input", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("form.reply textarea")) return;
    if (box.value.charAt(0) !== "/" || box.value.indexOf("\n") !== -1 || box.value.indexOf(" ") !== -1) { close(); return; }
    var lead = leadOf(box.form);
    if (cache[lead]) { show(box, cache[lead]); return; }
    fetch("/console/replies?lead_id=" + encodeURIComponent(lead), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { replies: [] }; })
      .then(function (data) { cache[lead] = data.replies || []; show(box, cache[lead]); });
  });

  document.addEventListener("keydown", function (event) {
    if (!menu || !event.target.matches || !event.target.matches("form.reply textarea")) return;
    var items = menu.querySelectorAll("li");
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      items[active].className = "";
      active = (active + (event.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
      items[active].className = "on";
    } else if (event.key === "Enter" || event.key === "Tab") {
      event.preventDefault();
      choose(event.target, menu.replies[active]);
    } else if (event.key === "Escape") {
      close();
    }
  });
})();
