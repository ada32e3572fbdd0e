/* The playground's web chat: a Telegram-like client that acts as the emulator's users.
 *
 * It talks to the same origin: /api/setup and /api/sandbox* (playground/web.py) and the
 * emulator's /user-api/ (playground/telegram/users.py). The open chat is long-polled; the
 * sidebar and the sandbox strip are refreshed on timers. Bot HTML is parsed into an inert
 * document and only Telegram's tag subset is copied over: no markup from a message reaches
 * innerHTML. Like Telegram, /commands and web addresses in the text become tappable, and typing
 * "/" opens the bot's command menu (setMyCommands, as the emulator resolves it for the user).
 */
"use strict";

const POLL_SECONDS = 25;
const SIDEBAR_REFRESH_MS = 1500;
const SANDBOX_REFRESH_MS = 2000;
const RETRY_MS = 1000;
const PENDING_PRESS_MS = 10000;
const FINISH_SECONDS = 86400; // a simulated day: every running order and refill ends
const FAIL_MESSAGE = "Not enough funds on balance";
const AVATAR_COLORS = ["#e17076", "#7bc862", "#e5a64e", "#65aadd", "#a695e7", "#ee7aae", "#6ec9cb"];
const NAME_COLORS = ["#c9474e", "#3a9e3a", "#c07d10", "#2b7fc0", "#7b54d2", "#c9407a", "#23999c"];
// What Telegram makes tappable in plain text: web addresses (without the punctuation that ends
// a sentence) and bot commands (/name or /name@bot, not inside a word or a path).
const AUTO_LINKS =
  /(https?:\/\/[^\s<>"]*[^\s<>".,;:!?)\]'»”])|(?<![\w/@.&])(\/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?)(?![\w/@])/g;
// The composer is in "command mode" while it holds only "/" and the start of a command name.
const COMMAND_PREFIX = /^\/([A-Za-z0-9_]{0,32})(@[A-Za-z0-9_]*)?$/;

const app = {
  setup: null, // {bot, personas, group, sandbox, settings}
  persona: null, // the persona the page acts as
  chatId: null, // the open chat
  messages: new Map(), // message_id -> message (the open chat, ordered by id)
  rendered: new Map(), // message_id -> {element, version}
  version: 0, // the open chat's version, for the long poll
  loaded: false, // the open chat's messages have arrived once
  answerVersion: 0, // the newest callback answer already shown
  poll: null, // AbortController of the open chat's long poll
  manualReply: null, // message_id the user chose to reply to
  dismissedPrompts: new Set(), // "chat:message" force-reply prompts the user closed
  paidInvoices: new Set(), // "persona:chat:message" invoices paid from this page
  keyboardMessage: null, // message_id of the reply keyboard on screen
  keyboardHidden: false,
  lastRead: new Map(), // "persona:chat" -> highest message_id seen
  previews: new Map(), // chat id -> {version, messages}
  sandbox: null,
  commands: { key: null, list: [] }, // the command menu of the open chat, for the persona
  menu: { items: [], selected: 0 }, // the command popup on screen
};

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined && text !== null) element.textContent = text;
  return element;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/* --- the server ---------------------------------------------------------------------------- */

