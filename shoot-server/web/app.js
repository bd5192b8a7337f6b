// Shoot web client: vanilla ES module over the REST API (/api/v1) and STOMP (/ws/chat).
// Every piece of user content goes into the DOM through textContent or attributes, never as
// markup.
import { StompClient } from './stomp.js';

const $ = (id) => document.getElementById(id);
const API = '/api/v1';

// ---------------------------------------------------------------- DOM helper
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') el.textContent = v;
    else if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}
const btn = (label, onclick, props = {}) => h('button', { type: 'button', onclick, ...props }, label);
const safeUrl = (u) => (typeof u === 'string' && /^https?:\/\//i.test(u) ? u : null);

function toast(text) {
  const t = h('div', { class: 'toast', text });
  $('toasts').append(t);
  setTimeout(() => t.remove(), 5000);
}

// ---------------------------------------------------------------- auth + REST
let auth = JSON.parse(sessionStorage.getItem('shoot.auth') || 'null');
let refreshing = null;

function saveAuth(a) {
  auth = a;
  if (a) sessionStorage.setItem('shoot.auth', JSON.stringify(a));
  else sessionStorage.removeItem('shoot.auth');
}

function tokenExpiresSoon() {
  try {
    const payload = JSON.parse(atob(auth.accessToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return payload.exp * 1000 - Date.now() < 30000;
  } catch {
    return false;
  }
}

function refresh() {
  refreshing ??= (async () => {
    try {
      const res = await fetch(`${API}/auth/refresh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refreshToken: auth?.refreshToken }),
      });
      const json = await res.json().catch(() => ({}));
      if (!res.ok || !json.success) {
        if (res.status === 401 || res.status === 400) logout(false);
        throw new Error(json.message || 'session expired');
      }
      saveAuth({ userId: json.data.userId, accessToken: json.data.accessToken, refreshToken: json.data.refreshToken });
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

async function api(method, path, body, retried = false) {
  const headers = { 'content-type': 'application/json' };
  if (auth) headers.authorization = `Bearer ${auth.accessToken}`;
  const res = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401 && auth && !retried && !path.startsWith('/auth/')) {
    await refresh();
    return api(method, path, body, true);
  }
  const json = await res.json().catch(() => ({ success: false, message: res.statusText }));
  if (!res.ok || json.success === false) {
    const err = new Error(json.message || `HTTP ${res.status}`);
    err.code = json.errorCode;
    throw err;
  }
  return json.data;
}

const report = (e) => toast(e.message || String(e));

// ---------------------------------------------------------------- state
const state = {
  me: null,
  rooms: new Map(),
  users: new Map(), // id → {nickname, username}
  reactionTypes: [],
  // The open room: {id, messages: Map key→msg, oldestSeq, lastSeq, contiguousSeq, ahead: Set of
  // seqs received beyond a gap, syncing, stalls, hasMore, unsub[]}.
  room: null,
  thread: null, // {rootId, unsub}
  pending: new Map(), // tempId → {roomId, text, threadId, status}
  typing: new Map(), // userId → timer
};
let stomp = null;
let everConnected = false;

const nameOf = (id) => {
  if (id === state.me?.id) return 'You';
  const u = state.users.get(id);
  return u ? u.nickname || u.username : `user ${id}`;
};
const rememberUser = (u) => u && state.users.set(u.id ?? u.userId, { nickname: u.nickname, username: u.username });

// ---------------------------------------------------------------- login / signup
function showAuth() {
  $('auth-view').hidden = false;
  $('app-view').hidden = true;
  $('me-bar').hidden = true;
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  await login(f.get('login'), f.get('password'));
});

$('signup-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = Object.fromEntries(new FormData(e.target));
  try {
    await api('POST', '/auth/signup', f);
    await login(f.username, f.password);
  } catch (err) {
    $('auth-error').textContent = err.message;
  }
});

async function login(who, password) {
  try {
    const body = who.includes('@') ? { email: who, password } : { username: who, password };
    const t = await api('POST', '/auth/login', body);
    saveAuth({ userId: t.userId, accessToken: t.accessToken, refreshToken: t.refreshToken });
    $('auth-error').textContent = '';
    await start();
  } catch (err) {
    $('auth-error').textContent = err.message;
  }
}

function logout(callServer = true) {
  if (callServer && auth) api('POST', '/auth/logout', { refreshToken: auth.refreshToken }).catch(() => {});
  stomp?.deactivate();
  stomp = null;
  saveAuth(null);
  state.room = null;
  showAuth();
}
$('logout').addEventListener('click', () => logout());

$('me-status').addEventListener('change', (e) =>
  api('PUT', '/users/status', { status: e.target.value }).catch(report));

// ---------------------------------------------------------------- start
async function start() {
  try {
    state.me = await api('GET', '/users/me');
  } catch {
    return showAuth();
  }
  rememberUser(state.me);
  $('me-name').textContent = state.me.nickname;
  $('me-code').textContent = state.me.userCode;
  $('me-status').value = state.me.status === 'OFFLINE' ? 'ONLINE' : state.me.status;
  $('auth-view').hidden = true;
  $('app-view').hidden = false;
  $('me-bar').hidden = false;
  state.reactionTypes = await api('GET', '/messages/reactions/types').catch(() => []);
  await loadRooms();
  connect();
}

function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  stomp = new StompClient({
    url: `${proto}//${location.host}/ws/chat`,
    connectHeaders: async () => {
      if (tokenExpiresSoon()) await refresh();
      return { Authorization: `Bearer ${auth.accessToken}` };
    },
  });
  stomp.onConnect = () => {
    $('conn').textContent = 'Connected';
    if (everConnected) {
      // Catch up on what was missed while disconnected.
      stomp.send('/app/rooms', {}).catch(() => {});
      if (state.room) {
        state.room.syncing = false; // a sync asked before the drop has no answer coming
        requestSync(state.room);
      }
    }
    if (state.room) stomp.send('/app/active', { roomId: state.room.id }).catch(() => {});
    everConnected = true;
  };
  stomp.onDisconnect = () => {
    $('conn').textContent = 'Reconnecting…';
    for (const [tempId, p] of state.pending) if (p.status === 'sending') setStatus(tempId, 'failed');
  };
  stomp.onStompError = (frame) => {
    if (/token|auth/i.test(frame.headers.message || '')) refresh().catch(() => {});
  };
  $('conn').textContent = 'Connecting…';
  stomp.subscribe('/user/queue/room-updates', onRoomUpdate);
  stomp.subscribe('/user/queue/rooms', (body, headers) => {
    if (headers['event-type'] === 'ROOM_LIST' && Array.isArray(body)) setRooms(body);
    else loadRooms();
  });
  stomp.subscribe('/user/queue/message-status', onStatus);
  stomp.subscribe('/user/queue/sync', onSync);
  stomp.subscribe('/user/queue/notifications', (n) => {
    toast(n.actorId ? `${nameOf(n.actorId)} ${n.message}` : n.message);
    if (/FRIEND/.test(n.type ?? n.kind ?? '') && !$('tab-friends').hidden) loadFriends();
  });
  stomp.subscribe('/user/queue/errors', (e, headers) => {
    if (headers['event-type'] !== 'MESSAGE_FAILED') toast(`${e.errorCode}: ${e.message}`);
  });
  stomp.subscribe('/user/queue/presence', () => {
    if (!$('tab-friends').hidden) loadFriends();
  });
  stomp.activate();
}

// ---------------------------------------------------------------- rooms
function roomTitle(r) {
  if (r.title) return r.title;
  const others = (r.participants || []).filter((p) => p.userId !== state.me.id);
  return others.map((p) => p.nickname || p.username || p.userId).join(', ') || 'Just you';
}

async function loadRooms() {
  try {
    setRooms(await api('GET', '/chatrooms'));
  } catch (e) {
    report(e);
  }
}

function setRooms(list) {
  state.rooms = new Map(list.map((r) => [r.id, r]));
  for (const r of list) for (const p of r.participants || []) rememberUser({ id: p.userId, ...p });
  renderRooms();
}

function onRoomUpdate(u) {
  const r = state.rooms.get(u.roomId);
  if (!r) return loadRooms();
  r.unreadCount = state.room?.id === u.roomId && document.visibilityState === 'visible' ? 0 : u.unreadCount;
  if (u.lastMessage) {
    r.lastMessage = u.lastMessage;
    r.lastActivityAt = u.lastMessage.createdAt;
  }
  renderRooms();
}

function renderRooms() {
  const rooms = [...state.rooms.values()].sort(
    (a, b) => (b.favorite - a.favorite) || String(b.lastActivityAt).localeCompare(String(a.lastActivityAt)),
  );
  $('room-list').replaceChildren(
    ...rooms.map((r) => {
      const last = r.lastMessage;
      const lastText = last ? `${nameOf(last.senderId)}: ${last.content.isDeleted ? 'deleted' : last.content.text}` : 'No messages yet';
      return h('li', { class: state.room?.id === r.id ? 'active' : '', dataset: { roomId: r.id } },
        h('button', { type: 'button', class: 'room-open', onclick: () => openRoom(r.id), 'aria-current': state.room?.id === r.id ? 'true' : null },
          h('span', { class: 'room-title', text: roomTitle(r) }),
          r.unreadCount > 0 ? h('span', { class: 'badge', text: String(r.unreadCount), 'aria-label': `${r.unreadCount} unread` }) : h('span'),
          h('span', { class: 'room-last', text: lastText })),
        btn('★', () => toggleFavorite(r), { class: 'fav', 'aria-pressed': String(!!r.favorite), 'aria-label': `Favourite ${roomTitle(r)}` }));
    }));
}

async function toggleFavorite(r) {
  await api(r.favorite ? 'DELETE' : 'POST', `/chatrooms/${r.id}/favorite`).catch(report);
  loadRooms();
}

async function resolveUser(who) {
  who = who.trim().replace(/^@/, '');
  if (/^[A-Za-z0-9]{4,12}$/.test(who)) {
    try {
      return await api('GET', `/users/find-by-code?code=${encodeURIComponent(who.toUpperCase())}`);
    } catch { /* not a code: try a name */ }
  }
  const found = await api('GET', `/users/search?q=${encodeURIComponent(who)}`);
  const exact = found.find((u) => u.username.toLowerCase() === who.toLowerCase());
  if (!exact && found.length !== 1) throw new Error(`no single user matches "${who}"`);
  return exact || found[0];
}

async function startDirect(userId) {
  const room = await api('POST', '/chatrooms', { type: 'DIRECT', participantIds: [userId] });
  await loadRooms();
  await openRoom(room.id);
}

$('direct-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const u = await resolveUser(new FormData(e.target).get('who'));
    await startDirect(u.id);
    e.target.reset();
  } catch (err) {
    report(err);
  }
});

$('group-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  try {
    const users = await Promise.all(String(f.get('members')).split(',').filter((s) => s.trim()).map(resolveUser));
    const room = await api('POST', '/chatrooms', { type: 'GROUP', title: f.get('title'), participantIds: users.map((u) => u.id) });
    e.target.reset();
    await loadRooms();
    await openRoom(room.id);
  } catch (err) {
    report(err);
  }
});

// ---------------------------------------------------------------- tabs
for (const tab of document.querySelectorAll('[data-tab]')) {
  tab.addEventListener('click', () => {
    for (const t of document.querySelectorAll('[data-tab]')) {
      t.setAttribute('aria-selected', String(t === tab));
      $(`tab-${t.dataset.tab}`).hidden = t !== tab;
    }
    ({ friends: loadFriends, bookmarks: loadBookmarks, scheduled: loadSchedules, rooms: loadRooms })[tab.dataset.tab]();
  });
}

// ---------------------------------------------------------------- friends
function personRow(u, ...actions) {
  u ??= { id: '', nickname: 'unknown', username: 'unknown' };
  rememberUser(u);
  const label = `${u.nickname} (@${u.username})${u.status ? ` · ${u.status.toLowerCase()}` : ''}`;
  return h('li', {}, h('span', { text: label }), ...actions);
}
const act = (label, fn) => btn(label, async () => {
  try {
    await fn();
  } catch (e) {
    report(e);
  }
  loadFriends();
});

async function loadFriends() {
  try {
    const [friends, reqs, recs, blocked] = await Promise.all([
      api('GET', '/users/friends'),
      api('GET', '/users/friends/requests'),
      api('GET', '/users/recommendations?limit=10').catch(() => []),
      api('GET', '/users/blocked'),
    ]);
    $('friends').replaceChildren(...friends.map((u) => personRow(u,
      btn('Chat', () => startDirect(u.id).catch(report)),
      act('Remove', () => api('DELETE', `/users/friends/${u.id}`)),
      act('Block', () => api('POST', '/users/block', { targetUserId: u.id })))));
    $('requests').replaceChildren(
      ...reqs.incoming.filter((r) => r.status === 'PENDING').map((r) => personRow(r.fromUser,
        act('Accept', () => api('POST', `/users/friends/requests/${r.requestId}/accept`)),
        act('Reject', () => api('POST', `/users/friends/requests/${r.requestId}/reject`)))),
      ...reqs.outgoing.filter((r) => r.status === 'PENDING').map((r) => personRow(r.toUser,
        h('em', { text: 'sent' }),
        act('Cancel', () => api('DELETE', `/users/friends/requests/${r.requestId}`)))));
    $('recommendations').replaceChildren(...recs.map((r) => personRow(r.user,
      h('small', { text: `${r.mutualFriends} mutual` }),
      act('Add friend', () => api('POST', '/users/friends/requests', { targetUserId: r.user.id })))));
    $('blocked').replaceChildren(...blocked.map((u) => personRow(u,
      act('Unblock', () => api('DELETE', `/users/block/${u.id}`)))));
  } catch (e) {
    report(e);
  }
}

$('search-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const q = new FormData(e.target).get('q');
    const found = await api('GET', `/users/search?q=${encodeURIComponent(q)}`);
    $('search-results').replaceChildren(...found.filter((u) => u.id !== state.me.id).map((u) => personRow(u,
      btn('Chat', () => startDirect(u.id).catch(report)),
      act('Add friend', () => api('POST', '/users/friends/requests', { targetUserId: u.id })),
      act('Block', () => api('POST', '/users/block', { targetUserId: u.id })))));
  } catch (err) {
    report(err);
  }
});

