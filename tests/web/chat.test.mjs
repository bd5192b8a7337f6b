// End-to-end: two users chat through the web client served by the real shoot-server, each in
// its own headless Chromium context (Debian's /usr/bin/chromium driven by playwright-core).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { chromium } from 'playwright-core';

const BIN = process.env.SHOOT_SERVER_BIN ?? '../../target/release/shoot-server';
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const SHOTS = new URL('./screenshots/', import.meta.url).pathname;
const TIMEOUT = 15000;

let server;
let port;
let dataDir;
let base;
let browser;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port: p } = srv.address();
      srv.close(() => resolve(p));
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

async function startServer() {
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
}

async function stopServer() {
  if (server && server.exitCode === null && server.signalCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
}

before(async () => {
  port = await freePort();
  dataDir = mkdtempSync(join(tmpdir(), 'shoot-web-'));
  base = `http://127.0.0.1:${port}`;
  mkdirSync(SHOTS, { recursive: true });
  await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
  await stopServer();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A browser session of its own; collects page errors and console errors (CSP violations). */
async function session() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(m.text())) {
      problems.push(`console: ${m.text()}`);
    }
  });
  await page.goto(base);
  return { context, page, problems };
}

async function signUp(page, username, nickname) {
  const form = page.getByRole('form', { name: 'Sign up' });
  await form.getByLabel('Username', { exact: true }).fill(username);
  await form.getByLabel('Nickname').fill(nickname);
  await form.getByLabel('E-mail').fill(`${username}@example.com`);
  await form.getByLabel('Password').fill('Sup3r-secret!');
  await form.getByRole('button', { name: 'Sign up' }).click();
  await page.getByRole('status').filter({ hasText: 'Connected' }).waitFor();
  const code = (await page.locator('#me-code').textContent()).trim();
  assert.match(code, /^[A-Z0-9]{4,12}$/);
  return code;
}

const message = (page, text) => page.locator('#messages > li').filter({ hasText: text });

async function send(page, text) {
  await page.getByRole('textbox', { name: 'Message', exact: true }).fill(text);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
}