async function api(path, { method = "GET", body, signal } = {}) {
  const options = { method, signal, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try {
    data = await response.json();
  } catch {
    // not JSON: reported below with the HTTP status
  }
  if (!response.ok || !data || data.ok === false) {
    throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  }
  return data;
}

/* --- people and chats ---------------------------------------------------------------------- */

/** A stable colour per id, like Telegram's; hashed so that nearby ids differ. */
function colorIndex(id) {
  let hash = 0;
  for (const char of String(id)) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return hash % AVATAR_COLORS.length;
}

function initials(name) {
  const words = String(name || "?")
    .trim()
    .split(/\s+/)
    .filter(Boolean);
  return (
    words
      .slice(0, 2)
      .map((word) => Array.from(word)[0].toUpperCase())
      .join("") || "?"
  );
}

function avatar(name, id, className = "avatar") {
  const element = el("div", className, initials(name));
  element.style.background = AVATAR_COLORS[colorIndex(id)];
  element.setAttribute("aria-hidden", "true");
  return element;
}

function personaChats() {
  const { bot, group, personas } = app.setup;
  return [
    {
      id: app.persona.id,
      kind: "private",
      title: bot.first_name,
      subtitle: "bot",
      avatarId: bot.id,
    },
    {
      id: group.id,
      kind: "group",
      title: group.title,
      subtitle: `${personas.length + 1} members`,
      avatarId: group.id,
    },
  ];
}

function openChatInfo() {
  return personaChats().find((chat) => chat.id === app.chatId);
}

function senderName(message) {
  if (message.from_bot) return app.setup.bot.first_name;
  const persona = app.setup.personas.find((p) => p.id === message.from.id);
  return persona ? persona.name : message.from.first_name;
}

function isMine(message) {
  return !message.from_bot && message.from.id === app.persona.id;
}

/* --- the bot's HTML, made safe ------------------------------------------------------------- */

function safeLink(href) {
  let url;
  try {
    url = new URL(href || "");
  } catch {
    return null;
  }
  if (url.protocol === "http:" || url.protocol === "https:") {
    const link = document.createElement("a");
    link.href = url.href;
    link.target = "_blank";
    link.rel = "noopener noreferrer nofollow";
    return link;
  }
  if (url.protocol === "tg:") {
    // A mention (tg://user?id=…): shown like a link, going nowhere in the playground.
    const mention = el("span", "mention");
    mention.title = url.href;
    return mention;
  }
  return null;
}

function spoiler() {
  const element = el("span", "spoiler");
  element.title = "Spoiler: click to reveal";
  element.addEventListener("click", () => element.classList.toggle("revealed"));
  return element;
}

/** The element to copy `source` as, or null to keep only its content. */
function safeElement(source) {
  const simple = {
    b: "strong",
    strong: "strong",
    i: "em",
    em: "em",
    u: "u",
    ins: "u",
    s: "s",
    strike: "s",
    del: "s",
    pre: "pre",
  };
  const tag = source.localName;
  if (tag in simple) return document.createElement(simple[tag]);
  switch (tag) {
    case "code": {
      const code = document.createElement("code");
      const language = /^language-([\w+#.-]{1,32})$/.exec(source.getAttribute("class") || "");
      if (language) code.dataset.language = language[1];
      return code;
    }
    case "blockquote": {
      const quote = document.createElement("blockquote");
      if (source.hasAttribute("expandable")) quote.classList.add("expandable");
      return quote;
    }
    case "a":
      return safeLink(source.getAttribute("href"));
    case "tg-spoiler":
      return spoiler();
    case "span":
      return source.getAttribute("class") === "tg-spoiler" ? spoiler() : null;
    default:
      return null; // tg-emoji and anything unknown: the text only
  }
}

function commandLink(command) {
  const link = el("span", "command-link", command);
  link.dataset.command = command;
  link.dataset.testid = "command-link";
  link.setAttribute("role", "button");
  link.tabIndex = 0;
  link.title = `Send ${command}`;
  return link;
}

/** `text` with its web addresses and /commands made tappable (as text nodes and elements). */
function appendLinkified(into, text) {
  let last = 0;
  for (const found of text.matchAll(AUTO_LINKS)) {
    into.append(text.slice(last, found.index));
    const link = found[1] ? safeLink(found[1]) : commandLink(found[2]);
    if (link) {
      link.textContent = found[0];
      into.append(link);
    } else {
      into.append(found[0]);
    }
    last = found.index + found[0].length;
  }
  into.append(text.slice(last));
}

/** Copy `from`'s children into `into`; `plain`: text outside links and code, to linkify. */
function copySafely(from, into, plain = true) {
  for (const node of from.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) {
      if (plain) appendLinkified(into, node.data);
      else into.append(node.data);
    } else if (node.nodeType === Node.ELEMENT_NODE) {
      const copy = safeElement(node);
      if (copy) into.append(copy);
      const literal = ["a", "code", "pre"].includes(node.localName);
      copySafely(node, copy || into, plain && !literal);
    }
  }
}

/** A fragment showing Telegram-HTML `source`; DOMParser's document runs and loads nothing. */
function renderHtml(source) {
  const parsed = new DOMParser().parseFromString(String(source).trim(), "text/html");
  const fragment = document.createDocumentFragment();
  copySafely(parsed.body, fragment);
  return fragment;
}

/* --- messages ------------------------------------------------------------------------------ */

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], {
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });
}

function excerpt(text, length = 90) {
  const line = String(text || "")
    .replace(/\s+/g, " ")
    .trim();
  return line.length > length ? `${line.slice(0, length - 1)}…` : line;
}

function renderQuote(messageId) {
  const target = app.messages.get(messageId);
  const quote = el("div", "quote");
  const name = el("div", "quote-name", target ? senderName(target) : "Deleted message");
  if (target) {
    const color = NAME_COLORS[colorIndex(target.from.id)];
    quote.style.borderColor = name.style.color = color;
  }
  quote.append(name, el("div", "quote-text", target ? excerpt(target.text) : ""));
  quote.addEventListener("click", () => {
    const entry = app.rendered.get(messageId);
    if (!entry) return;
    entry.element.scrollIntoView({ block: "center", behavior: "smooth" });
    entry.element.classList.add("flash");
    setTimeout(() => entry.element.classList.remove("flash"), 1200);
  });
  return quote;
}

function renderInlineKeyboard(message) {
  const keyboard = el("div", "inline-keyboard");
  keyboard.dataset.testid = "inline-keyboard";
  for (const row of message.reply_markup.inline_keyboard || []) {
    const line = el("div", "ik-row");
    for (const raw of row) line.append(renderInlineButton(message, raw));
    keyboard.append(line);
  }
  return keyboard;
}