// ---------------------------------------------------------------- bookmarks + schedules
async function loadBookmarks() {
  try {
    const list = await api('GET', '/messages/bookmarks');
    $('bookmarks').replaceChildren(...list.map((b) => h('li', {},
      h('span', { text: b.message ? `${nameOf(b.message.senderId)}: ${b.message.content.text}` : `message ${b.messageId}` }),
      btn('Open', () => openRoom(b.roomId)),
      btn('Remove', async () => {
        await api('DELETE', `/messages/bookmark/${b.messageId}`).catch(report);
        loadBookmarks();
      }))));
  } catch (e) {
    report(e);
  }
}

async function loadSchedules() {
  try {
    const list = await api('GET', '/messages/schedule');
    $('schedules').replaceChildren(...list.map((s) => h('li', {},
      h('span', { text: `${new Date(s.scheduledAt).toLocaleString()}${s.repeat ? ` (${s.repeat.toLowerCase()})` : ''} · ${s.status.toLowerCase()}: ${s.content}` }),
      s.status === 'PENDING' ? btn('Cancel', async () => {
        await api('DELETE', `/messages/schedule/${s.id}`).catch(report);
        loadSchedules();
      }) : null)));
  } catch (e) {
    report(e);
  }
}

$('schedule-btn').addEventListener('click', async () => {
  const form = $('composer');
  const text = form.elements.text.value.trim();
  const at = form.elements.at.value;
  if (!text || !at || !state.room) return toast('Write a message and pick a time');
  try {
    await api('POST', '/messages/schedule', {
      roomId: state.room.id,
      content: text,
      scheduledAt: new Date(at).toISOString(),
      repeat: form.elements.repeat.value || undefined,
    });
    form.elements.text.value = '';
    toast('Message scheduled');
  } catch (e) {
    report(e);
  }
});

