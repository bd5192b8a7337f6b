// End-to-end check that an unmodified @stomp/stompjs client (with the `ws` WebSocket
// implementation, as Node 20 has no global WebSocket) chats through the real shoot-server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

const BIN = process.env.SHOOT_SERVER_BIN ?? '../../target/release/shoot-server';
let server;
let dataDir;
let base;
let wsUrl;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitFor(cond, what, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(async () => {
  const port = await freePort();
  dataDir = mkdtempSync(join(tmpdir(), 'shoot-stompjs-'));
  base = `http://127.0.0.1:${port}`;
  wsUrl = `ws://127.0.0.1:${port}/ws/chat`;
  server = spawn(BIN, [], {
    env: {
      ...process.env,
      SHOOT_HTTP_ADDR: `127.0.0.1:${port}`,
      SHOOT_DATA_DIR: dataDir,
      SHOOT_LIMITS_MESSAGES_PER_SECOND: '0',
      SHOOT_LOG_FORMAT: 'pretty',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  await waitFor(async () => {
    try {
      return (await fetch(`${base}/health`)).ok;
    } catch {
      return false;
    }
  }, 'the server to start', 30000);
});

after(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
});

async function api(method, path, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  return { status: res.status, ...json };
}

let counter = 0;
async function newUser(prefix) {
  counter += 1;
  const username = `${prefix}${counter}${Date.now() % 100000}`;
  const password = 'Sup3r-secret!';
  const signup = await api('POST', '/auth/signup', {
    username,
    nickname: prefix,
    email: `${username}@example.com`,
    password,
  });
  assert.equal(signup.status, 201, JSON.stringify(signup));
  const login = await api('POST', '/auth/login', { username, password });
  assert.equal(login.status, 200, JSON.stringify(login));
  return login.data;
}

function connect(token) {
  return new Promise((resolve, reject) => {
    const client = new Client({
      webSocketFactory: () => new WebSocket(wsUrl, ['v12.stomp', 'v11.stomp']),
      connectHeaders: { Authorization: `Bearer ${token}` },
      heartbeatIncoming: 10000,
      heartbeatOutgoing: 10000,
      reconnectDelay: 0,
    });
    client.onConnect = () => resolve(client);
    client.onStompError = (frame) => reject(new Error(frame.headers.message));
    client.onWebSocketError = (e) => reject(e);
    client.activate();
  });
}

test('two users chat through @stomp/stompjs and the sender sees SENDING → SAVED', async () => {
  const alice = await newUser('alice');
  const bob = await newUser('bob');
  const room = await api('POST', '/chatrooms', { type: 'DIRECT', participantIds: [bob.userId] }, alice.accessToken);
  assert.ok(room.status === 200 || room.status === 201, JSON.stringify(room));
  const roomId = room.data.id;

  const ca = await connect(alice.accessToken);
  const cb = await connect(bob.accessToken);
  try {
    const statuses = [];
    ca.subscribe(`/topic/message/status/${roomId}`, (m) => statuses.push(JSON.parse(m.body)));
    const received = [];
    cb.subscribe(`/topic/messages/${roomId}`, (m) => received.push(JSON.parse(m.body)));

    const receipt = new Promise((resolve) => ca.watchForReceipt('send-1', resolve));
    ca.publish({
      destination: '/app/chat',
      headers: { receipt: 'send-1' },
      body: JSON.stringify({ roomId, content: 'hello bob', tempId: 'tmp-1' }),
    });
    await receipt;

    await waitFor(() => received.some((m) => m.content?.text === 'hello bob'), 'bob to receive the message');
    const msg = received.find((m) => m.content?.text === 'hello bob');
    assert.equal(msg.senderId, alice.userId);
    assert.equal(msg.roomId, roomId);
    assert.equal(msg.seq, 1);

    await waitFor(() => statuses.some((s) => s.tempId === 'tmp-1' && s.status === 'SAVED'), 'SAVED');
    const sequence = statuses.filter((s) => s.tempId === 'tmp-1').map((s) => s.status);
    assert.deepEqual(sequence, ['SENDING', 'SENT_TO_KAFKA', 'PROCESSING', 'SAVED']);
    const saved = statuses.find((s) => s.status === 'SAVED');
    assert.equal(saved.persistedId, msg.id);

    const history = await api('GET', `/messages/${roomId}`, undefined, bob.accessToken);
    assert.equal(history.status, 200);
    assert.deepEqual(history.data.map((m) => m.content.text), ['hello bob']);
  } finally {
    await ca.deactivate();
    await cb.deactivate();
  }
});

test('subscribing to a room one is not in yields an ERROR frame, not data', async () => {
  const alice = await newUser('alice');
  const bob = await newUser('bob');
  const carol = await newUser('carol');
  const room = await api('POST', '/chatrooms', { type: 'DIRECT', participantIds: [bob.userId] }, alice.accessToken);
  const roomId = room.data.id;

  const cc = await connect(carol.accessToken);
  try {
    const error = new Promise((resolve) => {
      cc.onStompError = (frame) => resolve(frame);
    });
    cc.subscribe(`/topic/messages/${roomId}`, () => assert.fail('carol must not receive data'));
    const frame = await error;
    assert.match(frame.headers.message ?? '', /./);
  } finally {
    await cc.deactivate();
  }
});