function renderInlineButton(message, raw) {
  const button = el("button", "ik-button");
  button.type = "button";
  button.dataset.testid = "inline-button";
  button.append(el("span", "ik-label", raw.text));
  if (typeof raw.callback_data === "string") {
    button.addEventListener("click", () => press(message, raw.callback_data, button));
  } else if (typeof raw.url === "string" && /^https?:\/\//i.test(raw.url)) {
    button.append(el("span", "ik-corner", "↗"));
    button.title = raw.url;
    button.addEventListener("click", () => window.open(raw.url, "_blank", "noopener"));
  } else {
    button.disabled = true;
    button.title = "This kind of button does nothing in the playground";
  }
  return button;
}

function renderMessage(message) {
  const mine = isMine(message);
  const group = openChatInfo().kind === "group";
  const row = el("div", `msg ${mine ? "out" : "in"}`);
  row.dataset.testid = "message";
  row.dataset.messageId = message.message_id;
  row.dataset.from = message.from_bot ? "bot" : mine ? "me" : "user";
  row.dataset.sender = message.from.id;
  if (group && !mine) row.append(avatar(senderName(message), message.from.id, "msg-avatar"));

  const body = el("div", "msg-body");
  const bubble = el("div", "bubble");
  if (group && !mine) {
    const name = el("div", "sender", senderName(message));
    name.style.color = NAME_COLORS[colorIndex(message.from.id)];
    bubble.append(name);
  }
  if (message.reply_to_message_id) bubble.append(renderQuote(message.reply_to_message_id));
  const text = el("div", "text");
  text.dataset.testid = "message-text";
  const attachment = message.attachment || {};
  if (attachment.invoice) bubble.append(renderInvoice(message, attachment.invoice));
  else if (attachment.successful_payment) {
    text.append(el("span", "payment-note", `Paid ⭐ ${attachment.successful_payment.total_amount}`));
  } else if (attachment.refunded_payment) {
    text.append(el("span", "payment-note", `Refunded ⭐ ${attachment.refunded_payment.total_amount}`));
  }
  text.append(renderHtml(message.html || ""));
  const meta = el("span", "meta");
  if (message.edited) meta.append(el("span", "edited", "edited"));
  meta.append(el("span", "time", clock(message.edit_date || message.date)));
  if (mine) meta.append(el("span", "ticks", "✓✓"));
  text.append(meta);
  bubble.append(text);
  body.append(bubble);
  if (message.reply_markup && message.reply_markup.inline_keyboard) {
    body.append(renderInlineKeyboard(message));
  }
  row.append(body);
  row.addEventListener("dblclick", () => replyTo(message.message_id));
  return row;
}

/** An invoice (sendInvoice) as Telegram draws it: a card with its title, description and a
 * "Pay ⭐ N" button that pays it as the current persona (pre-checkout, then the payment). */
function renderInvoice(message, invoice) {
  const card = el("div", "invoice");
  card.dataset.testid = "invoice";
  card.append(el("div", "invoice-title", invoice.title));
  card.append(el("div", "invoice-description", invoice.description));
  card.append(el("div", "invoice-total", `⭐ ${invoice.total_amount}`));
  const pay = el("button", "ik-button invoice-pay");
  pay.type = "button";
  pay.dataset.testid = "invoice-pay";
  showInvoicePaid(pay, invoice, app.paidInvoices.has(invoiceKey(message)));
  pay.addEventListener("click", () => payInvoice(message, invoice, pay));
  card.append(pay);
  return card;
}

const invoiceKey = (message) => `${app.persona.id}:${app.chatId}:${message.message_id}`;

/** Like Telegram, a paid invoice no longer offers to pay: the button says it is paid. */
function showInvoicePaid(button, invoice, paid) {
  button.textContent = paid ? `✓ Paid ⭐ ${invoice.total_amount}` : `Pay ⭐ ${invoice.total_amount}`;
  button.classList.toggle("paid", paid);
  button.disabled = paid;
}

async function payInvoice(message, invoice, button) {
  button.classList.add("pending");
  button.disabled = true;
  let paid = false;
  try {
    const answer = await api("/user-api/pay", {
      method: "POST",
      body: { user_id: app.persona.id, chat_id: app.chatId, message_id: message.message_id },
    });
    paid = Boolean(answer.paid);
    if (paid) app.paidInvoices.add(invoiceKey(message));
    else showToast(`Payment failed: ${answer.error}`);
  } catch (error) {
    showToast(`Not paid: ${error.message}`);
  } finally {
    button.classList.remove("pending");
    showInvoicePaid(button, invoice, paid);
  }
}