// ---------------------------------------------------------------- chat view
async function openRoom(roomId) {
  if (state.room?.id === roomId) return;
  for (const u of state.room?.unsub ?? []) u();
  closeThread();
  const r = state.rooms.get(roomId) ?? (await api('GET', `/chatrooms/${roomId}`));
  for (const p of r.participants || []) rememberUser({ id: p.userId, ...p });
  state.room = {
    id: roomId, messages: new Map(), oldestSeq: null, lastSeq: 0, contiguousSeq: 0, ahead: new Set(),
    loaded: false, syncing: false, stalls: 0, hasMore: true, unsub: [],
  };
  state.typing.clear();
  $('chat-empty').hidden = true;
  $('chat-main').hidden = false;
  $('chat-title').textContent = roomTitle(r);
  $('messages').replaceChildren();
  $('typing').textContent = '';
  $('presence').textContent = '';
  renderRooms();
  const room = state.room;
  room.unsub.push(
    stomp.subscribe(`/topic/messages/${roomId}`, (b, hd) => room === state.room && onRoomEvent(b, hd)),
    stomp.subscribe(`/topic/typing/${roomId}`, (b) => room === state.room && onTyping(b)),
    stomp.subscribe(`/topic/active/${roomId}`, (b) => room === state.room && onActive(b)),
  );
  stomp.send('/app/active', { roomId }).catch(() => {});
  try {
    const page = await api('GET', `/messages/${roomId}?limit=50`);
    if (room !== state.room) return;
    room.hasMore = page.length >= 50;
    // The newest page: everything up to its last message is known (older ones are history).
    room.contiguousSeq = Math.max(room.contiguousSeq, ...page.map((m) => m.seq || 0));
    room.loaded = true;
    for (const m of page) upsert(m);
    // Live messages that arrived while the page loaded, beyond a gap after it.
    noteSeq(room, 0);
    scrollToEnd();
    markRead();
    loadPins();
  } catch (e) {
    report(e);
  }
}

