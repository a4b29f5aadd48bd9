// The notifications panel: unread count in the header, the newest notifications, mark read,
// jump to the workflow. Live through the `notifications` channel.
import { get, post } from '../api.js';
import { live } from '../live.js';
import * as session from '../session.js';
import { h, replace, when, label } from '../dom.js';

export function notificationsPanel() {
  const panel = document.getElementById('notifications');
  const button = document.getElementById('notifications-button');
  const unread = document.getElementById('unread');
  let items = [];

  async function load() {
    try {
      const data = await get('/api/views/notifications?limit=30');
      items = data.notifications || [];
      unread.textContent = String(data.unreadCount ?? 0);
      unread.dataset.count = String(data.unreadCount ?? 0);
      render();
    } catch (error) {
      replace(panel, h('p', { class: 'error', role: 'alert' }, error.message));
    }
  }

  function target(item) {
    if (!item.workflowId) return null;
    return session.isHil() ? `#/workflows/${item.workflowId}` : `#/orders/${item.workflowId}`;
  }

  function render() {
    const list = h('ul', { class: 'notifications' }, items.map((item) => h('li', {
      class: item.readAt ? 'read' : 'unread', dataset: { id: item.id },
    },
    h('div', { class: 'n-head' }, h('span', { class: `badge priority-${String(item.priority).toLowerCase()}` }, label(item.priority)),
      ' ', h('strong', {}, item.title || label(item.notificationType))),
    h('p', {}, item.message || ''),
    h('div', { class: 'n-foot' }, h('small', {}, when(item.createdAt)),
      target(item) ? h('a', { href: target(item), onclick: () => markRead([item.id]) }, 'Open workflow') : null,
      item.readAt ? null : h('button', { type: 'button', onclick: () => markRead([item.id]) }, 'Mark read')))));
    replace(panel,
      h('div', { class: 'panel-head' }, h('h2', {}, 'Notifications'),
        h('button', { type: 'button', onclick: () => markAll() }, 'Mark all read'),
        h('button', { type: 'button', onclick: () => toggle(false), 'aria-label': 'Close notifications' }, '×')),
      items.length ? list : h('p', { class: 'empty' }, 'No notifications.'));
  }

  async function markRead(ids) {
    await post('/api/views/notifications/read', { ids });
    await load();
  }

  async function markAll() {
    await post('/api/views/notifications/read', { all: true });
    await load();
  }

  function toggle(open = panel.hidden) {
    panel.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    if (open) panel.querySelector('button')?.focus();
  }

  button.addEventListener('click', () => toggle());
  live.pin('notifications');
  live.on((message) => {
    if (message.type === 'hil_notification' || message.type === 'reload') load();
  });
  load();
  return { load };
}