/** Bubbles of one sender in a row form a group: the name on the first, the tail on the last. */
function markRuns() {
  const rows = Array.from($("messages-inner").querySelectorAll(".msg"));
  rows.forEach((row, index) => {
    const sender = row.dataset.sender;
    row.classList.toggle("first", index === 0 || rows[index - 1].dataset.sender !== sender);
    row.classList.toggle(
      "last",
      index === rows.length - 1 || rows[index + 1].dataset.sender !== sender,
    );
  });
}

function renderEmpty() {
  const inner = $("messages-inner");
  const existing = inner.querySelector(".empty");
  if (app.messages.size > 0) {
    if (existing) existing.remove();
    return;
  }
  if (existing) return;
  const chat = openChatInfo();
  const box = el("div", "empty");
  box.append(
    avatar(chat.title, chat.avatarId, "empty-avatar"),
    el("div", "empty-title", chat.title),
  );
  box.append(
    el(
      "div",
      "empty-text",
      chat.kind === "private"
        ? "This is the real bot, running offline. Press Start below to say hello."
        : "Every persona is in this group. Completion notices of orders arrive here.",
    ),
  );
  inner.append(box);
}

/* --- the open chat ------------------------------------------------------------------------- */

function nearBottom() {
  const box = $("messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
}

function scrollToBottom() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

function applyChat(data, initial) {
  const stickToBottom = initial || nearBottom();
  app.version = data.version;
  app.loaded = true;
  app.messages = new Map(data.messages.map((message) => [message.message_id, message]));
  for (const [id, entry] of app.rendered) {
    if (!app.messages.has(id)) {
      entry.element.remove();
      app.rendered.delete(id);
    }
  }
  let sentByMe = false;
  for (const message of app.messages.values()) {
    const entry = app.rendered.get(message.message_id);
    if (entry && entry.version === message.version) continue;
    const element = renderMessage(message);
    if (entry) {
      entry.element.replaceWith(element); // an edit: in place
    } else {
      $("messages-inner").append(element);
      sentByMe = sentByMe || isMine(message);
    }
    app.rendered.set(message.message_id, { element, version: message.version });
  }
  markRuns();
  renderEmpty();
  app.previews.set(app.chatId, { version: data.version, messages: data.messages });
  renderChatList();
  showNewAnswer(data.callback_answer, initial);
  clearPendingPresses();
  markRead();
  renderComposer();
  if (stickToBottom || sentByMe) scrollToBottom();
}

function showNewAnswer(answer, initial) {
  if (!answer) return;
  if (!initial && answer.version > app.answerVersion && answer.text) {
    if (answer.show_alert) showAlert(answer.text);
    else showToast(answer.text);
  }
  app.answerVersion = Math.max(app.answerVersion, answer.version);
}

async function pollChat(chatId, signal) {
  let initial = true;
  let resync = false; // after an error, ask at once instead of waiting for news
  while (!signal.aborted) {
    const wait = initial || resync ? 0 : POLL_SECONDS;
    try {
      const data = await api(
        `/user-api/chats/${chatId}/messages?after_version=${app.version}&timeout=${wait}`,
        { signal },
      );
      if (signal.aborted) return;
      if (data.version < app.version) {
        location.reload(); // the playground was restarted: everything starts afresh
        return;
      }
      setOnline(true);
      applyChat(data, initial);
      initial = resync = false;
    } catch (error) {
      if (signal.aborted) return;
      setOnline(false);
      resync = true;
      await sleep(RETRY_MS);
    }
  }
}

function openChat(chatId) {
  if (app.poll) app.poll.abort();
  Object.assign(app, {
    chatId,
    messages: new Map(),
    version: 0,
    loaded: false,
    answerVersion: 0,
    manualReply: null,
    keyboardMessage: null,
    keyboardHidden: false,
  });
  app.rendered.clear();
  $("messages-inner").replaceChildren();
  closeCommandMenu();
  renderHeader();
  renderChatList();
  renderComposer();
  loadCommands().catch(() => {}); // the long poll reports the playground being away
  app.poll = new AbortController();
  pollChat(chatId, app.poll.signal);
  $("input").focus();
}

function renderHeader() {
  const chat = openChatInfo();
  $("chat-avatar").replaceWith(
    Object.assign(avatar(chat.title, chat.avatarId), { id: "chat-avatar" }),
  );
  $("chat-title").textContent = chat.title;
  $("chat-subtitle").textContent = chat.subtitle;
  $("chat-as").replaceChildren(
    el("span", "chat-as-label", "You are"),
    avatar(app.persona.name, app.persona.id, "chat-as-avatar"),
    el("span", "chat-as-name", app.persona.name),
  );
}

function setOnline(online) {
  document.body.classList.toggle("offline", !online);
  $("chat-subtitle").textContent = online
    ? openChatInfo().subtitle
    : "waiting for the playground… (is `python -m bot playground` running?)";
}

/* --- typing, replying, pressing ------------------------------------------------------------ */

function targetsMe(prompt) {
  if (!prompt.reply_markup.selective) return true;
  const replied = app.messages.get(prompt.reply_to_message_id);
  if (replied && replied.from.id === app.persona.id) return true;
  // A mention of me: tg://user?id=<my id>, not followed by more digits.
  return new RegExp(`tg://user\\?id=${app.persona.id}(?!\\d)`).test(prompt.html || "");
}

/** The newest ForceReply prompt for me that I have not answered (or closed) yet. */
function pendingPrompt() {
  const newestFirst = Array.from(app.messages.values()).reverse();
  for (const message of newestFirst) {
    if (isMine(message)) return null;
    if (message.from_bot && message.force_reply && targetsMe(message)) {
      return app.dismissedPrompts.has(`${app.chatId}:${message.message_id}`) ? null : message;
    }
  }
  return null;
}

function replyTarget() {
  if (app.manualReply !== null && app.messages.has(app.manualReply)) {
    return { message: app.messages.get(app.manualReply), forced: false };
  }
  const prompt = pendingPrompt();
  return prompt ? { message: prompt, forced: true } : null;
}

function replyTo(messageId) {
  app.manualReply = messageId;
  renderComposer();
  $("input").focus();
}

function cancelReply() {
  const target = replyTarget();
  if (!target) return;
  if (target.forced) app.dismissedPrompts.add(`${app.chatId}:${target.message.message_id}`);
  else app.manualReply = null;
  renderComposer();
}

/** The reply keyboard the chat shows: set by the newest bot message that set or removed one. */
function currentKeyboard() {
  const newestFirst = Array.from(app.messages.values()).reverse();
  for (const message of newestFirst) {
    const markup = message.from_bot ? message.reply_markup : null;
    if (!markup) continue;
    if (markup.remove_keyboard) return null;
    if (markup.keyboard) return { message, markup };
  }
  return null;
}

function renderReplyKeyboard(keyboard) {
  const box = $("reply-keyboard");
  if (!keyboard) {
    app.keyboardMessage = null;
    box.hidden = true;
    $("keyboard-toggle").hidden = true;
    return;
  }
  if (app.keyboardMessage !== keyboard.message.message_id) {
    app.keyboardMessage = keyboard.message.message_id;
    app.keyboardHidden = false; // a new keyboard shows itself
    box.replaceChildren();
    for (const row of keyboard.markup.keyboard) {
      const line = el("div", "rk-row");
      for (const raw of row) {
        const label = typeof raw === "string" ? raw : raw.text;
        const button = el("button", "rk-button", label);
        button.type = "button";
        button.dataset.testid = "reply-button";
        button.addEventListener("click", () => {
          if (keyboard.markup.one_time_keyboard) app.keyboardHidden = true;
          send(label);
        });
        line.append(button);
      }
      box.append(line);
    }
  }
  box.hidden = app.keyboardHidden;
  const toggle = $("keyboard-toggle");
  toggle.hidden = false;
  toggle.classList.toggle("active", !app.keyboardHidden);
  toggle.setAttribute("aria-pressed", String(!app.keyboardHidden));
}

function renderComposer() {
  const chat = openChatInfo();
  const starting = chat.kind === "private" && app.messages.size === 0 && app.loaded;
  $("start").hidden = !starting;
  $("composer").hidden = starting;

  const keyboard = starting ? null : currentKeyboard();
  renderReplyKeyboard(keyboard);

  const target = starting ? null : replyTarget();
  $("reply-bar").hidden = !target;
  let placeholder = "Message";
  if (target) {
    $("reply-bar").classList.toggle("forced", target.forced);
    $("reply-bar-title").textContent = `Reply to ${senderName(target.message)}`;
    $("reply-bar-excerpt").textContent = excerpt(target.message.text);
    placeholder = target.message.reply_markup?.input_field_placeholder || "Reply";
  } else if (keyboard && keyboard.markup.input_field_placeholder) {
    placeholder = keyboard.markup.input_field_placeholder;
  }
  $("input").placeholder = placeholder;
}

function autosize() {
  const input = $("input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
}

/**
 * Send `text` as the persona. A command tapped in a message or chosen in the menu is no reply
 * (`asReply: false`); one chosen in the menu replaces what was typed (`fromComposer`).
 */
async function send(text, { asReply = true, fromComposer = false } = {}) {
  if (!text.trim()) return;
  closeCommandMenu();
  const target = asReply ? replyTarget() : null;
  const input = $("input");
  const typed = input.value;
  const clears = fromComposer || typed === text;
  if (clears) {
    input.value = "";
    autosize();
  }
  try {
    await api("/user-api/send", {
      method: "POST",
      body: {
        user_id: app.persona.id,
        chat_id: app.chatId,
        text,
        reply_to_message_id: target ? target.message.message_id : null,
      },
    });
    app.manualReply = null;
  } catch (error) {
    if (clears) input.value = typed;
    showToast(`Not sent: ${error.message}`);
  }
  renderComposer();
  input.focus();
}

async function press(message, data, button) {
  button.classList.add("pending");
  setTimeout(() => button.classList.remove("pending"), PENDING_PRESS_MS);
  try {
    await api("/user-api/press", {
      method: "POST",
      body: {
        user_id: app.persona.id,
        chat_id: app.chatId,
        message_id: message.message_id,
        callback_data: data,
      },
    });
  } catch (error) {
    button.classList.remove("pending");
    showToast(`Not pressed: ${error.message}`);
  }
}

function clearPendingPresses() {
  for (const button of document.querySelectorAll(".ik-button.pending")) {
    button.classList.remove("pending");
  }
}

/* --- the command menu ---------------------------------------------------------------------- */

function commandsKey() {
  return `${app.persona.id}:${app.chatId}`;
}

/** The menu the bot set (setMyCommands) for this persona in the open chat. */
async function loadCommands() {
  const key = commandsKey();
  const data = await api(
    `/user-api/chats/${app.chatId}/commands?user_id=${encodeURIComponent(app.persona.id)}`,
  );
  if (key !== commandsKey()) return; // another chat or persona by now
  app.commands = { key, list: data.commands };
  $("commands-button").hidden = data.commands.length === 0;
  updateCommandMenu();
}

function commandMenuOpen() {
  return !$("command-menu").hidden;
}

function closeCommandMenu() {
  const menu = $("command-menu");
  menu.hidden = true;
  menu.replaceChildren();
  app.menu = { items: [], selected: 0 };
  const input = $("input");
  input.setAttribute("aria-expanded", "false");
  input.removeAttribute("aria-activedescendant");
}

/** Show the commands starting with what the composer holds, while it holds only "/name". */
function updateCommandMenu() {
  const typed = COMMAND_PREFIX.exec($("input").value);
  const list = app.commands.key === commandsKey() ? app.commands.list : [];
  const prefix = typed ? typed[1].toLowerCase() : null;
  const items = prefix === null ? [] : list.filter((c) => c.command.startsWith(prefix));
  if (!items.length || typed[2]) {
    closeCommandMenu();
    return;
  }
  const same =
    items.length === app.menu.items.length &&
    items.every((item, index) => item.command === app.menu.items[index].command);
  app.menu = { items, selected: same ? app.menu.selected : 0 };
  renderCommandMenu();
}

function renderCommandMenu() {
  const menu = $("command-menu");
  menu.replaceChildren();
  app.menu.items.forEach((item, index) => {
    const option = el("div", "command-item");
    option.id = `command-option-${index}`;
    option.dataset.testid = "command-item";
    option.setAttribute("role", "option");
    option.setAttribute("aria-selected", String(index === app.menu.selected));
    option.append(
      el("span", "command-name", `/${item.command}`),
      el("span", "command-description", item.description),
    );
    // mousedown, not click: the composer keeps the focus.
    option.addEventListener("mousedown", (event) => event.preventDefault());
    option.addEventListener("click", () => chooseCommand(item));
    option.addEventListener("mousemove", () => selectCommand(index));
    menu.append(option);
  });
  menu.hidden = false;
  const input = $("input");
  input.setAttribute("aria-expanded", "true");
  input.setAttribute("aria-activedescendant", `command-option-${app.menu.selected}`);
}

function selectCommand(index) {
  if (index === app.menu.selected) return;
  app.menu.selected = index;
  renderCommandMenu();
  $(`command-option-${index}`).scrollIntoView({ block: "nearest" });
}

/** Keys for the open menu; true when the key was the menu's. */
function commandMenuKey(event) {
  if (!commandMenuOpen()) return false;
  const count = app.menu.items.length;
  const chosen = app.menu.items[app.menu.selected];
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    const step = event.key === "ArrowDown" ? 1 : count - 1;
    selectCommand((app.menu.selected + step) % count);
  } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    chooseCommand(chosen);
  } else if (event.key === "Tab") {
    // Fill in the command, for one that takes an argument (/status 23501).
    $("input").value = `/${chosen.command} `;
    closeCommandMenu();
  } else if (event.key === "Escape") {
    closeCommandMenu();
  } else {
    return false;
  }
  event.preventDefault();
  return true;
}