function scrollToEnd() {
  const list = $('messages');
  list.scrollTop = list.scrollHeight;
}

function markRead() {
  const r = state.rooms.get(state.room?.id);
  if (!state.room || !state.room.lastSeq) return;
  stomp.send('/app/read', { roomId: state.room.id, lastSeq: state.room.lastSeq }).catch(() => {});
  if (r && r.unreadCount) {
    r.unreadCount = 0;
    renderRooms();
  }
}
document.addEventListener('visibilitychange', () => document.visibilityState === 'visible' && markRead());

// Infinite scroll upward.
$('messages').addEventListener('scroll', async () => {
  const room = state.room;
  const list = $('messages');
  if (!room || room.loading || !room.hasMore || list.scrollTop > 60 || room.oldestSeq === null) return;
  room.loading = true;
  const before = list.scrollHeight;
  try {
    const page = await api('GET', `/messages/${room.id}?before=${room.oldestSeq}&limit=30`);
    if (room !== state.room) return;
    room.hasMore = page.length >= 30;
    for (const m of page) upsert(m);
    list.scrollTop += list.scrollHeight - before;
  } catch (e) {
    report(e);
  } finally {
    room.loading = false;
  }
});

// Gaps: `contiguousSeq` is the seq up to which the open room has no hole (set by its first page
// and by sync pages, which return every message after their cursor). A live message beyond
// `contiguousSeq + 1` means some were missed (a reconnect, or a message published while this
// subscription was being set up): sync from `contiguousSeq`, not from the highest seq seen.
function noteSeq(room, seq) {
  if (seq > room.contiguousSeq) room.ahead.add(seq);
  if (!room.loaded) return; // the first page sets where the room starts
  for (const s of room.ahead) if (s <= room.contiguousSeq) room.ahead.delete(s);
  while (room.ahead.delete(room.contiguousSeq + 1)) room.contiguousSeq += 1;
  if (room.ahead.size) requestSync(room);
}

