// The tote browser client: a plain websocket client of docs/protocol.md, no framework and
// no build step. Everything the server sends is shown with textContent, never as HTML.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  config: { ws_port: 0, currency: "EUR" },
  user: null, // { id, name, key }
  ws: null,
  nextRequest: 1,
  pending: new Map(), // request_id -> resolve
  game: null, // the 342 details
  pools: new Map(), // pool_id -> { element, targets: Map(target -> {...}), state }
  adminSources: new Set(),
  // The game joined, its last numbered broadcast applied and the seq its 333 carried
  // (decisions §9): a dropped connection rejoins with since_seq and misses nothing.
  gameId: null,
  seq: null,
  joinedSeq: null,
  viewers: 0,
  retryMs: 1000,
};

// -- utilities ------------------------------------------------------------------------

function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

// sha256(user_id + nonce + session_key), as actors/registry.py handshake_digest.
async function handshakeDigest(userId, nonce, sessionKey) {
  if (!window.crypto || !crypto.subtle) {
    throw new Error("This page needs a secure context (https, or http on localhost) for WebCrypto.");
  }
  const data = new TextEncoder().encode(`${userId}${nonce}${sessionKey}`);
  return hex(await crypto.subtle.digest("SHA-256", data));
}

function money(amount) {
  const currency = (state.game && state.game.currency) || state.config.currency;
  return `${Number(amount || 0).toFixed(2)} ${currency}`;
}

function showMessage(text) {
  const item = document.createElement("div");
  item.className = "message";
  item.textContent = text;
  $("#messages").prepend(item);
  while ($("#messages").children.length > 5) $("#messages").lastChild.remove();
}

function setStatus(text, online) {
  $("#status").textContent = text;
  $("#status").dataset.state = online ? "online" : "offline";
}

function option(value, label) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = label;
  return element;
}

// -- the websocket --------------------------------------------------------------------

// Send an op; resolves with its first direct reply (which may be a 666).
function request(op, fields = {}) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
    showMessage("Not connected: log in again.");
    return Promise.resolve({ res: null });
  }
  const requestId = `p${state.nextRequest++}`;
  return new Promise((resolve) => {
    state.pending.set(requestId, resolve);
    state.ws.send(JSON.stringify({ header: { request_id: requestId }, op, ...fields }));
  });
}

