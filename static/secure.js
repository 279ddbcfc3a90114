// Drawbridge secure chat: live updates and sending without a reload. The page works without
// this script (plain form posts). Every message is added with textContent, never as HTML.
(function () {
  "use strict";
  var thread = document.getElementById("thread");
  var form = document.getElementById("send");
  if (!thread) { return; }

  function hasMessage(id) {
    var items = thread.querySelectorAll("li.message");
    for (var i = 0; i < items.length; i++) {
      if (items[i].getAttribute("data-id") === id) { return true; }
    }
    return false;
  }

  function shortTime(stored) {
    var d = new Date(stored);
    if (isNaN(d.getTime())) { return stored; }
    // As the server writes it: "Nov 27, 21:30 UTC".
    var months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    var pad = function (n) { return n < 10 ? "0" + n : String(n); };
    return months[d.getUTCMonth()] + " " + d.getUTCDate() + ", " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC";
  }

  function add(m) {
    if (!m || !m.id || hasMessage(m.id)) { return; }
    var li = document.createElement("li");
    li.className = "message new " + (m.direction === "inbound" ? "inbound" : "outbound");
    li.setAttribute("data-id", m.id);
    var meta = document.createElement("p");
    meta.className = "meta";
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = m.direction === "inbound" ? "You" : "Us";
    var via = document.createElement("span");
    via.className = "via";
    via.textContent = m.channel === "secure" ? "secure" : "text";
    var time = document.createElement("time");
    time.setAttribute("datetime", m.created_at);
    time.textContent = shortTime(m.created_at);
    meta.appendChild(who);
    meta.appendChild(document.createTextNode(" · "));
    meta.appendChild(via);
    meta.appendChild(document.createTextNode(" · "));
    meta.appendChild(time);
    var body = document.createElement("p");
    body.className = "body";
    body.textContent = m.body;
    li.appendChild(meta);
    li.appendChild(body);
    thread.appendChild(li);
    li.scrollIntoView({ block: "nearest" });
  }

  var source = new EventSource(thread.getAttribute("data-events"));
  source.addEventListener("message", function (event) {
    try { add(JSON.parse(event.data)); } catch (e) { /* a malformed event is ignored */ }
  });
  source.addEventListener("reload", function () { window.location.reload(); });
  source.addEventListener("ended", function () {
    source.close();
    window.location.reload();
  });

  if (form) {
    form.addEventListener("submit", function (event) {
      var text = form.querySelector("textarea");
      if (!text || !text.value.trim()) { return; }
      event.preventDefault();
      var button = form.querySelector("button");
      if (button) { button.disabled = true; }
      var data = new URLSearchParams(new FormData(form));
      fetch(form.action, {
        method: "POST",
        headers: { "Accept": "application/json" },
        body: data,
        credentials: "same-origin"
      }).then(function (response) {
        if (response.status === 201) {
          text.value = "";
        } else {
          // A session that ended or a refusal: the page explains.
          window.location.reload();
        }
      }).catch(function () {
        form.submit();
      }).then(function () {
        if (button) { button.disabled = false; }
        text.focus();
      });
    });
  }
})();