function requestSync(room) {
  if (room.syncing) return; // onSync asks again if there is still a gap
  room.syncing = true;
  stomp
    .send('/app/sync', { roomId: room.id, lastSeq: room.contiguousSeq, direction: 'AFTER' })
    .catch(() => { room.syncing = false; });
}

function onSync(page) {
  const room = state.room;
  if (!room || page.roomId !== room.id) return;
  room.syncing = false;
  const atEnd = nearEnd();
  // The page holds every message after the cursor up to its last one.
  const last = Math.max(0, ...page.messages.map((m) => m.seq || 0));
  room.contiguousSeq = Math.max(room.contiguousSeq, last);
  for (const m of page.messages) upsert(m);
  for (const seq of room.ahead) if (seq <= room.contiguousSeq) room.ahead.delete(seq);
  while (room.ahead.delete(room.contiguousSeq + 1)) room.contiguousSeq += 1;
  if (atEnd) scrollToEnd();
  if (page.hasMore || room.ahead.size) {
    requestSync(room);
  } else if (page.latestSeq > room.contiguousSeq && room.stalls < 5) {
    // Durable but not stored yet (the store lags behind the log): ask again shortly.
    room.stalls += 1;
    setTimeout(() => room === state.room && requestSync(room), 500 * room.stalls);
  } else {
    room.stalls = 0;
    markRead();
  }
}

const nearEnd = () => {
  const l = $('messages');
  return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
};

