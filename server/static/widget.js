/*
 * Lepton Assistant chat widget. Plain JavaScript, no build step, no dependencies.
 *
 *   <script src="https://HOST/widget.js" data-key="pk_..." async></script>
 *
 * Options (data attributes on the script tag):
 *   data-key         public widget key (required)
 *   data-title       panel title                     default "Chat with us"
 *   data-greeting    first message shown to visitors default "Hi! How can I help you today?"
 *   data-accent      any CSS colour                  default #2454d6
 *   data-position    bottom-right | bottom-left      default bottom-right
 *   data-skill       model to ask (a skill name)     default "assistant" (automatic routing)
 *   data-open        "true" opens the panel on load
 *   data-max-tokens  longest answer, in tokens       default: the server's
 *   data-user-id     the signed-in customer's id (with data-user-hash; see
 *   data-user-hash   `lepton keys identity-secret`): skills such as recommendations
 *                    then use that customer's history
 *
 * Everything lives in a Shadow DOM so the page's CSS and the widget's CSS cannot
 * affect each other. Model and document text is only ever inserted with
 * textContent / text nodes, never as HTML.
 */
(function () {
  "use strict";

  var script = document.currentScript || findOwnScript();
  if (!script || !script.src || script.getAttribute("data-lepton-started")) return;
  script.setAttribute("data-lepton-started", "true");

  function findOwnScript() {
    var candidates = document.querySelectorAll("script[data-key][src]");
    for (var i = candidates.length - 1; i >= 0; i--) {
      if (/widget\.js(\?|#|$)/.test(candidates[i].src) && !candidates[i].getAttribute("data-lepton-started")) {
        return candidates[i];
      }
    }
    return null;
  }

  function attr(name, fallback) {
    var value = script.getAttribute(name);
    return value === null || value.trim() === "" ? fallback : value.trim();
  }

  var maxTokens = parseInt(attr("data-max-tokens", ""), 10);
  var config = {
    key: attr("data-key", ""),
    title: attr("data-title", "Chat with us"),
    greeting: attr("data-greeting", "Hi! How can I help you today?"),
    accent: attr("data-accent", ""),
    position: attr("data-position", "bottom-right") === "bottom-left" ? "bottom-left" : "bottom-right",
    skill: attr("data-skill", "assistant"),
    open: attr("data-open", "false") === "true",
    maxTokens: maxTokens > 0 ? maxTokens : null,
    userId: attr("data-user-id", ""),
    userHash: attr("data-user-hash", "").toLowerCase()
  };

  var HANDOFF_MESSAGE = "I'd like to talk to a person";
  var WAITING_MESSAGE = "A person from our team will reply here. You can keep writing; they will see it.";
  var RELEASED_MESSAGE = "You are back with the assistant.";
  // While a person has the conversation, look for their replies this often.
  var POLL_MS = 3000;
  var OFFLINE_MESSAGE = "You seem to be offline, or the chat server cannot be reached. " +
    "Check your connection and try again.";

  /* The API lives next to this script, wherever the server is mounted. */
  function api(path) {
    return new URL(path, script.src).toString();
  }

  // One stored conversation per key and signed-in customer: another customer on the
  // same browser does not resume it.
  var storageKey = "lepton-widget:" + config.key + ":" + (config.userHash ? config.userId + ":" : "") + "conversation";

  // Stored as {id, token}: the token proves to the server that this browser started
  // the conversation (nobody else can read or continue it with the id alone).
  function storedConversation() {
    try {
      var saved = JSON.parse(window.localStorage.getItem(storageKey) || "null");
      return saved && typeof saved.id === "string" && typeof saved.token === "string" ? saved : null;
    } catch (e) { return null; }
  }

  function storeConversation(id, token) {
    try {
      if (id && token) window.localStorage.setItem(storageKey, JSON.stringify({ id: id, token: token }));
      else window.localStorage.removeItem(storageKey);
    } catch (e) { /* storage disabled: the conversation lasts as long as the page */ }
  }

  var saved = storedConversation();
  var state = {
    conversationId: saved && saved.id,
    conversationToken: saved && saved.token,
    history: [],       // the server's stored messages, so feedback can name a message by index
    busy: false,
    ready: null,       // promise: key checked and history loaded
    handoff: "none",   // "pending" while a person has the conversation
    poll: null,        // timer that fetches the person's replies
    refused: false     // this key cannot be used on this page
  };

  /* -- DOM helpers ----------------------------------------------------------- */

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        var value = attrs[name];
        if (value === null || value === undefined || value === false) return;
        if (name === "text") node.textContent = value;
        else if (name === "class") node.className = value;
        else if (name.indexOf("on") === 0) node.addEventListener(name.slice(2), value);
        else node.setAttribute(name, value === true ? "" : value);
      });
    }
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  var SVG_NS = "http://www.w3.org/2000/svg";
  var ICONS = {
    chat: ["M4 4.5h16a1.5 1.5 0 0 1 1.5 1.5v10a1.5 1.5 0 0 1-1.5 1.5h-9.5l-5 4v-4H4A1.5 1.5 0 0 1 2.5 16V6A1.5 1.5 0 0 1 4 4.5z"],
    close: ["M6 6l12 12", "M18 6L6 18"],
    send: ["M3.5 11.5l17-7.5-6.5 16.5-2.8-6.2z", "M11.2 14.3l9.3-10.3"],
    thumb: ["M7.5 10.5h-3.5v9.5h3.5z",
      "M7.5 10.5l3.8-6.5c1.4 0 2.4 1.2 2 2.7l-.8 3.3h5.7c1.4 0 2.3 1.3 1.9 2.6l-1.8 5.8c-.3.9-1.1 1.6-2 1.6h-8.8"],
    person: ["M12 11.5a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7z", "M5 20c.6-3.6 3.4-5.5 7-5.5s6.4 1.9 7 5.5"]
  };

  function icon(name, flipped) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var group = document.createElementNS(SVG_NS, "g");
    group.setAttribute("fill", "none");
    group.setAttribute("stroke", "currentColor");
    group.setAttribute("stroke-width", "1.8");
    group.setAttribute("stroke-linecap", "round");
    group.setAttribute("stroke-linejoin", "round");
    if (flipped) group.setAttribute("transform", "rotate(180 12 12)");
    ICONS[name].forEach(function (d) {
      var path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("d", d);
      group.appendChild(path);
    });
    svg.appendChild(group);
    return svg;
  }

  /* -- safe Markdown ----------------------------------------------------------
   * A small subset (paragraphs, line breaks, lists, headings, code blocks, bold,
   * italics, inline code, links) built as DOM nodes from text. Links must be
   * absolute http(s) URLs; anything else stays plain text. */

  function safeHref(url) {
    try {
      var parsed = new URL(url);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function link(text, href) {
    return el("a", { href: href, target: "_blank", rel: "noopener noreferrer", text: text });
  }

  function appendInline(parent, text) {
    var pattern = new RegExp([
      "`([^`\\n]+)`",                                 // 1 inline code
      "\\*\\*(?=\\S)([^\\n]*?\\S)\\*\\*",             // 2 bold
      "__(?=\\S)([^\\n]*?\\S)__",                     // 3 bold
      "\\*(?=[^\\s*])([^*\\n]*?[^\\s*])\\*",          // 4 italics
      "_(?=[^\\s_])([^_\\n]*?[^\\s_])_",              // 5 italics (not inside words)
      "\\[([^\\]\\n]+)\\]\\(\\s*([^\\s()]+)\\s*\\)",  // 6, 7 link
      "(https?://[^\\s<>\"'()\\[\\]]*[^\\s<>\"'()\\[\\].,;:!?])" // 8 bare URL
    ].join("|"), "g");
    var last = 0;
    var match;
    while ((match = pattern.exec(text)) !== null) {
      if (match[5] !== undefined &&
          (/\w/.test(text.charAt(match.index - 1)) || /\w/.test(text.charAt(pattern.lastIndex)))) {
        pattern.lastIndex = match.index + 1; // snake_case_words are not emphasis
        continue;
      }
      if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      if (match[1] !== undefined) {
        parent.appendChild(el("code", { text: match[1] }));
      } else if (match[2] !== undefined || match[3] !== undefined) {
        var strong = el("strong");
        appendInline(strong, match[2] !== undefined ? match[2] : match[3]);
        parent.appendChild(strong);
      } else if (match[4] !== undefined || match[5] !== undefined) {
        var em = el("em");
        appendInline(em, match[4] !== undefined ? match[4] : match[5]);
        parent.appendChild(em);
      } else if (match[6] !== undefined) {
        var href = safeHref(match[7]);
        parent.appendChild(href ? link(match[6], href) : document.createTextNode(match[6]));
      } else {
        var bare = safeHref(match[8]);
        parent.appendChild(bare ? link(match[8], bare) : document.createTextNode(match[8]));
      }
      last = pattern.lastIndex;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  var LIST_ITEM = /^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/;

  function renderMarkdown(container, text) {
    container.textContent = "";
    var lines = text.replace(/\r\n?/g, "\n").split("\n");
    var paragraph = [];
    function flush() {
      if (!paragraph.length) return;
      var p = el("p");
      paragraph.forEach(function (line, i) {
        if (i) p.appendChild(el("br"));
        appendInline(p, line);
      });
      container.appendChild(p);
      paragraph = [];
    }
    var i = 0;
    while (i < lines.length) {
      var line = lines[i];
      var fence = /^\s*(```|~~~)/.exec(line);
      if (fence) {
        flush();
        var code = [];
        i++;
        while (i < lines.length && lines[i].trim().indexOf(fence[1]) !== 0) code.push(lines[i++]);
        i++;
        container.appendChild(el("pre", null, [el("code", { text: code.join("\n") })]));
        continue;
      }
      var item = LIST_ITEM.exec(line);
      if (item) {
        flush();
        var ordered = /\d/.test(item[1]);
        var list = el(ordered ? "ol" : "ul");
        if (ordered && parseInt(item[1], 10) !== 1) list.setAttribute("start", String(parseInt(item[1], 10)));
        while (i < lines.length) {
          var next = LIST_ITEM.exec(lines[i]);
          if (!next || /\d/.test(next[1]) !== ordered) break;
          var li = el("li");
          appendInline(li, next[2]);
          list.appendChild(li);
          i++;
        }
        container.appendChild(list);
        continue;
      }
      var heading = /^\s*#{1,6}\s+(.*)$/.exec(line);
      if (heading) {
        flush();
        var strong = el("strong");
        appendInline(strong, heading[1]);
        container.appendChild(el("p", null, [strong]));
      } else if (!line.trim()) {
        flush();
      } else {
        paragraph.push(line);
      }
      i++;
    }
    flush();
  }

  /* -- the widget's DOM ------------------------------------------------------- */

  var host = document.createElement("lepton-chat-widget");
  var shadow = host.attachShadow({ mode: "open" });
  shadow.appendChild(el("style", { text: STYLES() }));

  var launcher = el("button", {
    type: "button", class: "launcher", "aria-expanded": "false", "aria-controls": "lepton-panel",
    "aria-label": "Open chat: " + config.title, onclick: function () { toggle(); }
  }, [icon("chat")]);

  var log = el("div", { class: "log", role: "region", "aria-label": "Conversation", tabindex: "0" });
  var notice = el("p", { class: "notice", role: "alert" });
  var status = el("p", { class: "status", role: "status", hidden: true });
  var announcer = el("div", { class: "sr-only", "aria-live": "polite", "aria-atomic": "false" });
  var input = el("textarea", {
    id: "lepton-input", rows: "1", placeholder: "Type your message…", "aria-label": "Your message",
    onkeydown: function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submit();
      }
    },
    oninput: autosize
  });
  var sendButton = el("button", { type: "submit", class: "send", "aria-label": "Send message" }, [icon("send")]);
  var humanButton = el("button", {
    type: "button", class: "text-button human", onclick: function () { requestHuman(); }
  }, [icon("person"), document.createTextNode("Talk to a person")]);
  var closeButton = el("button", {
    type: "button", class: "icon-button", "aria-label": "Close chat", onclick: function () { close(); }
  }, [icon("close")]);

  var panel = el("section", {
    id: "lepton-panel", class: "panel", role: "dialog", "aria-label": config.title, hidden: true,
    onkeydown: function (event) {
      if (event.key === "Escape") {
        event.stopPropagation();
        close();
      }
    }
  }, [
    el("header", { class: "header" }, [el("h2", { class: "title", text: config.title }), closeButton]),
    log,
    status,
    notice,
    announcer,
    el("div", { class: "actions" }, [humanButton]),
    el("form", {
      class: "composer",
      onsubmit: function (event) { event.preventDefault(); submit(); }
    }, [input, sendButton])
  ]);

  var greeting = null;
  var root = el("div", { class: "root " + (config.position === "bottom-left" ? "pos-left" : "pos-right") },
    [panel, launcher]);
  shadow.appendChild(root);

  function mount() {
    (document.body || document.documentElement).appendChild(host);
    applyAccent();
    greeting = addMessage("assistant", config.greeting);
    if (config.open) open(false);
  }

  function applyAccent() {
    if (config.accent && window.CSS && CSS.supports("color", config.accent)) {
      root.style.setProperty("--lepton-accent", config.accent);
    }
    // Pick dark or light text for whatever accent the site chose.
    var rgb = /(\d+),\s*(\d+),\s*(\d+)/.exec(getComputedStyle(launcher).backgroundColor);
    if (rgb) {
      var luminance = (0.2126 * rgb[1] + 0.7152 * rgb[2] + 0.0722 * rgb[3]) / 255;
      root.style.setProperty("--lepton-on-accent", luminance > 0.6 ? "#14171f" : "#ffffff");
    }
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 120) + "px";
  }

  /* -- open / close ------------------------------------------------------------ */

  function open(focus) {
    panel.hidden = false;
    root.classList.add("is-open");
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", "Close chat: " + config.title);
    launcher.replaceChildren(icon("close"));
    ensureReady();
    scrollToEnd();
    if (focus !== false) input.focus();
  }

  function close() {
    panel.hidden = true;
    root.classList.remove("is-open");
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", "Open chat: " + config.title);
    launcher.replaceChildren(icon("chat"));
    launcher.focus();
  }

  function toggle() {
    if (panel.hidden) open();
    else close();
  }

  /* -- messages ---------------------------------------------------------------- */

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  function addMessage(role, text, options) {
    options = options || {};
    var bubble = el("div", { class: "bubble" });
    var speaker = role === "user" ? "You said:" : options.agent ? options.agent + " (our team) said:" : "Assistant said:";
    var node = el("div", { class: "msg msg-" + role + (options.agent ? " msg-agent" : "") }, [
      el("span", { class: "sr-only", text: speaker }),
      options.agent ? el("span", { class: "agent-name", "aria-hidden": "true", text: options.agent }) : null,
      bubble
    ]);
    var message = { role: role, node: node, bubble: bubble, text: "", index: null };
    message.setText = function (value) {
      message.text = value;
      if (role === "user") bubble.textContent = value;
      else renderMarkdown(bubble, value);
    };
    if (options.typing) {
      node.setAttribute("aria-busy", "true");
      bubble.appendChild(el("span", { class: "typing", "aria-hidden": "true" }, [el("i"), el("i"), el("i")]));
    } else {
      message.setText(text);
    }
    log.insertBefore(node, options.before || null);
    scrollToEnd();
    return message;
  }

  function addCitations(message, citations) {
    var items = [];
    citations.forEach(function (citation) {
      if (!citation || typeof citation !== "object") return;
      var href = typeof citation.url === "string" ? safeHref(citation.url) : null;
      var label = String(citation.title || citation.source || citation.url || "").trim();
      if (!label) return;
      items.push(el("li", null, [href ? link(label, href) : document.createTextNode(label)]));
    });
    if (items.length) {
      message.node.appendChild(el("div", { class: "sources" }, [
        el("span", { class: "sources-title", text: "Sources" }),
        el("ul", null, items)
      ]));
    }
  }

  function addFeedback(message) {
    var thanks = el("span", { class: "thanks", "aria-live": "polite" });
    var up = el("button", {
      type: "button", class: "thumb", "aria-label": "Helpful", "aria-pressed": "false",
      onclick: function () { rate(1); }
    }, [icon("thumb")]);
    var down = el("button", {
      type: "button", class: "thumb", "aria-label": "Not helpful", "aria-pressed": "false",
      onclick: function () { rate(-1); }
    }, [icon("thumb", true)]);
    var correctionId = "lepton-correction-" + message.index;
    var correction = el("textarea", { id: correctionId, rows: "2", maxlength: "4000" });
    var form = el("form", {
      class: "correction", hidden: true,
      onsubmit: function (event) { event.preventDefault(); submitRating(-1, correction.value.trim()); }
    }, [
      el("label", { for: correctionId, text: "What should the answer have said? (optional)" }),
      correction,
      el("div", { class: "row" }, [
        el("button", {
          type: "button", class: "text-button", text: "Cancel",
          onclick: function () { form.hidden = true; down.setAttribute("aria-pressed", "false"); down.focus(); }
        }),
        el("button", { type: "submit", class: "text-button primary", text: "Send feedback" })
      ])
    ]);

    function rate(rating) {
      up.setAttribute("aria-pressed", String(rating === 1));
      down.setAttribute("aria-pressed", String(rating === -1));
      if (rating === 1) {
        form.hidden = true;
        submitRating(1, "");
      } else {
        form.hidden = false;
        correction.focus();
      }
    }

    function submitRating(rating, text) {
      var body = { conversation_id: state.conversationId, message_index: message.index, rating: rating };
      if (text) body.correction = text;
      up.disabled = down.disabled = true;
      request("v1/feedback", { method: "POST", body: JSON.stringify(body) }).then(function () {
        form.hidden = true;
        thanks.textContent = "Thanks for your feedback.";
        input.focus();
      }, function (error) {
        up.disabled = down.disabled = false;
        showNotice(error.message);
      });
    }

    message.node.appendChild(el("div", { class: "feedback", role: "group", "aria-label": "Rate this answer" },
      [up, down, thanks]));
    message.node.appendChild(form);
  }

  function announce(text) {
    // One complete answer at a time: streaming tokens into a live region would
    // make screen readers read every fragment.
    announcer.textContent = "";
    announcer.appendChild(el("p", { text: text }));
  }

  function showNotice(text) {
    notice.textContent = text || "";
  }

  /* -- talking to the server ---------------------------------------------------- */

  function headers(extra) {
    var all = { Authorization: "Bearer " + config.key };
    if (state.conversationToken) all["X-Lepton-Conversation-Token"] = state.conversationToken;
    Object.keys(extra || {}).forEach(function (name) { all[name] = extra[name]; });
    return all;
  }

  /* An Error carrying what the server said (or why it could not be reached). */
  function failure(message, status, code) {
    var error = new Error(message);
    error.status = status || 0;
    error.code = code || null;
    return error;
  }

  function responseError(response) {
    return response.json().then(function (body) {
      return body && body.error ? body.error : null;
    }, function () {
      return null;
    }).then(function (error) {
      var code = error && error.code;
      if (response.status === 429) {
        var after = response.headers.get("Retry-After");
        return failure("You are sending messages too quickly. Please wait " +
          (after ? after + (after === "1" ? " second" : " seconds") : "a moment") + " and try again.", 429, code);
      }
      var text = error && error.message ? error.message : "The chat server answered with HTTP " + response.status + ".";
      if (response.status >= 500) text = "Sorry, something went wrong on our side: " + text;
      return failure(text, response.status, code);
    });
  }

  function networkFailure(error) {
    if (error && error.status !== undefined) return error;
    return failure(OFFLINE_MESSAGE, 0, "offline");
  }

  function request(path, options) {
    var init = { method: options.method || "GET", headers: headers(options.body ? { "Content-Type": "application/json" } : {}) };
    if (options.body) init.body = options.body;
    return fetch(api(path), init).then(function (response) {
      if (!response.ok) return responseError(response).then(function (error) { throw error; });
      return response.json();
    }, function (error) { throw networkFailure(error); });
  }

  function ensureReady() {
    if (state.ready) return state.ready;
    // No custom header here: a "simple" request needs no CORS preflight, so even a
    // page on an origin the key does not allow can read why it is refused.
    state.ready = fetch(api("v1/widget/config?key=" + encodeURIComponent(config.key)))
      .then(function (response) {
        if (!response.ok) return responseError(response).then(function (error) { throw error; });
        return response.json();
      }, function (error) { throw networkFailure(error); })
      .then(function (widgetConfig) {
        if (widgetConfig.models.indexOf(config.skill) < 0) {
          throw failure("This chat is not set up for '" + config.skill + "'. Available: " +
            widgetConfig.models.join(", ") + ".", 403, "skill_not_allowed");
        }
        return loadHistory();
      })
      .catch(function (error) {
        if (error.status === 401 || error.status === 403) {
          refuse(error.message);
        } else {
          state.ready = null; // try again on the next message
          showNotice(error.message);
        }
        throw error;
      });
    state.ready.catch(function () { /* reported above */ });
    return state.ready;
  }

  function refuse(message) {
    state.refused = true;
    showNotice(message);
    input.disabled = sendButton.disabled = humanButton.disabled = true;
  }

  function loadHistory() {
    if (!state.conversationId) return null;
    var id = state.conversationId;
    return fetch(api("v1/conversations/" + encodeURIComponent(id)), { headers: headers() })
      .then(function (response) {
        if (response.status === 404) {
          forgetConversation();
          return null;
        }
        if (!response.ok) return responseError(response).then(function (error) { throw error; });
        return response.json();
      }, function (error) { throw networkFailure(error); })
      .then(function (conversation) {
        if (!conversation) return;
        state.history = [];
        // Above anything typed while the history was on its way.
        showStored(conversation.messages, greeting.node.nextSibling);
        setHandoff(conversation.handoff && conversation.handoff.state);
      });
  }

  /* Messages from the server that this page has not shown yet (history on load,
   * a person's replies while polling). */
  function showStored(messages, before) {
    messages.slice(state.history.length).forEach(function (stored) {
      var index = state.history.length;
      state.history.push(stored);
      if (stored.role !== "user" && stored.role !== "assistant") return;
      var agent = typeof stored.agent === "string" ? stored.agent : null;
      var message = addMessage(stored.role, stored.content, { before: before, agent: agent });
      if (stored.role === "assistant" && !agent) {
        message.index = index;
        if (Array.isArray(stored.citations)) addCitations(message, stored.citations);
        addFeedback(message);
      }
      if (agent && !before) announce(agent + ": " + stored.content);
    });
  }

  function setHandoff(value) {
    var previous = state.handoff;
    state.handoff = value || "none";
    var pending = state.handoff === "pending";
    humanButton.hidden = pending;
    status.hidden = !pending && !(previous === "pending" && state.handoff === "released");
    status.textContent = pending ? WAITING_MESSAGE : status.hidden ? "" : RELEASED_MESSAGE;
    if (pending && !state.poll) {
      state.poll = window.setInterval(pollConversation, POLL_MS);
    } else if (!pending && state.poll) {
      window.clearInterval(state.poll);
      state.poll = null;
    }
  }

  function pollConversation() {
    if (!state.conversationId || state.busy) return;
    request("v1/conversations/" + encodeURIComponent(state.conversationId), { method: "GET" })
      .then(function (conversation) {
        if (state.busy) return; // a turn of ours is on its way; the next poll catches up
        showStored(conversation.messages, null);
        setHandoff(conversation.handoff && conversation.handoff.state);
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }

  function forgetConversation() {
    state.conversationId = null;
    state.conversationToken = null;
    state.history = [];
    storeConversation(null);
  }

  function setBusy(busy) {
    state.busy = busy;
    sendButton.disabled = busy || state.refused;
    humanButton.disabled = busy || state.refused;
  }

  function submit() {
    var text = input.value.trim();
    if (!text || state.busy || state.refused) return;
    input.value = "";
    autosize();
    send(text);
  }

  /* Hands the conversation to a person: the request says so explicitly
   * (lepton.handoff), so it works whatever language the words are in. */
  function requestHuman() {
    send(HANDOFF_MESSAGE, { handoff: true });
  }

  function send(text, options) {
    options = options || {};
    if (state.busy || state.refused) return;
    showNotice("");
    setBusy(true);
    var mine = addMessage("user", text);
    var reply = addMessage("assistant", "", { typing: true });
    var answer = "";
    var finished = false;
    var citations = null;
    var handoff = null;
    var conversationId = state.conversationId;
    var conversationToken = state.conversationToken;

    function onEvent(data) {
      if (data.error) throw failure(data.error.message || "The answer failed.", 500, data.error.code);
      if (data.lepton && data.lepton.conversation_id) conversationId = data.lepton.conversation_id;
      if (data.lepton && data.lepton.conversation_token) conversationToken = data.lepton.conversation_token;
      var choice = data.choices && data.choices[0];
      if (!choice) return;
      if (choice.delta && typeof choice.delta.content === "string" && choice.delta.content) {
        answer += choice.delta.content;
        reply.setText(answer);
        scrollToEnd();
      }
      if (choice.finish_reason) {
        finished = true;
        if (data.lepton && Array.isArray(data.lepton.citations)) citations = data.lepton.citations;
        if (data.lepton && data.lepton.handoff) handoff = data.lepton.handoff.state;
      }
    }

    ensureReady().then(function () {
      var body = { model: config.skill, stream: true, messages: [{ role: "user", content: text }] };
      if (config.maxTokens) body.max_tokens = config.maxTokens;
      body.lepton = {};
      if (state.conversationId) body.lepton.conversation_id = state.conversationId;
      if (options.handoff) body.lepton.handoff = true;
      if (config.userId && config.userHash) {
        body.user = config.userId;
        body.lepton.user_hash = config.userHash;
      }
      // The visitor's language tag: the safety guard's replies name that country's emergency number.
      var locale = (navigator.languages && navigator.languages[0]) || navigator.language;
      if (typeof locale === "string" && /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$/.test(locale)) body.lepton.locale = locale;
      return fetch(api("v1/chat/completions"), {
        method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(body)
      }).then(function (response) {
        if (!response.ok) return responseError(response).then(function (error) { throw error; });
        return readEvents(response, onEvent);
      }, function (error) { throw networkFailure(error); });
    }).then(function () {
      if (!finished) throw failure("The answer was cut off. Please try again.", 0, "incomplete");
      // Only a completed turn is stored by the server, so only now is the id worth keeping.
      state.conversationId = conversationId;
      state.conversationToken = conversationToken;
      storeConversation(conversationId, conversationToken);
      state.history.push({ role: "user", content: text });
      if (!answer) {
        // A person has the conversation: the assistant stays silent.
        log.removeChild(reply.node);
      } else {
        reply.node.removeAttribute("aria-busy");
        reply.setText(answer);
        state.history.push({ role: "assistant", content: answer });
        reply.index = state.history.length - 1;
        if (citations) addCitations(reply, citations);
        addFeedback(reply);
        announce("Assistant: " + answer);
      }
      setHandoff(handoff);
      scrollToEnd();
    }).catch(function (error) {
      log.removeChild(reply.node);
      if (error.code === "conversation_not_found" && state.conversationId) {
        // The stored conversation is gone (expired or another server): start afresh.
        log.removeChild(mine.node);
        forgetConversation();
        setBusy(false);
        send(text);
        return;
      }
      mine.node.classList.add("msg-failed");
      mine.node.appendChild(el("span", { class: "failed-note", text: "Not sent" }));
      if (!input.value) input.value = text;
      if (!state.refused) showNotice(error.message);
    }).then(function () {
      if (state.busy) setBusy(false);
    });
  }

  /* Server-sent events from a fetch body, as they arrive. */
  function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    var done = false;

    function handle(block) {
      var data = block.split(/\r?\n/).filter(function (line) {
        return line.indexOf("data:") === 0;
      }).map(function (line) {
        return line.slice(5).replace(/^ /, "");
      }).join("\n");
      if (!data) return;
      if (data === "[DONE]") {
        done = true;
        return;
      }
      onEvent(JSON.parse(data));
    }

    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) {
          buffer += decoder.decode();
          if (buffer.trim()) handle(buffer);
          return;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        var blocks = buffer.split(/\r?\n\r?\n/);
        buffer = blocks.pop();
        try {
          blocks.forEach(function (block) { if (!done) handle(block); });
        } catch (error) {
          reader.cancel();
          throw error;
        }
        if (done) {
          reader.cancel();
          return;
        }
        return pump();
      }, function (error) { throw networkFailure(error); });
    }

    return pump();
  }

  /* -- styles -------------------------------------------------------------------- */

  function STYLES() {
    return [
      /* Inner !important beats the page's !important on the host: the page cannot
       * hide, transform or restyle the widget through inheritance. */
      ":host { all: initial !important; display: block !important; }",
      "[hidden] { display: none !important; }",
      ".root { all: initial; --lepton-accent: #2454d6; --lepton-on-accent: #ffffff;",
      "  font: 400 15px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif;",
      "  color: #1d2330; }",
      ".root *, .root *::before, .root *::after { box-sizing: border-box; }",
      "button, textarea { font: inherit; color: inherit; }",
      "svg { width: 22px; height: 22px; display: block; flex: none; }",
      ".launcher { position: fixed; bottom: 24px; right: 24px; z-index: 2147483000; width: 60px; height: 60px;",
      "  border: 0; border-radius: 50%; padding: 0; cursor: pointer; display: flex; align-items: center;",
      "  justify-content: center; background: var(--lepton-accent); color: var(--lepton-on-accent);",
      "  box-shadow: 0 6px 20px rgba(15, 23, 42, 0.28); }",
      ".launcher svg { width: 28px; height: 28px; }",
      ".panel { position: fixed; bottom: 100px; right: 24px; z-index: 2147483000; width: 380px; height: 600px;",
      "  max-height: calc(100vh - 124px); display: flex; flex-direction: column; overflow: hidden;",
      "  background: #ffffff; border: 1px solid rgba(15, 23, 42, 0.1); border-radius: 16px;",
      "  box-shadow: 0 16px 48px rgba(15, 23, 42, 0.25); }",
      ".pos-left .launcher, .pos-left .panel { right: auto; left: 24px; }",
      ".header { display: flex; align-items: center; gap: 8px; padding: 12px 12px 12px 18px;",
      "  background: var(--lepton-accent); color: var(--lepton-on-accent); }",
      ".title { margin: 0; flex: 1; font-size: 16px; font-weight: 600; line-height: 1.3; }",
      ".icon-button { width: 36px; height: 36px; border: 0; border-radius: 8px; padding: 0; cursor: pointer;",
      "  display: inline-flex; align-items: center; justify-content: center; background: transparent; }",
      ".icon-button:hover { background: rgba(127, 127, 127, 0.25); }",
      ".log { flex: 1; overflow-y: auto; padding: 16px; display: flex; flex-direction: column; gap: 12px;",
      "  background: #f5f6f8; }",
      ".msg { display: flex; flex-direction: column; max-width: 85%; }",
      ".msg-user { align-self: flex-end; align-items: flex-end; }",
      ".msg-assistant { align-self: flex-start; align-items: flex-start; }",
      ".bubble { padding: 9px 13px; border-radius: 14px; overflow-wrap: anywhere; }",
      ".msg-user .bubble { background: var(--lepton-accent); color: var(--lepton-on-accent);",
      "  border-bottom-right-radius: 4px; white-space: pre-wrap; }",
      ".msg-assistant .bubble { background: #ffffff; border: 1px solid #e2e5ea; border-bottom-left-radius: 4px; }",
      ".bubble p { margin: 0 0 8px; } .bubble p:last-child { margin-bottom: 0; }",
      ".bubble ul, .bubble ol { margin: 0 0 8px; padding-left: 22px; }",
      ".bubble ul:last-child, .bubble ol:last-child, .bubble pre:last-child { margin-bottom: 0; }",
      ".bubble code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px;",
      "  background: #eef0f3; padding: 1px 4px; border-radius: 4px; }",
      ".bubble pre { margin: 0 0 8px; padding: 8px 10px; background: #eef0f3; border-radius: 8px;",
      "  overflow-x: auto; white-space: pre; }",
      ".bubble pre code { padding: 0; background: none; }",
      ".bubble a, .sources a { color: #1f4fc2; text-decoration: underline; }",
      ".msg-failed .bubble { opacity: 0.6; }",
      ".failed-note { margin-top: 3px; font-size: 12px; color: #a3261b; }",
      ".sources { margin-top: 6px; font-size: 13px; color: #4a5262; }",
      ".sources ul { margin: 2px 0 0; padding-left: 18px; }",
      ".sources-title { font-weight: 600; }",
      ".feedback { display: flex; align-items: center; gap: 2px; margin-top: 4px; }",
      ".thumb { width: 30px; height: 30px; border: 0; border-radius: 8px; padding: 0; cursor: pointer;",
      "  display: inline-flex; align-items: center; justify-content: center; background: transparent;",
      "  color: #5b6473; }",
      ".thumb svg { width: 18px; height: 18px; }",
      ".thumb:hover, .thumb[aria-pressed='true'] { background: #e6e9ee; }",
      ".thumb[aria-pressed='true'] { color: #1f4fc2; }",
      ".thanks { margin-left: 6px; font-size: 12px; color: #5b6473; }",
      ".correction { display: flex; flex-direction: column; gap: 6px; margin-top: 6px; padding: 10px;",
      "  width: 100%; min-width: 240px; background: #ffffff; border: 1px solid #e2e5ea; border-radius: 10px; }",
      ".correction label { font-size: 13px; }",
      "textarea { border: 1px solid #c3c9d2; border-radius: 10px; padding: 9px 11px; resize: none;",
      "  background: #ffffff; line-height: 1.4; }",
      ".row { display: flex; justify-content: flex-end; gap: 6px; }",
      ".text-button { display: inline-flex; align-items: center; gap: 6px; padding: 6px 11px; font-size: 13px;",
      "  border: 1px solid #c3c9d2; border-radius: 8px; background: #ffffff; color: #1d2330; cursor: pointer; }",
      ".text-button svg { width: 16px; height: 16px; }",
      ".text-button:hover { background: #f0f2f5; }",
      ".primary, .primary:hover { background: var(--lepton-accent); color: var(--lepton-on-accent);",
      "  border-color: var(--lepton-accent); }",
      ".notice { margin: 0; padding: 9px 16px; font-size: 13px; background: #fff4e0; color: #6a3a00;",
      "  border-top: 1px solid #f0d29a; }",
      /* Empty but present: a live region that appears from display:none is often not announced. */
      ".notice:empty { padding: 0; border: 0; }",
      ".status { margin: 0; padding: 8px 16px; font-size: 13px; background: #eef4ff; color: #1d3a6b; }",
      ".agent-name { font-size: 12px; color: #4a5160; margin: 0 0 2px 4px; }",
      ".msg-agent .bubble { border-color: #9db4e0; }",
      ".actions { display: flex; padding: 10px 12px 0; background: #ffffff; border-top: 1px solid #e2e5ea; }",
      ".composer { display: flex; align-items: flex-end; gap: 8px; margin: 0; padding: 8px 12px 12px;",
      "  background: #ffffff; }",
      ".composer textarea { flex: 1; min-height: 42px; max-height: 120px; }",
      ".send { width: 42px; height: 42px; flex: none; border: 0; border-radius: 10px; padding: 0; cursor: pointer;",
      "  display: inline-flex; align-items: center; justify-content: center; background: var(--lepton-accent);",
      "  color: var(--lepton-on-accent); }",
      "button:disabled, textarea:disabled { opacity: 0.5; cursor: not-allowed; }",
      ":focus-visible { outline: 3px solid #1f4fc2; outline-offset: 2px; }",
      ".header :focus-visible, .launcher:focus-visible { outline-color: #14171f; box-shadow: 0 0 0 5px #ffffff; }",
      ".sr-only { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;",
      "  clip: rect(0 0 0 0); white-space: nowrap; border: 0; }",
      ".typing { display: inline-flex; gap: 4px; padding: 4px 0; }",
      ".typing i { width: 7px; height: 7px; border-radius: 50%; background: #9aa2af;",
      "  animation: lepton-blink 1.2s infinite ease-in-out; }",
      ".typing i:nth-child(2) { animation-delay: 0.2s; } .typing i:nth-child(3) { animation-delay: 0.4s; }",
      "@keyframes lepton-blink { 0%, 80%, 100% { opacity: 0.3; } 40% { opacity: 1; } }",
      "@media (prefers-reduced-motion: reduce) { .typing i { animation: none; } }",
      /* Phones: the panel takes the whole screen and the launcher steps aside. */
      "@media (max-width: 480px) {",
      "  .root .panel { top: 0; right: 0; bottom: 0; left: 0; width: 100%; height: 100%; max-height: none;",
      "    border: 0; border-radius: 0; }",
      "  .root.is-open .launcher { display: none; }",
      "  .msg { max-width: 92%; }",
      "}"
    ].join("\n");
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
