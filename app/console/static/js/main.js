// The console's entry: sign-in, the frame (navigation, connection state, notifications) and a
// router over location.hash. Each view renders into <main> and returns a function that undoes
// what it set up (listeners, subscriptions) when the person navigates away.
import * as session from './session.js';
import { live } from './live.js';
import { h, replace, field } from './dom.js';
import { notificationsPanel } from './views/notifications.js';
import { queueView } from './views/queue.js';
import { workflowView } from './views/workflow.js';
import { teamView } from './views/team.js';
import { reportsView } from './views/reports.js';
import { ordersView, newOrderView, orderView } from './views/orders.js';

const main = document.getElementById('main');
const header = document.querySelector('header.top');
let leave = null;
let panel = null;

function routes() {
  if (session.isHil()) {
    return [
      [/^#\/queue(?:\?(.*))?$/, queueView],
      [/^#\/workflows\/([0-9a-f-]{36})$/, workflowView],
      ...(session.isManager() ? [[/^#\/team$/, teamView], [/^#\/reports$/, reportsView]] : []),
    ];
  }
  return [
    [/^#\/orders$/, ordersView],
    [/^#\/orders\/new$/, newOrderView],
    [/^#\/orders\/([0-9a-f-]{36})$/, orderView],
  ];
}

function home() {
  return session.isHil() ? '#/queue' : '#/orders';
}

function navigation() {
  const links = session.isHil()
    ? [['#/queue', 'Queue'], ...(session.isManager() ? [['#/team', 'Team'], ['#/reports', 'Performance & SLA']] : [])]
    : [['#/orders', 'Orders'], ['#/orders/new', 'New order']];
  replace(document.getElementById('nav'), links.map(([href, caption]) =>
    h('a', { href, 'aria-current': location.hash === href ? 'page' : null }, caption)));
}

async function route() {
  if (!session.person()) return;
  if (leave) {
    leave();
    leave = null;
  }
  if (!location.hash || location.hash === '#' || location.hash === '#/') {
    location.replace(home());
    return;
  }
  navigation();
  for (const [pattern, view] of routes()) {
    const match = location.hash.match(pattern);
    if (match) {
      replace(main);
      main.dataset.view = view.name;
      try {
        leave = (await view(main, ...match.slice(1))) || null;
      } catch (error) {
        replace(main, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, error.message));
      }
      main.dataset.loadedAt = String(Date.now());
      return;
    }
  }
  replace(main, h('h1', {}, 'Not here'), h('p', {}, 'There is nothing at this address for you. '),
    h('a', { href: home() }, 'Back'));
  main.dataset.view = 'notHere';
  main.dataset.loadedAt = String(Date.now());
}

function signedIn() {
  const who = session.person();
  header.hidden = false;
  replace(document.getElementById('who'), `${who.email || ''} · ${(who.role || '').replace('_', ' ')}`);
  panel ||= notificationsPanel();
  live.pin('notifications');
  panel.load();
  live.start();
  route();
}

function signInForm(message) {
  header.hidden = true;
  const methods = (document.body.dataset.signIn || '').split(' ').filter(Boolean);
  const error = h('p', { class: 'error', role: 'alert' }, message || '');
  const children = [h('h1', {}, 'Sign in to Rexera')];
  if (methods.includes('password')) {
    const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
    const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
    const form = h('form', {
      class: 'sign-in',
      onsubmit: async (event) => {
        event.preventDefault();
        error.textContent = '';
        try {
          await session.withPassword(email.value, password.value);
          signedIn();
        } catch (e) {
          error.textContent = e.message;
        }
      },
    }, field('E-mail', email), field('Password', password), h('button', { type: 'submit' }, 'Sign in'));
    children.push(form);
  }
  if (methods.includes('code')) {
    children.push(h('p', {}, 'Local sign-in is on: open one of the sign-in links that ',
      h('code', {}, 'python3 scripts/local.py'), ' prints (or ', h('code', {}, 'python3 scripts/local.py links'), ').'));
  }
  if (!methods.length) {
    children.push(h('p', {}, 'No sign-in is configured on this service: set SUPABASE_URL and SUPABASE_ANON_KEY ',
      '(Supabase Auth), or CONSOLE_LOCAL_SIGN_IN=on locally.'));
  }
  children.push(error);
  replace(main, h('section', { class: 'sign-in-page' }, children));
  main.dataset.view = 'signIn';
}

async function start() {
  session.onChange((current) => { if (!current) signInForm('You are signed out.'); });
  document.getElementById('sign-out').addEventListener('click', () => session.signOut());
  window.addEventListener('hashchange', route);
  // A local sign-in link: #code=<one-time code>. The code is spent at once and dropped from the
  // address bar and history.
  const code = new URLSearchParams(location.hash.slice(1)).get('code');
  if (code) {
    history.replaceState(null, '', location.pathname);
    try {
      await session.withCode(code);
      signedIn();
    } catch (e) {
      signInForm(e.message);
    }
    return;
  }
  try {
    await session.refresh();
    signedIn();
  } catch {
    signInForm('');
  }
}

// The stream's state, for whoever looks (the browser tests do); it holds no token.
window.rexeraLive = live;
start();