function onRoomEvent(body, headers) {
  const type = headers['event-type'];
  if (type === 'MESSAGE_CREATED' || type === 'MESSAGE_EDITED') {
    const atEnd = nearEnd();
    upsert(body);
    if (type === 'MESSAGE_CREATED' && (atEnd || body.senderId === state.me.id)) scrollToEnd();
    if (type === 'MESSAGE_CREATED') markRead();
    if (body.threadId && state.thread?.rootId === body.threadId) upsertThread(body);
  } else if (body && body.message) {
    upsert(body.message);
    if (state.thread?.rootId === body.message.id || state.thread?.rootId === body.message.threadId) upsertThread(body.message);
    if (type === 'MESSAGE_PINNED' || type === 'MESSAGE_UNPINNED') loadPins();
  }
}

function onTyping(t) {
  if (t.userId === state.me.id) return;
  clearTimeout(state.typing.get(t.userId));
  if (t.isTyping) state.typing.set(t.userId, setTimeout(() => { state.typing.delete(t.userId); renderTyping(); }, 6000));
  else state.typing.delete(t.userId);
  renderTyping();
}
function renderTyping() {
  const names = [...state.typing.keys()].map(nameOf);
  $('typing').textContent = names.length ? `${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} typing…` : '';
}

function onActive(a) {
  const others = (a.userIds || []).filter((id) => id !== state.me.id).map(nameOf);
  $('presence').textContent = others.length ? `● online: ${others.join(', ')}` : '';
}

async function loadPins() {
  const room = state.room;
  try {
    const pins = await api('GET', `/messages/pins/${room.id}`);
    if (room !== state.room) return;
    $('pins').replaceChildren(...pins.map((m) => h('p', { text: `📌 ${nameOf(m.senderId)}: ${m.content.text}` })));
  } catch { /* pins are optional decoration */ }
}

// ---------------------------------------------------------------- messages
function keyOf(m) {
  return m.id ? `m:${m.id}` : `t:${m.tempId}`;
}

function pendingFor(m) {
  if (m.senderId !== state.me.id) return null;
  if (m.tempId && state.pending.has(m.tempId)) return state.pending.get(m.tempId);
  for (const p of state.pending.values()) if (m.id && p.messageId === m.id) return p;
  return null;
}

// A local (pending) entry becomes the stored message once the server knows its id.
function adopt(map, list, m) {
  if (!m.id || !m.tempId || !map.has(`t:${m.tempId}`)) return;
  map.delete(`t:${m.tempId}`);
  const el = list.querySelector(`[data-key="${CSS.escape(`t:${m.tempId}`)}"]`);
  if (el) el.dataset.key = keyOf(m);
  const p = pendingFor(m);
  if (p) p.messageId = m.id;
}

function upsert(m) {
  const room = state.room;
  if (!room || m.roomId !== room.id) return;
  room.lastSeq = Math.max(room.lastSeq, m.seq || 0);
  noteSeq(room, m.seq);
  if (m.seq && (room.oldestSeq === null || m.seq < room.oldestSeq)) room.oldestSeq = m.seq;
  if (m.threadId) return; // replies live in the thread panel
  const list = $('messages');
  adopt(room.messages, list, m);
  const key = keyOf(m);
  room.messages.set(key, m);
  const p = pendingFor(m);
  if (p && !m.pending && p.status !== 'saved') p.status = m.status === 'SAVED' ? 'saved' : 'sending';
  const el = renderMessage(m);
  const old = list.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (old) return old.replaceWith(el);
  // Keep the list ordered by seq (pending messages, without seq, go last).
  const seq = m.seq || Infinity;
  const after = [...list.children].find((c) => Number(c.dataset.seq || Infinity) > seq);
  list.insertBefore(el, after ?? null);
}

function statusOf(m) {
  if (m.senderId !== state.me.id) return null;
  const p = pendingFor(m);
  if (p) return p.status;
  return m.status === 'FAILED' ? 'failed' : m.status === 'SAVED' || !m.status ? 'saved' : 'sending';
}

const STATUS_TEXT = { sending: 'Sending…', saved: 'Saved', failed: 'Failed' };