function chooseCommand(item) {
  send(`/${item.command}`, { asReply: false, fromComposer: true });
}

function openCommandMenu() {
  const input = $("input");
  if (!COMMAND_PREFIX.test(input.value)) input.value = "/";
  autosize();
  input.focus();
  updateCommandMenu();
  loadCommands().catch(() => {});
}

/* --- notices ------------------------------------------------------------------------------- */

let toastTimer = null;

function showToast(text, ms = 3500) {
  const toast = $("toast");
  toast.textContent = text;
  toast.hidden = false;
  toast.classList.remove("leaving");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    toast.classList.add("leaving");
    toastTimer = setTimeout(() => (toast.hidden = true), 250);
  }, ms);
}

function showAlert(text) {
  $("alert-text").textContent = text;
  $("alert").hidden = false;
  $("alert-ok").focus();
}

/* --- the sidebar --------------------------------------------------------------------------- */

function readKey(chatId) {
  return `${app.persona.id}:${chatId}`;
}

function markRead() {
  const ids = Array.from(app.messages.keys());
  app.lastRead.set(readKey(app.chatId), ids.length ? Math.max(...ids) : 0);
}

function unreadCount(chatId, messages) {
  const key = readKey(chatId);
  if (!app.lastRead.has(key)) {
    // First sight of this chat as this persona: what is there is history, not news.
    app.lastRead.set(
      key,
      messages.reduce((top, m) => Math.max(top, m.message_id), 0),
    );
  }
  const seen = app.lastRead.get(key);
  return messages.filter((m) => m.message_id > seen && !isMine(m)).length;
}