test('two users chat in the browser: live messages, statuses, reactions, reconnect', async () => {
  const suffix = String(Date.now() % 100000);
  const a = await session();
  const b = await session();
  try {
    await signUp(a.page, `alice${suffix}`, 'Alice');
    const bobCode = await signUp(b.page, `bob${suffix}`, 'Bob');

    // Alice starts a direct chat with Bob by his user code.
    await a.page.getByLabel('Chat with (username or user code)').fill(bobCode);
    await a.page.getByRole('button', { name: 'Start chat' }).click();
    await a.page.getByRole('heading', { name: 'Bob', exact: true }).waitFor();

    // Her first message reaches Bob's room list live, with an unread badge.
    await send(a.page, 'Hello Bob!');
    const bobsRoom = b.page.getByRole('list', { name: 'Rooms' }).getByRole('button', { name: /^Alice/ });
    await bobsRoom.filter({ hasText: 'Hello Bob!' }).waitFor();
    await bobsRoom.getByLabel('1 unread').waitFor();
    await bobsRoom.click();
    await message(b.page, 'Hello Bob!').waitFor();
    await b.page.getByRole('heading', { name: 'Alice', exact: true }).waitFor();

    // With the room open, Bob sees new messages live.
    await send(a.page, 'Are you there?');
    await message(b.page, 'Are you there?').waitFor();

    // Bob replies; Alice sees the reply, and her own messages reach "Saved".
    await send(b.page, 'Hi Alice, loud and clear.');
    await message(a.page, 'Hi Alice, loud and clear.').waitFor();
    for (const text of ['Hello Bob!', 'Are you there?']) {
      await message(a.page, text).locator('.status[data-status="saved"]').waitFor();
    }
    await message(b.page, 'loud and clear').locator('.status', { hasText: 'Saved' }).waitFor();

    // Bob reacts with a like; Alice sees it.
    const target = message(b.page, 'Are you there?');
    await target.getByRole('button', { name: 'Add reaction' }).click();
    await target.getByRole('button', { name: 'React Like' }).click();
    await message(a.page, 'Are you there?').locator('.reactions button[data-reaction="like"]', { hasText: '1' }).waitFor();

    // User content is text, never markup.
    const hostile = '<img src=x onerror="window.__pwned=1"><b>bold?</b>';
    await send(b.page, hostile);
    const shown = message(a.page, 'bold?');
    await shown.waitFor();
    assert.equal(await shown.locator('.text').textContent(), hostile);
    assert.equal(await shown.locator('img, b').count(), 0);
    assert.equal(await a.page.evaluate(() => window.__pwned), undefined);

    await a.page.screenshot({ path: join(SHOTS, 'alice.png') });
    await b.page.screenshot({ path: join(SHOTS, 'bob.png') });

    // Typing indicator.
    await b.page.getByRole('textbox', { name: 'Message', exact: true }).pressSequentially('typ');
    await a.page.locator('#typing', { hasText: 'Bob is typing' }).waitFor();
    await b.page.getByRole('textbox', { name: 'Message', exact: true }).fill('');

    // Alice edits her message; Bob sees the new text marked as edited.
    const hello = message(a.page, 'Hello Bob!');
    await hello.getByRole('button', { name: 'Edit' }).click();
    await a.page.getByRole('textbox', { name: 'Edit message' }).fill('Hello Bob, edited');
    await a.page.getByRole('button', { name: 'Save' }).click();
    await message(b.page, 'Hello Bob, edited').filter({ hasText: '(edited)' }).waitFor();

    // Bob pins a message; Alice sees it in the pinned bar.
    await message(b.page, 'Are you there?').getByRole('button', { name: 'Pin', exact: true }).click();
    await a.page.locator('#pins', { hasText: 'Are you there?' }).waitFor();

    // Bob replies in a thread; Alice sees the reply count and the reply in her thread panel.
    await message(b.page, 'Are you there?').getByRole('button', { name: 'Reply in thread' }).click();
    await b.page.getByRole('textbox', { name: 'Reply in thread' }).fill('A reply in the thread');
    await b.page.getByRole('button', { name: 'Reply', exact: true }).click();
    await b.page.locator('#thread-messages > li', { hasText: 'A reply in the thread' }).locator('.status[data-status="saved"]').waitFor();
    await message(a.page, 'Are you there?').getByRole('button', { name: 'Thread (1)' }).click();
    await a.page.locator('#thread-messages > li', { hasText: 'A reply in the thread' }).waitFor();
    await a.page.getByRole('button', { name: 'Close thread' }).click();

    // Friends: Alice finds Bob and sends a request; Bob accepts it.
    await a.page.getByRole('tab', { name: 'Friends' }).click();
    await a.page.getByLabel('Find people').fill(`bob${suffix}`);
    await a.page.getByRole('button', { name: 'Search' }).click();
    await a.page.getByRole('list', { name: 'Search results' }).getByRole('button', { name: 'Add friend' }).click();
    await a.page.getByRole('list', { name: 'Friend requests' }).getByText('sent').waitFor();
    await b.page.getByRole('tab', { name: 'Friends' }).click();
    await b.page.getByRole('list', { name: 'Friend requests' }).getByRole('button', { name: 'Accept' }).click();
    await b.page.getByRole('list', { name: 'Friends' }).getByText(`Alice (@alice${suffix})`).waitFor();
    await a.page.getByRole('tab', { name: 'Chats' }).click();
    await b.page.getByRole('tab', { name: 'Chats' }).click();

    // Alice bookmarks a message, then finds it under Bookmarks.
    await message(a.page, 'loud and clear').getByRole('button', { name: 'Bookmark' }).click();
    await a.page.getByRole('tab', { name: 'Bookmarks' }).click();
    await a.page.locator('#bookmarks', { hasText: 'Bob: Hi Alice, loud and clear.' }).waitFor();

    // Alice schedules a message for tomorrow; it is listed as pending.
    await a.page.getByText('Schedule', { exact: true }).click();
    await a.page.getByRole('textbox', { name: 'Message', exact: true }).fill('See you tomorrow');
    await a.page.getByLabel('Send at', { exact: true }).fill('2099-01-01T09:30');
    await a.page.getByRole('button', { name: 'Schedule message' }).click();
    await a.page.getByRole('tab', { name: 'Scheduled' }).click();
    await a.page.locator('#schedules', { hasText: 'pending: See you tomorrow' }).waitFor();

    // Alice creates a group with Bob and forwards a message into it; Bob's list shows it live.
    await a.page.getByRole('tab', { name: 'Chats' }).click();
    await a.page.getByText('New group').click();
    await a.page.getByLabel('Title', { exact: true }).fill('Team');
    await a.page.getByLabel('Members (usernames or codes, comma separated)').fill(`bob${suffix}`);
    await a.page.getByRole('button', { name: 'Create group' }).click();
    await a.page.getByRole('heading', { name: 'Team', exact: true }).waitFor();
    await a.page.getByRole('list', { name: 'Rooms' }).getByRole('button', { name: /^Bob/ }).click();
    await message(a.page, 'Hello Bob, edited').getByRole('button', { name: 'Forward' }).click();
    await a.page.getByRole('dialog').getByLabel('Team').check();
    await a.page.getByRole('dialog').getByRole('button', { name: 'Forward' }).click();
    await b.page.getByRole('list', { name: 'Rooms' }).getByRole('button', { name: /^Team/ }).filter({ hasText: 'Hello Bob, edited' }).waitFor();

    // Server restart: both clients reconnect by themselves and keep chatting.
    await stopServer();
    await a.page.getByRole('status').filter({ hasText: 'Reconnecting' }).waitFor();
    await b.page.getByRole('status').filter({ hasText: 'Reconnecting' }).waitFor();
    await startServer();
    await a.page.getByRole('status').filter({ hasText: 'Connected' }).waitFor({ timeout: 30000 });
    await b.page.getByRole('status').filter({ hasText: 'Connected' }).waitFor({ timeout: 30000 });
    await send(a.page, 'Back after the restart');
    await message(b.page, 'Back after the restart').waitFor();
    await message(a.page, 'Back after the restart').locator('.status[data-status="saved"]').waitFor();
    await b.page.screenshot({ path: join(SHOTS, 'bob-after-restart.png') });

    assert.deepEqual(a.problems, []);
    assert.deepEqual(b.problems, []);
  } finally {
    await a.context.close();
    await b.context.close();
  }
});