function renderMessage(m, inThread = false) {
  const mine = m.senderId === state.me.id;
  const status = statusOf(m);
  const li = h('li', {
    class: `msg${mine ? ' mine' : ''}${m.content.isDeleted ? ' deleted' : ''}`,
    dataset: { key: keyOf(m), seq: m.seq ? String(m.seq) : '', id: m.id || '' },
  });
  const meta = h('div', { class: 'meta' },
    h('span', { class: 'sender', text: nameOf(m.senderId) }),
    h('time', { datetime: m.createdAt, text: m.createdAt ? new Date(m.createdAt).toLocaleTimeString() : '' }),
    m.content.isEdited && !m.content.isDeleted ? h('span', { text: '(edited)' }) : null,
    m.pinned ? h('span', { text: '📌 pinned' }) : null,
    m.forwardedFrom ? h('span', { text: '↪ forwarded' }) : null);
  if (status) meta.append(h('span', { class: 'status', dataset: { status }, text: STATUS_TEXT[status] }));
  li.append(meta, h('p', { class: 'text', text: m.content.isDeleted ? 'This message was deleted' : m.content.text }));
  const pv = m.content.urlPreview;
  if (pv && safeUrl(pv.url)) {
    const img = safeUrl(pv.imageUrl);
    li.append(h('a', { class: 'preview', href: pv.url, target: '_blank', rel: 'noopener noreferrer nofollow' },
      img ? h('img', { src: img, alt: '', loading: 'lazy', referrerpolicy: 'no-referrer' }) : null,
      h('span', {}, h('strong', { text: pv.title || pv.url }), h('br'), h('span', { text: pv.description || '' }))));
  }
  if (status === 'failed') {
    li.append(btn('Retry', () => sendChat(m.roomId, m.content.text, m.tempId, m.threadId), { class: 'retry' }));
  }
  if (m.pending || m.content.isDeleted) return li;
  const reactions = h('div', { class: 'reactions', 'aria-label': 'Reactions' });
  for (const [code, users] of Object.entries(m.reactions || {})) {
    if (!users.length) continue;
    const type = state.reactionTypes.find((t) => t.code === code);
    reactions.append(btn(`${type?.emoji ?? code} ${users.length}`, () => react(m, code), {
      'aria-pressed': String(users.includes(state.me.id)),
      'aria-label': `${type?.description ?? code}: ${users.map(nameOf).join(', ')}`,
      dataset: { reaction: code },
    }));
  }
  const actions = h('div', { class: 'actions' });
  const picker = h('div', { class: 'picker', hidden: true },
    ...state.reactionTypes.map((t) => btn(t.emoji, () => react(m, t.code), { 'aria-label': `React ${t.description}` })));
  actions.append(btn('React', () => { picker.hidden = !picker.hidden; }, { 'aria-label': 'Add reaction' }));
  if (!inThread) actions.append(btn(m.replyCount ? `Thread (${m.replyCount})` : 'Reply in thread', () => openThread(m.id)));
  if (mine) {
    actions.append(btn('Edit', () => editInline(li, m)));
    actions.append(btn('Delete', () => confirm('Delete this message?') && stomp.send('/app/delete', { messageId: m.id }).catch(report)));
  }
  actions.append(
    btn(m.pinned ? 'Unpin' : 'Pin', () => stomp.send('/app/pin/toggle', { messageId: m.id }).catch(report)),
    btn('Forward', () => forward(m)),
    btn('Bookmark', () => api('POST', '/messages/bookmark', { messageId: m.id }).then(() => toast('Bookmarked'), report)));
  li.append(reactions, actions, picker);
  return li;
}

function react(m, code) {
  stomp.send('/app/reaction', { messageId: m.id, reaction: code, action: 'TOGGLE' }).catch(report);
}

function editInline(li, m) {
  const input = h('input', { value: m.content.text, 'aria-label': 'Edit message', required: true });
  const form = h('form', { class: 'inline' }, input, h('button', { type: 'submit' }, 'Save'),
    btn('Cancel', () => form.replaceWith(text)));
  const text = li.querySelector('.text');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    stomp.send('/app/edit', { messageId: m.id, content: input.value }).catch(report);
    form.replaceWith(text);
  });
  text.replaceWith(form);
  input.focus();
}

function forward(m) {
  const dlg = $('forward-dialog');
  $('forward-rooms').replaceChildren(...[...state.rooms.values()].map((r) =>
    h('label', { class: 'check' }, h('input', { type: 'checkbox', value: r.id }), roomTitle(r))));
  $('forward-form').reset();
  dlg.onclose = async () => {
    if (dlg.returnValue !== 'ok') return;
    const targetRoomIds = [...$('forward-rooms').querySelectorAll('input:checked')].map((i) => i.value);
    if (!targetRoomIds.length) return;
    const note = $('forward-form').elements.note.value.trim();
    try {
      await api('POST', '/messages/forward', { messageId: m.id, targetRoomIds, additionalContent: note || undefined });
      toast('Forwarded');
    } catch (e) {
      report(e);
    }
  };
  dlg.showModal();
}