async function connect() {
  const nonce = hex(crypto.getRandomValues(new Uint8Array(16)));
  const digest = await handshakeDigest(state.user.id, nonce, state.user.key);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.hostname}:${state.config.ws_port}/` +
    `?id=${state.user.id}&n=${nonce}&h=${digest}`;
  const ws = new WebSocket(url);
  state.ws = ws;
  let opened = false;
  ws.addEventListener("open", () => (opened = true), { once: true });
  ws.addEventListener("message", (event) => handle(JSON.parse(event.data)));
  ws.addEventListener("close", (event) => {
    if (state.ws !== ws) return;
    for (const resolve of state.pending.values()) resolve({ res: null });
    state.pending.clear();
    setStatus(`offline (${event.code || "refused"})`, false);
    if (!opened || event.code === 4001) {
      showMessage("The connection closed; log in again to reconnect.");
      $("#login-view").hidden = false;
      return;
    }
    showMessage("The connection dropped; reconnecting.");
    setTimeout(reconnect, state.retryMs);
  });
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", () => reject(new Error("The websocket was refused.")), {
      once: true,
    });
  });
  setStatus("online", true);
}

// Connect again after a drop and resume the game from the last broadcast applied.
async function reconnect() {
  try {
    await connect();
  } catch (error) {
    state.retryMs = Math.min(state.retryMs * 2, 10000);
    setTimeout(reconnect, state.retryMs);
    return;
  }
  state.retryMs = 1000;
  if (state.gameId) await resumeGame(state.gameId);
}

async function resumeGame(gameId) {
  const joined = await request(363, { game_id: gameId, since_seq: state.seq ?? 0 });
  if (joined.res !== 333) return;
  $("#game-view").dataset.resumed = String(joined.resumed);
  if (!joined.resumed) {
    await showGame(gameId, joined); // too much missed: read the game again
    return;
  }
  state.joinedSeq = joined.seq;
  setViewers(joined.viewers);
  await request(800, { currency: state.game.currency });
  await request(810, { currency: state.game.currency });
}

// A numbered broadcast of the game already applied (a resume may repeat none, but a
// read of the game overlaps them): false, so it is not applied twice.
function isNew(header) {
  if (header.seq == null || header.game_id !== state.gameId) return true;
  if (state.seq != null && header.seq <= state.seq) return false;
  state.seq = header.seq;
  return true;
}

function setViewers(count) {
  state.viewers = count;
  $("#viewers").textContent = `${count} watching`;
  $("#viewers").dataset.viewers = String(count);
}

// 470 and 480 count only when they go to everyone (numbered) and are not already in
// the 333's count: a replay, or our own join (the broadcast right after our 333).
function countPresence(m, change) {
  const seq = m.response_header.seq;
  const ours = change > 0 && seq === state.joinedSeq + 1 && m.user_id === state.user.id;
  if (seq != null && seq > state.joinedSeq && !ours) setViewers(state.viewers + change);
}

function handle(message) {
  if (message.response_header && !isNew(message.response_header)) return;
  const requestId = message.response_header && message.response_header.request_id;
  const waiting = requestId != null && state.pending.get(requestId);
  if (waiting) {
    state.pending.delete(requestId);
    waiting(message);
  }
  const handler = HANDLERS[message.res];
  if (handler) handler(message);
}

const HANDLERS = {
  352: (m) => addPool({ ...m, distributions: m.targets }),
  356: (m) => noteMyBet(m),
  360: (m) => updateDistribution(m.pool_id, m.distribution),
  362: (m) => resolvePool(m),
  366: (m) => noteEvent(m),
  368: (m) => setPoolState(m.pool_id, "blocked"),
  369: (m) => setPoolState(m.pool_id, "open"),
  470: (m) => {
    countPresence(m, 1);
    noteEvent({ text: `${m.user_name} joined` });
  },
  471: (m) => setViewers(m.viewers),
  480: (m) => countPresence(m, -1),
  666: (m) => showMessage(`${m.text}${m.parameter ? ` (${m.parameter})` : ""} [${m.error_code}]`),
  800: (m) => showBalance({ current_balance: m.current_balance }),
  810: (m) => showBalance({ available_balance: m.available_balance }),
  815: (m) => {
    showBalance(m);
    request(850, { currency: m.currency }); // what is left of the limits changed too
  },
  850: (m) => showLimits(m),
};

// -- balance --------------------------------------------------------------------------

const balance = { available: null, current: null };

function showBalance(m) {
  const currency = (state.game && state.game.currency) || state.config.currency;
  if (m.currency && m.currency !== currency) return;
  if (m.available_balance !== undefined) balance.available = m.available_balance;
  if (m.current_balance !== undefined) balance.current = m.current_balance;
  const element = $("#balance");
  element.dataset.available = balance.available ?? "";
  element.textContent = `available ${money(balance.available)} · current ${money(balance.current)}`;
}

// -- limits the player set (ops 850-852) --------------------------------------------

function showLimits(m) {
  const currency = (state.game && state.game.currency) || state.config.currency;
  if (m.currency !== currency) return;
  const parts = [];
  for (const kind of ["deposit", "loss"]) {
    for (const [period, amount] of Object.entries(m[kind] || {})) {
      const left = (m.left[kind] || {})[period];
      parts.push(`${kind} ${money(amount)} a ${period}: ${money(left)} left`);
    }
  }
  if (m.excluded_until) {
    parts.push(`excluded until ${new Date(m.excluded_until).toISOString().slice(0, 16)} UTC`);
  }
  const element = $("#limits");
  element.textContent = parts.length ? `limits · ${parts.join(" · ")}` : "";
  element.dataset.left = JSON.stringify(m.left);
  element.hidden = parts.length === 0;
}

// -- games ----------------------------------------------------------------------------

// A game's status (docs/protocol.md, op 372) as a player would say it.
const GAME_STATUS = {
  betting_not_yet_active: "Not started, betting not open yet",
  pre_game_betting_active: "Not started, betting open",
  game_in_progress_betting_active: "In play, betting open",
  game_in_progress_betting_closed: "In play, betting closed",
  game_closed: "Finished",
};

function statusInWords(status) {
  return GAME_STATUS[status] || status;
}

async function joinGame(gameId) {
  if (state.game && state.game.game_id !== gameId) {
    await request(364, { game_id: state.game.game_id }); // stop hearing of the old one
  }
  const joined = await request(363, { game_id: gameId });
  if (joined.res !== 333) return;
  await showGame(gameId, joined);
}

// Read the game whole (details, balances, pools) after a join answered by ``joined``.
async function showGame(gameId, joined) {
  state.gameId = gameId;
  state.seq = joined.seq;
  state.joinedSeq = joined.seq;
  setViewers(joined.viewers);
  const details = await request(372, { game_id: gameId });
  if (details.res !== 342) return;
  state.game = details;
  state.pools.clear();
  $("#pools").replaceChildren();
  $("#events").replaceChildren();
  $("#game-name").textContent = details.game_name;
  $("#game-status").textContent = statusInWords(details.status);
  $("#game-status").dataset.status = details.status;
  $("#game-view").hidden = false;
  $("#game-list").hidden = true;
  location.hash = `game=${encodeURIComponent(gameId)}`;
  await request(800, { currency: details.currency });
  await request(810, { currency: details.currency });
  await request(850, { currency: details.currency });
  const listing = await request(387, { game_id: gameId });
  for (const pool of Object.values(listing.pools_list || {})) addPool(pool);
  await showAdmin();
}

// -- the game list: every source's games, so a visitor needs no id (op 3801) ----------

const GAME_PAGE = 20; // games a page of the list asks for (the server allows up to 100)
const gameList = { cursor: null, loading: false };

// Shown when the address names no game, and from a game by "All games".
async function showGameList() {
  $("#game-view").hidden = true;
  $("#game-list").hidden = false;
  $("#games").replaceChildren();
  gameList.cursor = null;
  await moreGames();
}

// The next page of games, newest first; "More games" stays while the server has more.
async function moreGames() {
  if (gameList.loading) return;
  gameList.loading = true;
  const fields = { limit: GAME_PAGE };
  if (gameList.cursor) fields.cursor = gameList.cursor;
  const page = await request(3801, fields);
  gameList.loading = false;
  if (page.res !== 3451) return;
  for (const game of page.games) $("#games").append(gameListItem(game));
  gameList.cursor = page.next_cursor;
  $("#more-games").hidden = !page.next_cursor;
}

// One game of the list: its name (a click opens it), its status in words, its source.
function gameListItem(game) {
  const item = document.createElement("li");
  item.className = "listed-game";
  item.dataset.gameId = game.game_id;
  item.dataset.status = game.status;
  const link = document.createElement("a");
  link.className = "listed-game-name";
  link.href = `#game=${encodeURIComponent(game.game_id)}`;
  link.textContent = game.name;
  link.addEventListener("click", () => joinGame(game.game_id));
  const status = document.createElement("span");
  status.className = "listed-game-status";
  status.textContent = statusInWords(game.status);
  const source = document.createElement("span");
  source.className = "listed-game-source";
  source.textContent = game.source_name || "";
  item.append(link, status, source);
  return item;
}

