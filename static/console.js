// Drawbridge console: live updates (server-sent events), the reply box's DLP warning and the
// canned-reply picker. Plain JavaScript, loaded with `defer`; no inline script, no eval (the
// Content-Security-Policy forbids both). Every page works without it.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function parseHtml(text) {
    return new DOMParser().parseFromString(text, "text/html");
  }

  // ------------------------------------------------------------------------------------------
  // Reply box: warn before sending what the outbound DLP would refuse.
  // ------------------------------------------------------------------------------------------
  function setUpReply() {
    var form = document.getElementById("reply-form");
    var box = document.getElementById("reply-body");
    var warning = document.getElementById("dlp-warning");
    if (!form || !box || !warning) {
      return;
    }
    var timer = null;
    var checkedText = null; // the text the last answer was for
    var lastOk = true;
    var pending = null; // the promise of a check in flight

    function show(answer) {
      if (answer.ok) {
        warning.textContent = "";
        warning.hidden = true;
        box.removeAttribute("aria-invalid");
      } else {
        warning.textContent =
          "This reply would be refused: " + (answer.message || "it contains sensitive data") + ".";
        warning.hidden = false;
        box.setAttribute("aria-invalid", "true");
      }
    }

    function check() {
      var text = box.value;
      if (text === checkedText && pending === null) {
        return Promise.resolve(lastOk);
      }
      if (text.trim() === "") {
        checkedText = text;
        lastOk = true;
        show({ ok: true });
        return Promise.resolve(true);
      }
      var request = fetch("/console/dlp-check", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify({ body: text })
      })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("check failed");
          }
          return response.json();
        })
        .then(function (answer) {
          if (box.value === text) {
            checkedText = text;
            lastOk = !!answer.ok;
            show(answer);
          }
          return !!answer.ok;
        })
        .catch(function () {
          // The server checks again when the form is sent; let it decide.
          return true;
        })
        .then(function (ok) {
          if (pending === request) {
            pending = null;
          }
          return ok;
        });
      pending = request;
      return request;
    }

    box.addEventListener("input", function () {
      if (timer) {
        clearTimeout(timer);
      }
      timer = setTimeout(function () {
        timer = null;
        check();
      }, 300);
    });

    var submitting = false;
    form.addEventListener("submit", function (event) {
      if (submitting) {
        return;
      }
      event.preventDefault();
      if (timer) {
        clearTimeout(timer);
        timer = null;
      }
      check().then(function (ok) {
        if (ok) {
          submitting = true;
          form.submit();
        } else {
          warning.hidden = false;
          box.focus();
        }
      });
    });

    // Canned replies fill the reply box.
    var select = document.getElementById("canned-select");
    if (select) {
      var use = document.getElementById("use-canned");
      if (use) {
        use.hidden = true;
      }
      select.addEventListener("change", function () {
        var option = select.options[select.selectedIndex];
        var text = option ? option.getAttribute("data-body") : null;
        if (text) {
          box.value = text;
          box.focus();
          check();
        }
      });
    }
  }

  // ------------------------------------------------------------------------------------------
  // Live updates
  // ------------------------------------------------------------------------------------------
  function refreshInbox(list) {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) {
          throw new Error("inbox refresh failed");
        }
        return response.text();
      })
      .then(function (text) {
        var fresh = parseHtml(text).getElementById("conversations");
        if (fresh) {
          list.replaceChildren.apply(list, Array.prototype.slice.call(fresh.childNodes));
        }
      })
      .catch(function () {});
  }

  function upsertMessage(messages, conversationId, messageId) {
    var url =
      "/console/conversations/" +
      encodeURIComponent(conversationId) +
      "/messages/" +
      encodeURIComponent(messageId);
    fetch(url, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok || response.redirected) {
          throw new Error("message fetch failed");
        }
        return response.text();
      })
      .then(function (text) {
        var doc = parseHtml("<ol>" + text + "</ol>");
        var item = doc.querySelector("li.message");
        if (!item) {
          return;
        }
        var node = document.importNode(item, true);
        var existing = null;
        var items = messages.querySelectorAll("li.message");
        for (var i = 0; i < items.length; i++) {
          if (items[i].getAttribute("data-id") === messageId) {
            existing = items[i];
          }
        }
        if (existing) {
          existing.replaceWith(node);
        } else {
          messages.appendChild(node);
          var empty = document.querySelector("#messages + p.empty");
          if (empty) {
            empty.hidden = true;
          }
        }
      })
      .catch(function () {});
  }

  function refreshConversation(head, change) {
    var status = head.getAttribute("data-status");
    var assigned = head.getAttribute("data-assigned") || "";
    var newAssigned = change.assigned_user_id || "";
    if (change.status === status && newAssigned === assigned) {
      return; // new activity only: the message event carries it
    }
    var reply = document.getElementById("reply-body");
    if (reply && reply.value.trim() !== "") {
      // Do not lose a draft: show the change in place.
      var statusCell = document.getElementById("conversation-status");
      if (statusCell && change.status) {
        statusCell.textContent = change.status === "open" ? "Open" : "Closed";
      }
      var assigneeCell = document.getElementById("conversation-assignee");
      if (assigneeCell && newAssigned !== assigned) {
        assigneeCell.textContent = "Changed — reload to see";
      }
      head.setAttribute("data-status", change.status || status);
      head.setAttribute("data-assigned", newAssigned);
      return;
    }
    window.location.reload();
  }

  function setUpLive() {
    var list = document.getElementById("conversations");
    var messages = document.getElementById("messages");
    if ((!list && !messages) || typeof window.EventSource !== "function") {
      return;
    }
    var conversationId = messages ? messages.getAttribute("data-conversation") : null;
    var head = document.getElementById("conversation-head");
    var source = new EventSource("/console/events");
    var inboxTimer = null;

    function inboxChanged() {
      if (!list || inboxTimer) {
        return;
      }
      inboxTimer = setTimeout(function () {
        inboxTimer = null;
        refreshInbox(list);
      }, 250);
    }

    function read(event) {
      try {
        return JSON.parse(event.data);
      } catch (e) {
        return null;
      }
    }

    source.addEventListener("message", function (event) {
      var change = read(event);
      if (!change) {
        return;
      }
      inboxChanged();
      if (messages && change.conversation_id === conversationId && change.message_id) {
        upsertMessage(messages, conversationId, change.message_id);
      }
    });
    source.addEventListener("conversation", function (event) {
      var change = read(event);
      if (!change) {
        return;
      }
      inboxChanged();
      if (head && change.conversation_id === conversationId) {
        refreshConversation(head, change);
      }
    });
    source.addEventListener("reload", function () {
      window.location.reload();
    });
    window.addEventListener("pagehide", function () {
      source.close();
    });
  }

  function start() {
    setUpReply();
    setUpLive();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

// The rule editor (/compliance/rules): the test panel tests as you type, and a corpus file is
// loaded into the dry-run form. Everything is drawn with textContent.
(function () {
  "use strict";

  function drawResult(box, result) {
    while (box.firstChild) {
      box.removeChild(box.firstChild);
    }
    var line = document.createElement("p");
    line.className = "tested";
    line.setAttribute("data-role", "segments");
    var matched = [];
    result.segments.forEach(function (segment) {
      var piece;
      if (segment.rule) {
        piece = document.createElement("mark");
        piece.title = segment.kind + " · rule " + segment.rule;
        piece.setAttribute("data-rule", segment.rule);
        matched.push(segment.rule + " (" + segment.kind + ")");
      } else {
        piece = document.createElement("span");
      }
      piece.textContent = segment.text;
      line.appendChild(piece);
    });
    box.appendChild(line);
    var facts = document.createElement("dl");
    facts.className = "test-facts";
    [
      ["Redacted", result.redacted, "redacted"],
      ["Matched", matched.length ? matched.join(", ") : "nothing", "matches"],
      ["Escalates", result.escalate ? "yes" : "no", "escalate"]
    ].forEach(function (fact) {
      var dt = document.createElement("dt");
      dt.textContent = fact[0];
      var dd = document.createElement("dd");
      dd.textContent = fact[1];
      dd.setAttribute("data-role", fact[2]);
      facts.appendChild(dt);
      facts.appendChild(dd);
    });
    if (result.block_outbound) {
      var dt = document.createElement("dt");
      dt.textContent = "Outbound";
      var dd = document.createElement("dd");
      dd.textContent = "refused (block_outbound)";
      facts.appendChild(dt);
      facts.appendChild(dd);
    }
    box.appendChild(facts);
  }

  function setUpTestPanel() {
    var form = document.querySelector("form[data-live-test]");
    var box = document.getElementById("test-result");
    if (!form || !box || !window.fetch) {
      return;
    }
    var timer = null;
    var sent = 0;
    function run() {
      var ticket = ++sent;
      var body = new URLSearchParams(new FormData(form));
      fetch(form.getAttribute("data-live-test"), {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        body: body
      })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (result) {
          if (result && ticket === sent) {
            drawResult(box, result);
          }
        })
        .catch(function () {});
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      run();
    });
    form.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(run, 250);
    });
  }

  function setUpCorpusFile() {
    var file = document.getElementById("corpus-file");
    var corpus = document.getElementById("corpus");
    if (!file || !corpus || !window.FileReader) {
      return;
    }
    file.addEventListener("change", function () {
      var chosen = file.files && file.files[0];
      if (!chosen) {
        return;
      }
      var reader = new FileReader();
      reader.onload = function () {
        corpus.value = String(reader.result);
      };
      reader.readAsText(chosen);
    });
  }

  function start() {
    setUpTestPanel();
    setUpCorpusFile();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