// ---------------------------------------------------------------- sending + statuses
function newTempId() {
  return `web-${crypto.randomUUID()}`;
}

function setStatus(tempId, status) {
  const p = state.pending.get(tempId);
  if (!p || p.status === 'saved') return;
  p.status = status;
  for (const key of [`t:${tempId}`, `m:${p.messageId}`]) {
    const m = state.room?.messages.get(key);
    if (m) upsert({ ...m });
    const tm = state.thread?.messages.get(key);
    if (tm) upsertThread({ ...tm });
  }
}

async function sendChat(roomId, text, tempId = newTempId(), threadId = null) {
  const known = state.pending.get(tempId);
  state.pending.set(tempId, { roomId, text, threadId, status: 'sending', messageId: known?.messageId });
  const local = {
    id: '', roomId, seq: 0, senderId: state.me.id, tempId, threadId, pending: true,
    content: { text, type: 'TEXT', isEdited: false, isDeleted: false }, reactions: {}, createdAt: new Date().toISOString(),
  };
  if (known?.messageId) setStatus(tempId, 'sending');
  else if (threadId) upsertThread(local);
  else upsert(local);
  if (!threadId) scrollToEnd();
  const payload = threadId ? { parentMessageId: threadId, content: text, tempId } : { roomId, content: text, tempId };
  try {
    await stomp.send(threadId ? '/app/thread' : '/app/chat', payload, { receipt: true });
  } catch {
    setStatus(tempId, 'failed');
  }
}

function onStatus(s) {
  if (!s.tempId || !state.pending.has(s.tempId)) return;
  if (s.status === 'SAVED') {
    if (s.persistedId) state.pending.get(s.tempId).messageId ??= s.persistedId;
    setStatus(s.tempId, 'saved');
  } else if (s.status === 'FAILED') {
    setStatus(s.tempId, 'failed');
    toast(`Message not sent: ${s.errorMessage || s.errorCode}`);
  }
}

let typingSentAt = 0;
$('composer-text').addEventListener('input', () => {
  if (!state.room || Date.now() - typingSentAt < 2000) return;
  typingSentAt = Date.now();
  stomp.send('/app/typing', { roomId: state.room.id, isTyping: true }).catch(() => {});
});
$('composer-text').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});
$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('composer-text').value.trim();
  if (!text || !state.room) return;
  $('composer-text').value = '';
  typingSentAt = 0;
  stomp.send('/app/typing', { roomId: state.room.id, isTyping: false }).catch(() => {});
  sendChat(state.room.id, text);
});

// ---------------------------------------------------------------- threads
async function openThread(rootId) {
  closeThread();
  const t = { rootId, messages: new Map(), unsub: null };
  state.thread = t;
  $('thread').hidden = false;
  $('thread-messages').replaceChildren();
  t.unsub = stomp.subscribe(`/topic/thread/${rootId}`, (b) => {
    if (state.thread !== t) return;
    const m = b.message ?? b;
    if (m && m.id) upsertThread(m);
  });
  try {
    const detail = await api('GET', `/messages/thread?parentId=${rootId}`);
    if (state.thread !== t) return;
    upsertThread(detail.root);
    for (const m of detail.replies) upsertThread(m);
  } catch (e) {
    report(e);
  }
  $('thread-text').focus();
}

function closeThread() {
  state.thread?.unsub?.();
  state.thread = null;
  $('thread').hidden = true;
}
$('thread-close').addEventListener('click', closeThread);

function upsertThread(m) {
  const t = state.thread;
  if (!t || (m.id !== t.rootId && m.threadId !== t.rootId)) return;
  const list = $('thread-messages');
  adopt(t.messages, list, m);
  const key = keyOf(m);
  t.messages.set(key, m);
  const el = renderMessage(m, true);
  const old = list.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (old) old.replaceWith(el);
  else list.append(el);
}

$('thread-composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('thread-text').value.trim();
  if (!text || !state.thread || !state.room) return;
  $('thread-text').value = '';
  sendChat(state.room.id, text, newTempId(), state.thread.rootId);
});

// ---------------------------------------------------------------- boot
if (auth) start();
else showAuth();
