// A minimal STOMP 1.2 client over the browser WebSocket: CONNECT with headers computed per
// attempt (fresh token), heart-beats both ways, subscriptions that survive reconnects,
// receipts, and reconnection with capped exponential backoff and jitter.

const NUL = '\0';

function escapeHeader(v) {
  return String(v).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/:/g, '\\c').replace(/\r/g, '\\r');
}

function unescapeHeader(v) {
  return v.replace(/\\(.)/g, (_, c) => ({ n: '\n', c: ':', r: '\r', '\\': '\\' })[c] ?? c);
}

function encodeFrame(command, headers, body = '') {
  let out = command + '\n';
  for (const [k, v] of Object.entries(headers)) {
    if (v !== undefined && v !== null) out += `${escapeHeader(k)}:${escapeHeader(v)}\n`;
  }
  return out + '\n' + body + NUL;
}

function parseFrame(text) {
  const split = text.indexOf('\n\n');
  const head = split < 0 ? text : text.slice(0, split);
  const body = split < 0 ? '' : text.slice(split + 2);
  const lines = head.split('\n').map((l) => l.replace(/\r$/, ''));
  const command = lines.shift();
  const headers = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const k = unescapeHeader(line.slice(0, i));
    if (!(k in headers)) headers[k] = command === 'CONNECT' ? line.slice(i + 1) : unescapeHeader(line.slice(i + 1));
  }
  return { command, headers, body };
}

export class StompClient {
  /**
   * @param {object} o
   * @param {string} o.url WebSocket URL
   * @param {() => Promise<object>} o.connectHeaders headers of each CONNECT (e.g. a fresh token)
   */
  constructor({ url, connectHeaders, heartbeat = 10000 }) {
    this.url = url;
    this.connectHeaders = connectHeaders;
    this.heartbeat = heartbeat;
    this.subs = new Map();
    this.receipts = new Map();
    this.nextId = 1;
    this.connected = false;
    this.active = false;
    this.attempt = 0;
    this.onConnect = () => {};
    this.onDisconnect = () => {};
    this.onStompError = () => {};
  }

  activate() {
    this.active = true;
    this.#open();
  }

  deactivate() {
    this.active = false;
    clearTimeout(this.retryTimer);
    this.ws?.close();
  }

  /** Drops the connection now (as a network failure would); it reconnects by itself. */
  drop() {
    this.ws?.close();
  }

  async #open() {
    if (!this.active) return;
    let headers;
    try {
      headers = await this.connectHeaders();
    } catch (e) {
      this.#scheduleRetry();
      return;
    }
    const ws = new WebSocket(this.url, ['v12.stomp', 'v11.stomp']);
    this.ws = ws;
    let buffer = '';
    ws.onopen = () => {
      ws.send(encodeFrame('CONNECT', {
        'accept-version': '1.2,1.1',
        host: location.host,
        'heart-beat': `${this.heartbeat},${this.heartbeat}`,
        ...headers,
      }));
    };
    ws.onmessage = (ev) => {
      this.lastSeen = Date.now();
      buffer += typeof ev.data === 'string' ? ev.data : new TextDecoder().decode(ev.data);
      let end;
      while ((end = buffer.indexOf(NUL)) >= 0) {
        const raw = buffer.slice(0, end).replace(/^[\r\n]+/, '');
        buffer = buffer.slice(end + 1);
        if (raw) this.#onFrame(parseFrame(raw));
      }
      buffer = buffer.replace(/^[\r\n]+/, '');
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.beatTimer);
      const was = this.connected;
      this.connected = false;
      for (const [, r] of this.receipts) r.reject(new Error('connection lost'));
      this.receipts.clear();
      if (was) this.onDisconnect();
      this.#scheduleRetry();
    };
    ws.onerror = () => {};
  }

  #scheduleRetry() {
    if (!this.active) return;
    const base = Math.min(15000, 500 * 2 ** Math.min(this.attempt, 5));
    this.attempt += 1;
    const delay = base / 2 + Math.random() * base / 2;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.#open(), delay);
  }

  #onFrame(frame) {
    switch (frame.command) {
      case 'CONNECTED': {
        this.connected = true;
        this.attempt = 0;
        const [sx, sy] = (frame.headers['heart-beat'] || '0,0').split(',').map(Number);
        const out = sy > 0 ? Math.max(this.heartbeat, sy) : 0;
        const inc = sx > 0 ? Math.max(this.heartbeat, sx) : 0;
        clearInterval(this.beatTimer);
        if (out || inc) {
          const tick = Math.min(...[out, inc].filter((x) => x > 0));
          this.beatTimer = setInterval(() => {
            if (out && this.ws?.readyState === WebSocket.OPEN) this.ws.send('\n');
            if (inc && Date.now() - this.lastSeen > inc * 2.5) this.ws?.close();
          }, tick);
        }
        for (const [id, s] of this.subs) this.#raw('SUBSCRIBE', { id, destination: s.destination, ack: 'auto' });
        this.onConnect();
        break;
      }
      case 'MESSAGE': {
        const sub = this.subs.get(frame.headers.subscription);
        if (sub) {
          let body = frame.body;
          try { body = JSON.parse(frame.body); } catch { /* not JSON */ }
          sub.callback(body, frame.headers);
        }
        break;
      }
      case 'RECEIPT': {
        const r = this.receipts.get(frame.headers['receipt-id']);
        if (r) {
          this.receipts.delete(frame.headers['receipt-id']);
          r.resolve(frame.headers);
        }
        break;
      }
      case 'ERROR':
        this.onStompError(frame);
        break;
      default:
        break;
    }
  }

  #raw(command, headers, body) {
    if (!this.connected || this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(encodeFrame(command, headers, body));
    return true;
  }

  /** Subscribes (now and after every reconnect); returns an unsubscribe function. */
  subscribe(destination, callback) {
    const id = `sub-${this.nextId++}`;
    this.subs.set(id, { destination, callback });
    this.#raw('SUBSCRIBE', { id, destination, ack: 'auto' });
    return () => {
      this.subs.delete(id);
      this.#raw('UNSUBSCRIBE', { id });
    };
  }

  /** Sends JSON; resolves with the RECEIPT headers, rejects when not connected or dropped. */
  send(destination, payload, { receipt = false } = {}) {
    const headers = { destination, 'content-type': 'application/json' };
    const body = JSON.stringify(payload);
    if (!receipt) {
      return this.#raw('SEND', headers, body) ? Promise.resolve({}) : Promise.reject(new Error('not connected'));
    }
    const id = `rcpt-${this.nextId++}`;
    return new Promise((resolve, reject) => {
      this.receipts.set(id, { resolve, reject });
      if (!this.#raw('SEND', { ...headers, receipt: id }, body)) {
        this.receipts.delete(id);
        reject(new Error('not connected'));
      }
    });
  }
}