// Every target id of the game tree, with its level (1: teams, 2: players).
function treeTargets(tree, prefix = "", level = 1, found = []) {
  for (const [key, node] of Object.entries(tree || {})) {
    const id = prefix ? `${prefix}:${key}` : key;
    if (id === "none") continue;
    const leaf = Object.keys(node.targets || {}).length === 0;
    found.push({ id, level, leaf, name: node.display_name });
    treeTargets(node.targets, id, level + 1, found);
  }
  return found;
}

async function listMyGames() {
  const sources = await request(611);
  state.adminSources = new Set((sources.sources || []).map((s) => s.id));
  const list = $("#my-games");
  list.replaceChildren();
  for (const source of sources.sources || []) {
    const games = await request(380, { source_id: source.id });
    for (const [gameId, game] of Object.entries(games.games || {})) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = `#game=${encodeURIComponent(gameId)}`;
      link.textContent = `${game.name} (${source.name}, ${statusInWords(game.status)})`;
      link.addEventListener("click", () => joinGame(gameId));
      item.append(link);
      list.append(item);
    }
  }
}

async function showAdmin() {
  const game = state.game;
  const admin = state.adminSources.has(game.source_id);
  $("#admin-view").hidden = !admin;
  if (!admin) return;
  const actions = Object.entries(game.actions).map(([id, a]) => option(id, a.name));
  $("#pool-action").replaceChildren(...actions.map((o) => o.cloneNode(true)));
  $("#event-action").replaceChildren(...actions);
  const targets = treeTargets(game.targets);
  const levels = [...new Set(targets.map((t) => t.level))];
  $("#pool-level").replaceChildren(
    ...levels.map((level) => option(level, level === 1 ? "teams" : `level ${level}`)),
  );
  $("#event-target").replaceChildren(
    ...targets.filter((t) => t.leaf).map((t) => option(t.id, t.id)),
  );
}

async function becomeGameAdmin() {
  // 640 the first time, 645 when already an admin: either way the next op can go.
  await request(616, { game_id: state.game.game_id });
}

