// The live stream: one WebSocket to /ws (docs/realtime.md). The token is sent in the first
// message, never in the URL. Every event id seen is remembered; after a drop the socket comes
// back and each channel is subscribed again with since=<last id>, so the missed events are
// replayed and none is applied twice. Where the replay cannot be complete (nothing seen yet,
// events pruned, more than the replay limit), views reload their state through the API.
// No polling while the socket is up; while it is down, views refresh every POLL_SECONDS.
import * as session from './session.js';

const POLL_SECONDS = 15;
const SEEN_LIMIT = 5000;
const EVENT_TYPES = new Set(['workflow_status_changed', 'task_execution_updated', 'hil_notification']);

class Live {
  constructor() {
    this.channels = new Set();
    this.pinned = new Set(); // held whatever the view (the notifications panel's)
    this.listeners = new Set();
    this.lastId = null;
    this.seen = new Set();
    this.received = []; // the ids of the last events applied, in order (what the tests read)
    this.ws = null;
    this.state = 'idle';
    this.everLive = false;
    this.failures = 0;
    this.pollTimer = null;
    this.retryTimer = null;
    this.available = document.body.dataset.realtime !== 'off';
    session.onChange((current) => {
      if (current && this.ws?.readyState === WebSocket.OPEN) this.send({ type: 'auth', token: current.accessToken });
      if (!current) this.stop();
    });
  }

  on(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(message) {
    for (const listener of [...this.listeners]) {
      try {
        listener(message);
      } catch (error) {
        console.error(error);
      }
    }
  }

  setState(state, detail) {
    this.state = state;
    const el = document.getElementById('connection');
    if (el) {
      el.dataset.state = state;
      el.textContent = {
        live: 'live',
        connecting: 'connecting…',
        reconnecting: 'reconnecting… (catching up when back)',
        polling: `no live updates: refreshing every ${POLL_SECONDS} s`,
        unavailable: `live updates are not available here: refreshing every ${POLL_SECONDS} s`,
        idle: 'offline',
      }[state] || state;
      if (detail) el.title = detail;
    }
    if (state === 'live') this.stopPolling();
    else if (state === 'polling' || state === 'unavailable') this.startPolling();
  }

  startPolling() {
    if (this.pollTimer) return;
    this.pollTimer = setInterval(() => this.emit({ type: 'reload', reason: 'poll' }), POLL_SECONDS * 1000);
  }

  stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  start() {
    if (!this.available) {
      this.setState('unavailable');
      return;
    }
    if (this.ws) return;
    this.connect();
  }

  stop() {
    clearTimeout(this.retryTimer);
    this.stopPolling();
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000);
      this.ws = null;
    }
    this.channels.clear();
    this.pinned.clear();
    this.lastId = null;
    this.seen.clear();
    this.everLive = false;
    this.setState('idle');
  }

  connect() {
    this.setState(this.everLive ? 'reconnecting' : 'connecting');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: session.token() }));
    ws.onmessage = (message) => this.receive(JSON.parse(message.data));
    ws.onclose = (close) => this.closed(close);
  }

  send(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  receive(message) {
    if (message.type === 'authenticated') {
      const resuming = this.everLive;
      this.everLive = true;
      this.failures = 0;
      for (const channel of this.channels) this.subscribeOnSocket(channel);
      this.setState('live');
      // Back after a drop with no event seen before it: nothing to resume from, so reload.
      if (resuming && this.lastId === null) this.emit({ type: 'reload', reason: 'resume' });
      return;
    }
    if (message.type === 'replayed') {
      if (!message.complete) this.emit({ type: 'reload', reason: 'replay-incomplete' });
      return;
    }
    if (message.type === 'error') {
      this.emit({ type: 'stream-error', error: message.error || message });
      return;
    }
    if (!EVENT_TYPES.has(message.type) || typeof message.id !== 'number') return;
    if (this.seen.has(message.id)) return;
    this.seen.add(message.id);
    if (this.seen.size > SEEN_LIMIT) this.seen.delete(this.seen.values().next().value);
    if (this.lastId === null || message.id > this.lastId) this.lastId = message.id;
    this.received.push(message.id);
    if (this.received.length > SEEN_LIMIT) this.received.shift();
    this.emit(message);
  }

  closed(close) {
    this.ws = null;
    if (!session.token()) return;
    if (close.code === 4003) {
      session.signOut();
      return;
    }
    this.failures += 1;
    // Before it was ever up, a few failed handshakes mean the socket is not served here.
    if (!this.everLive && this.failures >= 3) this.setState('polling', `closed ${close.code}`);
    else this.setState(this.everLive && this.failures < 4 ? 'reconnecting' : 'polling', `closed ${close.code}`);
    const delay = Math.min(10000, 250 * 2 ** Math.min(this.failures, 6)) * (0.75 + Math.random() / 2);
    const again = () => { this.retryTimer = setTimeout(() => this.connect(), delay); };
    if (close.code === 4001 || close.code === 4002) session.refresh().then(again, () => session.signOut());
    else again();
  }

  subscribeOnSocket(channel) {
    const message = { type: 'subscribe', channel };
    if (this.lastId !== null) message.since = this.lastId;
    this.send(message);
  }

  subscribe(channel) {
    if (this.channels.has(channel)) return;
    this.channels.add(channel);
    if (this.state === 'live') this.subscribeOnSocket(channel);
  }

  unsubscribe(channel) {
    if (!this.channels.delete(channel)) return;
    if (this.state === 'live') this.send({ type: 'unsubscribe', channel });
  }

  pin(channel) {
    this.pinned.add(channel);
    this.subscribe(channel);
  }

  // Exactly these channels (a view's own) besides the pinned ones, keeping those already held.
  only(channels) {
    const wanted = new Set(channels);
    for (const channel of [...this.channels]) {
      if (!wanted.has(channel) && !this.pinned.has(channel)) this.unsubscribe(channel);
    }
    for (const channel of wanted) this.subscribe(channel);
  }
}

export const live = new Live();