function renderPersonas() {
  const box = $("personas");
  box.replaceChildren();
  for (const persona of app.setup.personas) {
    const button = el("button", "persona");
    button.type = "button";
    button.dataset.testid = `persona-${persona.name.toLowerCase()}`;
    button.setAttribute("role", "radio");
    button.setAttribute("aria-checked", String(persona.id === app.persona.id));
    const text = el("span", "persona-text");
    text.append(el("span", "persona-name", persona.name), el("span", "persona-role", persona.role));
    button.append(avatar(persona.name, persona.id, "persona-avatar"), text);
    button.title = `${persona.name} — Telegram id ${persona.id}`;
    button.addEventListener("click", () => choosePersona(persona));
    box.append(button);
  }
}

function choosePersona(persona) {
  if (persona.id === app.persona.id) return;
  const wasGroup = openChatInfo().kind === "group";
  app.persona = persona;
  renderPersonas();
  openChat(wasGroup ? app.setup.group.id : persona.id);
}

let chatListShown = "";

function previewText(chat, last) {
  let who = "";
  if (isMine(last)) who = "You: ";
  else if (chat.kind === "group") who = `${senderName(last)}: `;
  return who + excerpt(last.text, 60);
}

function renderChatList() {
  const rows = personaChats().map((chat) => {
    const preview = app.previews.get(chat.id);
    const messages = preview ? preview.messages : [];
    const unread = chat.id === app.chatId ? 0 : unreadCount(chat.id, messages);
    return { chat, last: messages[messages.length - 1], unread };
  });
  // Rebuild only on change, so that a click is never lost to a redraw under the pointer.
  const shown = JSON.stringify([
    app.persona.id,
    app.chatId,
    rows.map((row) => [row.chat.id, row.last, row.unread]),
  ]);
  if (shown === chatListShown) return;
  chatListShown = shown;
  const list = $("chat-list");
  list.replaceChildren();
  for (const { chat, last, unread } of rows) {
    const button = el("button", `chat-item${chat.id === app.chatId ? " active" : ""}`);
    button.type = "button";
    button.dataset.testid = chat.kind === "private" ? "chat-private" : "chat-team";
    const text = el("div", "chat-item-text");
    const top = el("div", "chat-item-top");
    top.append(el("span", "chat-item-title", chat.title));
    if (last) top.append(el("span", "chat-item-time", clock(last.edit_date || last.date)));
    const bottom = el("div", "chat-item-bottom");
    bottom.append(el("span", "chat-item-preview", last ? previewText(chat, last) : chat.subtitle));
    if (unread) {
      const badge = el("span", "badge", String(unread));
      badge.dataset.testid = "unread-badge";
      bottom.append(badge);
    }
    text.append(top, bottom);
    button.append(avatar(chat.title, chat.avatarId), text);
    button.addEventListener("click", () => {
      if (chat.id !== app.chatId) openChat(chat.id);
    });
    const item = el("li");
    item.append(button);
    list.append(item);
  }
}