// -- pools ----------------------------------------------------------------------------

function targetName(display) {
  return typeof display === "object" && display ? display.display_name : display;
}

function addPool(pool) {
  if (!state.game || pool.game_id !== state.game.game_id) return;
  if (state.pools.has(pool.pool_id)) return;
  const element = $("#pool-template").content.firstElementChild.cloneNode(true);
  element.dataset.poolId = pool.pool_id;
  const action = pool.action || pool.action_id;
  const actionName = (state.game.actions[action] || {}).name || action;
  $(".pool-title", element).textContent = pool.description || `Next ${actionName.toLowerCase()}`;
  const entry = { element, targets: new Map(), state: "open", myBets: 0 };
  state.pools.set(pool.pool_id, entry);
  for (const [target, info] of Object.entries(pool.distributions || {})) {
    const row = $("#target-template").content.firstElementChild.cloneNode(true);
    row.dataset.target = target;
    $(".target-name", row).textContent = targetName(info.display_name);
    $(".targets", element).append(row);
    $(".bet-target", element).append(option(target, targetName(info.display_name)));
    entry.targets.set(target, row);
  }
  $(".bet-form", element).addEventListener("submit", (event) => {
    event.preventDefault();
    placeBet(pool.pool_id, element);
  });
  showRules(element, pool);
  $(".pool-legend", element).textContent =
    `pays ×: what ${money(1)} more on a target returns if it wins, at the stakes so far`;
  $("#pools").prepend(element);
  updateDistribution(pool.pool_id, pool.distributions);
  setPoolState(pool.pool_id, pool.blocked ? "blocked" : "open");
}

// The pool's rules (decisions §11), one line each, only those that differ from a plain pool.
function showRules(element, pool) {
  const lines = [];
  if (pool.min_dividend !== undefined && Number(pool.min_dividend) > 1) {
    lines.push(["min-dividend", `minimum dividend ${pool.min_dividend} per 1 staked`]);
  }
  if (pool.guarantee !== undefined && pool.guarantee !== null) {
    lines.push(["guarantee", `guaranteed pool ${money(pool.guarantee)}`]);
  }
  if (pool.carried_in !== undefined && Number(pool.carried_in) > 0) {
    lines.push(["carried-in", `carried in ${money(pool.carried_in)}`]);
  }
  if (pool.bet_delay_ms) {
    const seconds = Number(pool.bet_delay_ms) / 1000;
    lines.push(["bet-delay", `your bet is placed in ${seconds} s`]);
  }
  const list = $(".pool-rules", element);
  for (const [name, text] of lines) {
    const item = document.createElement("li");
    item.className = `rule-${name}`;
    item.textContent = text;
    list.append(item);
  }
}

function updateDistribution(poolId, distribution) {
  const entry = state.pools.get(poolId);
  if (!entry || !distribution) return;
  const amounts = Object.values(distribution).map((d) => Number(d.amount_total ?? d.backing_money));
  const total = amounts.reduce((a, b) => a + b, 0);
  for (const [target, info] of Object.entries(distribution)) {
    const row = entry.targets.get(target);
    if (!row) continue;
    const amount = Number(info.amount_total ?? info.backing_money);
    row.dataset.amount = String(amount);
    $(".fill", row).style.width = total > 0 ? `${(100 * amount) / total}%` : "0";
    $(".target-money", row).textContent = money(amount);
    if (entry.state !== "resolved") showPrice(row, info.to_win_if_backed);
  }
  entry.element.dataset.total = String(total);
  $(".pool-total", entry.element).textContent = money(total);
}

// Before a pool resolves, each target shows what one more unit staked on it would return
// if it won (the server's to_win_if_backed): it moves with every bet, so it says so.
function showPrice(row, toWinIfBacked) {
  const price = Number(toWinIfBacked).toFixed(2);
  const odds = $(".target-odds", row);
  odds.textContent = `pays ×${price}`;
  odds.title = `${money(1)} more on ${$(".target-name", row).textContent} would return ` +
    `${money(price)} if it wins (it moves as others bet)`;
}

function setPoolState(poolId, poolState) {
  const entry = state.pools.get(poolId);
  if (!entry || entry.state === "resolved") return;
  entry.state = poolState;
  entry.element.dataset.state = poolState;
  $(".pool-state", entry.element).textContent = poolState;
}

async function placeBet(poolId, element) {
  const amount = $(".bet-amount", element).value.trim();
  const target = $(".bet-target", element).value;
  await request(392, { pool_id: poolId, target, amount });
}

