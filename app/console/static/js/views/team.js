// The manager's team view: who holds what, and what is overdue, by person (the dashboard's team).
import { get } from '../api.js';
import { live } from '../live.js';
import { barChart } from '../charts.js';
import { h, replace } from '../dom.js';

export async function teamView(main) {
  const chart = h('div', { class: 'chart-box' });
  const body = h('tbody');
  let timer = null;
  replace(main, h('h1', {}, 'Team'), h('p', {}, 'Open tasks held by each person; breached and at-risk ones first.'), chart,
    h('div', { class: 'table-wrap' }, h('table', { id: 'team' },
      h('thead', {}, h('tr', {}, ['Person', 'Role', 'Open tasks', 'At risk', 'Overdue (breached)', ''].map((c) => h('th', { scope: 'col' }, c)))),
      body)));

  async function load() {
    const data = await get('/api/views/dashboard?timeframe=today');
    const team = data.team || [];
    replace(chart, barChart(team.map((p) => ({
      label: p.fullName || p.email,
      segments: [
        { value: p.breached, kind: 'breached', caption: 'breached' },
        { value: p.atRisk, kind: 'at-risk', caption: 'at risk' },
        { value: p.openTasks - p.breached - p.atRisk, kind: 'on-time', caption: 'on time' },
      ],
    })), { title: 'Open tasks by person' }));
    replace(body, team.map((p) => h('tr', { dataset: { userId: p.userId } },
      h('td', {}, p.fullName || p.email), h('td', {}, (p.role || '').replace('_', ' ')),
      h('td', {}, String(p.openTasks)), h('td', {}, String(p.atRisk)), h('td', {}, String(p.breached)),
      h('td', {}, h('a', { href: `#/queue?assignedTo=${p.userId}` }, 'Their queue')))));
    main.dataset.loadedAt = String(Date.now());
  }

  const off = live.on(() => { clearTimeout(timer); timer = setTimeout(load, 500); });
  live.only(['workflows']);
  await load();
  return () => { off(); clearTimeout(timer); };
}