async function refreshSidebar() {
  const { chats } = await api("/user-api/chats");
  let changed = false;
  for (const chat of personaChats()) {
    const info = chats.find((entry) => entry.chat.id === chat.id);
    const cached = app.previews.get(chat.id);
    if (!info || (cached && cached.version === info.version)) continue;
    const data = await api(`/user-api/chats/${chat.id}/messages?timeout=0`);
    app.previews.set(chat.id, { version: data.version, messages: data.messages });
    changed = true;
  }
  if (changed) renderChatList();
}

/* --- the sandbox strip --------------------------------------------------------------------- */

function renderSandbox(state) {
  app.sandbox = state;
  $("sandbox-balance").textContent = `${state.balance} ${state.currency}`;
  $("sandbox-clock").textContent = `clock ×${state.speed}`;
  const fast = state.speed >= 10;
  const speedUp = $("speed-up");
  speedUp.textContent = fast ? "Back to normal speed" : "Speed up ×10";
  speedUp.setAttribute("aria-pressed", String(fast));
  const { total, ...byStatus } = state.orders;
  const parts = Object.entries(byStatus).map(([status, count]) => `${count} ${status}`);
  const orders = total
    ? `${total} order${total === 1 ? "" : "s"}: ${parts.join(", ")}`
    : "No orders yet";
  // Orders promised to end Partial (the strip's button), not placed yet.
  const pending = state.partial_next || 0;
  let promise = "";
  if (pending === 1) promise = " · the next ends Partial";
  else if (pending > 1) promise = ` · the next ${pending} end Partial`;
  $("sandbox-orders").textContent = orders + promise;
}