function noteMyBet(m) {
  const entry = state.pools.get(m.pool_id);
  if (!entry) return;
  entry.myBets += 1;
  const row = entry.targets.get(m.target);
  const item = document.createElement("li");
  item.textContent = `you bet ${money(m.amount)} on ${row ? $(".target-name", row).textContent : m.target}`;
  $(".my-bets", entry.element).append(item);
}

function resolvePool(m) {
  const entry = state.pools.get(m.pool_id);
  if (!entry) return;
  setPoolState(m.pool_id, "resolved");
  entry.state = "resolved";
  const result = $(".pool-result", entry.element);
  const won = m.winners && m.winners[String(state.user.id)];
  const dividend = m.is_money_return ? null : dividendPaid(entry, m);
  if (dividend) entry.element.dataset.dividend = dividend;
  for (const [target, row] of entry.targets) {
    const odds = $(".target-odds", row);
    odds.title = "";
    if (m.is_money_return) odds.textContent = "refunded";
    else if (target !== m.winning_target) odds.textContent = "lost";
    else odds.textContent = dividend ? `paid ×${dividend}` : "won";
  }
  const legend = $(".pool-legend", entry.element);
  if (m.is_money_return) {
    result.textContent = "void: every stake returned";
    legend.textContent = "";
    return;
  }
  const winner = entry.targets.get(m.winning_target);
  if (winner) winner.dataset.winner = "true";
  const name = winner ? $(".target-name", winner).textContent : m.winning_target;
  result.textContent = `${name} won` + (won ? ` · you won ${money(won)}` : "");
  if (entry.myBets) result.className = `pool-result ${won ? "won" : "lost"}`;
  legend.textContent = dividend
    ? `paid ×${dividend}: what each ${money(1)} staked on ${name} returned`
    : "";
}

// The dividend the winners were paid: what the 362 paid them all, over what was staked
// on the winning target (the last 360, which the server sends before the 362).
function dividendPaid(entry, m) {
  const paid = Object.values(m.winners || {}).reduce((sum, amount) => sum + Number(amount), 0);
  const winner = entry.targets.get(m.winning_target);
  const staked = winner ? Number(winner.dataset.amount) : 0;
  return paid > 0 && staked > 0 ? (paid / staked).toFixed(2) : null;
}

function noteEvent(m) {
  const item = document.createElement("li");
  const action = state.game && state.game.actions[m.action_id];
  item.textContent = m.text || `${action ? action.name : m.action_id}: ${m.target_id}`;
  $("#events").prepend(item);
}

// -- forms ----------------------------------------------------------------------------

async function logIn(event) {
  event.preventDefault();
  const name = $("#login-name").value;
  const response = await fetch("/v1/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name, password: $("#login-password").value }),
  });
  const body = await response.json();
  if (!response.ok) {
    showMessage(body.errorMessage || "Login failed.");
    return;
  }
  state.user = { id: body.id, name, key: body.user_session_key };
  try {
    await connect();
  } catch (error) {
    showMessage(error.message);
    return;
  }
  $("#who").textContent = name;
  $("#login-view").hidden = true;
  $("#game-picker").hidden = false;
  await request(810, { currency: state.config.currency });
  await request(850, { currency: state.config.currency });
  await listMyGames();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("game");
  if (wanted) {
    $("#game-id").value = wanted;
    await joinGame(wanted);
  } else {
    await showGameList();
  }
}

async function openPool(event) {
  event.preventDefault();
  const level = Number($("#pool-level").value);
  const targets = treeTargets(state.game.targets).filter((t) => t.level === level);
  await becomeGameAdmin();
  await request(385, {
    game_id: state.game.game_id,
    action: $("#pool-action").value,
    targets: targets.map((t) => t.id).join(","),
    description: $("#pool-description").value,
  });
}

async function registerEvent(event) {
  event.preventDefault();
  await becomeGameAdmin();
  await request(395, {
    game_id: state.game.game_id,
    action_id: $("#event-action").value,
    target_id: $("#event-target").value,
  });
}

async function start() {
  state.config = await (await fetch("/web/config.json")).json();
  $("#login-form").addEventListener("submit", logIn);
  $("#join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    joinGame($("#game-id").value.trim());
  });
  $("#open-pool-form").addEventListener("submit", openPool);
  $("#event-form").addEventListener("submit", registerEvent);
  $("#all-games").addEventListener("click", showGameList);
  $("#more-games").addEventListener("click", moreGames);
  document.body.dataset.ready = "true";
}

start();