async function sandboxAction(path, body, message) {
  try {
    renderSandbox(await api(path, { method: "POST", body }));
    showToast(message);
  } catch (error) {
    showToast(`Sandbox: ${error.message}`);
  }
}

function bindSandbox() {
  $("speed-up").addEventListener("click", () => {
    const fast = app.sandbox && app.sandbox.speed >= 10;
    sandboxAction(
      "/api/sandbox/speed",
      { factor: fast ? 1 : 10 },
      fast
        ? "The sandbox clock runs at normal speed again."
        : "The sandbox clock runs ×10: orders finish in seconds.",
    );
  });
  $("finish-now").addEventListener("click", () =>
    sandboxAction(
      "/api/sandbox/advance",
      { seconds: FINISH_SECONDS },
      "The sandbox clock jumped a day ahead: running orders are done. " +
        "The bot hears of it at its next poll.",
    ),
  );
  $("partial-next").addEventListener("click", () =>
    sandboxAction(
      "/api/sandbox/partial-next",
      {},
      "The next order will end Partial: part of it is not delivered, and its share is " +
        "refunded.",
    ),
  );
  $("fail-next").addEventListener("click", () =>
    sandboxAction(
      "/api/sandbox/fail-next-add",
      { message: FAIL_MESSAGE },
      `The next order will be refused by the panel: “${FAIL_MESSAGE}”.`,
    ),
  );
}

/** The user's settings the playground runs with (MAX_ORDER_PRICE=1…), if any. */
function renderSettings(settings) {
  const note = $("settings-note");
  note.textContent = `Your settings: ${settings.join(", ")}`;
  note.hidden = settings.length === 0;
}

/* --- start --------------------------------------------------------------------------------- */

function every(ms, task) {
  const run = async () => {
    try {
      await task();
    } catch {
      // the long poll reports the playground being away; timers just try again
    }
    setTimeout(run, ms);
  };
  run();
}

function bindComposer() {
  const input = $("input");
  input.addEventListener("keydown", (event) => {
    if (commandMenuKey(event)) return;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send(input.value);
    } else if (event.key === "Escape") {
      cancelReply();
    }
  });
  input.addEventListener("input", () => {
    autosize();
    updateCommandMenu();
  });
  input.addEventListener("blur", closeCommandMenu);
  $("commands-button").addEventListener("mousedown", (event) => event.preventDefault());
  $("commands-button").addEventListener("click", () =>
    commandMenuOpen() ? closeCommandMenu() : openCommandMenu(),
  );
  // A /command tapped in a message is sent, as in Telegram.
  const messages = $("messages");
  const tapCommand = (event) => {
    const link = event.target.closest("[data-command]");
    if (!link) return;
    event.preventDefault();
    send(link.dataset.command, { asReply: false });
  };
  messages.addEventListener("click", tapCommand);
  messages.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") tapCommand(event);
  });
  $("send").addEventListener("click", () => send(input.value));
  $("start").addEventListener("click", () => send("/start"));
  $("reply-cancel").addEventListener("click", cancelReply);
  $("keyboard-toggle").addEventListener("click", () => {
    app.keyboardHidden = !app.keyboardHidden;
    renderComposer();
  });
  $("alert-ok").addEventListener("click", () => ($("alert").hidden = true));
}

async function main() {
  let setup = null;
  while (!setup) {
    try {
      setup = await api("/api/setup");
    } catch {
      await sleep(RETRY_MS);
    }
  }
  app.setup = setup;
  const params = new URLSearchParams(location.search);
  const wanted = Number(params.get("as"));
  app.persona =
    setup.personas.find((p) => p.id === wanted) ||
    setup.personas.find((p) => p.may_order && p.name === "Customer") ||
    setup.personas[0];
  renderSandbox(setup.sandbox);
  renderSettings(setup.settings || []);
  bindComposer();
  bindSandbox();
  renderPersonas();
  openChat(app.persona.id);
  every(SIDEBAR_REFRESH_MS, refreshSidebar);
  every(SANDBOX_REFRESH_MS, async () => renderSandbox(await api("/api/sandbox")));
}

document.addEventListener("DOMContentLoaded", main);
