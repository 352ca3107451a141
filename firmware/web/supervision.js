// hallq supervision dashboard (/supervision, supervisor role): every window's state,
// open help requests from the kiosks (acknowledged here), every queue with its longest
// wait, warnings (open first), today's figures and rating
// distribution, the follow-ups (回访整改) of bad ratings (overdue ones red), and the daily
// report per window or per service as CSV. A second tab, 统计分析 (period.js), shows any
// day, week, month or range with its charts, tables, CSVs and the printable 月通报. A warning is
// followed up here (预警纠错): its 处理 button opens the form below the list (outcome
// 处理 or 纠错, a note), and the list then says who handled it and when; a warning left
// unhandled past the hall's setting shows as escalated (已上报). It re-reads
// /api/v1/supervision whenever the live stream brings an event.
'use strict';

(() => {
  const { t, el, api, errorText } = HQ;
  HQ.useToken('hallq.token.supervision');
  const $ = (id) => document.getElementById(id);
  const LEVELS = ['非常满意', '满意', '基本满意', '不满意', '非常不满意'];

  let data = null;
  let stream = null;
  // The period section (统计分析, period.js), mounted at the first sign-in.
  let period = null;
  // The warning whose follow-up form is open (its seq), kept across re-renders.
  let handling = null;
  let warningsKey = '';

  function serviceName(code) {
    const s = data && data.services.find((x) => x.code === code);
    return s ? HQ.name(s.name) : code || '';
  }

  function showLogin(message) {
    HQ.setToken(null);
    $('dash').hidden = true;
    $('login').hidden = false;
    $('sign-out').hidden = true;
    $('who').textContent = '';
    $('login-message').textContent = message || '';
    if (period) period.hide();
  }

  async function signIn(ev) {
    ev.preventDefault();
    $('login-message').textContent = '';
    try {
      const r = await api('POST', '/api/v1/sessions', { staff_id: $('login-staff').value.trim(), pin: $('login-pin').value });
      HQ.setToken(r.token);
      sessionStorage.setItem('hallq.supervision.staff', JSON.stringify(r.staff));
      $('login-pin').value = '';
      await start();
    } catch (e) {
      $('login-pin').value = '';
      // Window staff have no dashboard: the controller says "wrong window", we say why.
      $('login-message').textContent = e.code === 'wrong_window' ? t('err_forbidden') : errorText(e);
      $('login-message').dataset.code = e.code || '';
    }
  }

  async function start() {
    await refresh();
    if (!data) return;
    const me = JSON.parse(sessionStorage.getItem('hallq.supervision.staff') || '{}');
    $('who').textContent = me.id ? t('signed_in_as', { name: me.name || '', id: me.id }) : '';
    $('login').hidden = true;
    $('dash').hidden = false;
    $('sign-out').hidden = false;
    if (!period) {
      period = HQP.mount({
        today: () => data && data.day,
        onAuth: (e) => showLogin(t(e.status === 401 ? 'err_sign_in_required' : 'err_forbidden')),
      });
    }
    period.show();
    if (!$('report-day').value) $('report-day').value = data.day;
    if (!stream) {
      stream = new HQ.Stream(() => refreshSoon(), onLive);
      stream.start();
      setInterval(refresh, 15000);
      setInterval(render, 1000);
    }
  }

  async function refresh() {
    if (!HQ.token()) return;
    try {
      data = await api('GET', '/api/v1/supervision');
      HQ.syncClock(data.now);
      render();
    } catch (e) {
      if (e.status === 401) showLogin(t('err_sign_in_required'));
      else if (e.status === 403) showLogin(t('err_forbidden'));
      else $('report-message').textContent = errorText(e);
    }
  }
  const refreshSoon = HQ.debounce(refresh, 300);

  function since(ms) { return ms ? HQ.duration((HQ.now() - ms) / 1000) : ''; }

  function warningText(w) {
    const secs = w.waited_secs ?? w.served_secs ?? w.paused_secs ?? w.unmanned_secs;
    const vars = {
      number: w.number || '', window: w.window ?? '', service: serviceName(w.service), waiting: w.waiting ?? '',
      t: secs !== undefined ? HQ.duration(secs) : '', device: w.device || '', code: w.code || w.detail || '',
    };
    const key = 'w_' + w.type;
    return HQ.t(key, vars) === key ? w.type : HQ.t(key, vars);
  }

  function render() {
    if (!data) return;
    $('hall').textContent = '· ' + data.hall;
    const f = data.figures;
    const figs = [
      ['f_issued', f.issued], ['f_served', f.served], ['f_no_shows', f.no_shows], ['f_waiting', f.waiting],
      ['f_avg_wait', HQ.duration(f.avg_wait_secs)], ['f_max_wait', HQ.duration(f.max_wait_secs)], ['f_avg_service', HQ.duration(f.avg_service_secs)],
    ];
    $('figures').replaceChildren(...figs.map(([k, v]) => el('div', { class: 'figure', 'data-figure': k }, el('div', { class: 'label' }, t(k)), el('div', { class: 'value' }, v))));

    const help = data.help || [];
    $('help-count').textContent = help.length ? '(' + help.length + ')' : '';
    $('help').replaceChildren(...(help.length
      ? help.map((h) => {
        const ack = el('button', { type: 'button', class: 'big primary ack', 'data-kiosk': h.kiosk }, t('help_ack'));
        ack.addEventListener('click', () => acknowledge(h.kiosk, ack));
        return el('li', { class: 'open', 'data-kiosk': h.kiosk, 'data-screen': h.screen },
          el('span', { class: 'when' }, HQ.clockText(h.at)),
          el('span', {}, t('help_line', { kiosk: h.kiosk, screen: t('scr_' + h.screen), t: since(h.at) })), ack);
      })
      : [el('li', { class: 'none' }, t('help_none'))]));

    const open = data.warnings.filter((w) => w.open && !w.handled);
    $('warn-count').textContent = open.length ? '(' + open.length + ')' : '';
    // Redrawn only when something changed, so a keyboard user's focus on a 处理 button
    // survives the once-a-second refresh of the clocks.
    const key = JSON.stringify([HQ.lang(), handling, data.warnings.slice(0, 60)]);
    if (key !== warningsKey) {
      warningsKey = key;
      const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('#warnings li');
      const seq = focused ? focused.dataset.seq : null;
      $('warnings').replaceChildren(...(data.warnings.length
        ? data.warnings.slice(0, 60).map(warningItem)
        : [el('li', { class: 'none' }, t('sup_no_warnings'))]));
      const again = seq && document.querySelector('#warnings li[data-seq="' + seq + '"] button.handle');
      if (again) again.focus();
    }
    if (handling !== null) {
      const w = data.warnings.find((x) => x.seq === handling);
      if (!w || w.handled) closeForm();
      else $('warn-form-what').textContent = HQ.clockText(w.at) + ' ' + warningText(w);
    }

    $('windows').replaceChildren(...data.windows.map((w) => {
      let time = '';
      if (w.state === 'paused' && w.paused) time = since(w.paused.since);
      else if (w.current && w.current.since) time = since(w.current.since);
      else if (w.state === 'absent' && w.vacant_since) time = since(w.vacant_since);
      else if (w.state === 'idle' && w.staff) time = '';
      return el('tr', { 'data-window': w.number, 'data-state': w.state },
        el('td', {}, t('window_n', { w: w.number }), ' ', el('small', {}, w.name)),
        el('td', {}, el('span', { class: 'state ' + w.state }, t('st_' + w.state)), w.paused && w.paused.reason ? ' ' + w.paused.reason : ''),
        el('td', {}, w.staff ? w.staff.id + ' (' + w.staff.role + ')' : '—'),
        el('td', {}, w.current ? w.current.number + ' · ' + serviceName(w.current.service) : '—'),
        el('td', { class: 'num' }, time),
        el('td', { class: 'num' }, w.served));
    }));

    $('queues').replaceChildren(...data.services.map((s) => {
      const over = s.wait_alarm_minutes !== null && s.wait_alarm_minutes !== undefined && s.waiting > 0 && s.longest_wait_secs >= s.wait_alarm_minutes * 60;
      return el('tr', { class: over ? 'over' : '', 'data-service': s.code },
        el('td', {}, HQ.name(s.name)), el('td', { class: 'num' }, s.waiting),
        el('td', { class: 'num longest' }, s.waiting ? HQ.duration(s.longest_wait_secs) : '—'), el('td', { class: 'num' }, s.issued));
    }));

    const devs = data.devices || [];
    $('devices').replaceChildren(...(devs.length
      ? devs.map((d) => el('li', { class: d.health.state, 'data-device': d.device },
        el('span', {}, d.device), el('span', {}, d.health.state === 'ok' ? t('dev_ok') : (d.health.detail || d.health.code) + ' · ' + since(d.since))))
      : [el('li', {}, t('dev_none'))]));

    // 绿色通道 per reason (every configured one, 0 too), and proxy tickets.
    const g = data.green || { total: 0, reasons: {}, proxy: 0 };
    $('green-total').textContent = t('sup_green_total', { n: g.total, p: g.proxy });
    const reasons = (data.green_reasons || []).map((r) => [r.code, HQ.name(r.name)]);
    Object.keys(g.reasons).filter((c) => !reasons.some(([k]) => k === c))
      .forEach((c) => reasons.push([c, c === 'unspecified' ? t('green_unspecified') : c]));
    $('green').replaceChildren(...reasons.map(([code, label]) => {
      const n = g.reasons[code] || 0;
      return el('li', { class: n ? '' : 'zero', 'data-reason': code }, el('span', {}, label), el('span', { class: 'n' }, n));
    }));

    const r = data.ratings;
    $('rating-total').textContent = t('total_ratings', { n: r.total, b: r.bad });
    const max = Math.max(1, ...LEVELS.map((l) => r.levels[l] || 0));
    $('ratings').replaceChildren(...LEVELS.map((l, i) => {
      const n = r.levels[l] || 0;
      const fill = el('span');
      fill.style.width = (100 * n / max) + '%';
      return el('li', { class: i >= 3 ? 'bad' : '', 'data-level': l }, el('span', {}, t('lv_' + l)), el('div', { class: 'bar' }, fill), el('span', { class: 'n' }, n));
    }));
    renderFollowUps();
  }

  /** 回访整改: every follow-up not closed, overdue ones marked, and those closed today. */
  function renderFollowUps() {
    const fu = data.follow_ups || { open: [], overdue: 0, closed_today: [] };
    $('follow-up-count').textContent = '(' + t('fu_count', { n: fu.open.length, o: fu.overdue }) + ')';
    $('follow-ups').replaceChildren(...(fu.open.length
      ? fu.open.map((f) => el('li', { class: f.overdue ? 'overdue' : 'open', 'data-ticket': f.ticket, 'data-state': f.state },
        el('span', { class: 'when' }, HQ.clockText(f.rated_at)),
        el('span', {}, t('fu_line', {
          number: f.number, service: serviceName(f.service), window: f.window === null ? '—' : f.window,
          level: t('lv_' + f.level), reasons: (f.reasons || []).join('、') || '—',
        }) + (f.staff ? ' · ' + f.staff : '') + (f.note ? ' · ' + f.note : '')),
        el('span', { class: 'tag' }, t('fu_' + f.state)),
        el('span', { class: f.overdue ? 'tag due overdue' : 'tag due' }, f.overdue ? t('fu_overdue') + ' · ' + t('fu_due', { day: f.due_day }) : t('fu_due', { day: f.due_day }))))
      : [el('li', { class: 'none' }, t('fu_none'))]));
    const closed = fu.closed_today || [];
    $('follow-ups-closed').textContent = closed.length ? t('fu_closed_today', { list: closed.map((f) => f.number).join('、') }) : '';
  }

  /** One warning of the list: its state, who handled it, or the button to do so. */
  function warningItem(w) {
    const cls = [w.open ? 'open' : 'closed'];
    if (w.handled) cls.push('handled');
    if (w.escalated_at) cls.push('escalated');
    if (w.seq === handling) cls.push('selected');
    const parts = [el('span', { class: 'when' }, HQ.clockText(w.at)), el('span', { class: 'what' }, warningText(w))];
    if (w.handled) {
      const h = w.handled;
      const by = (h.by_name ? h.by_name + ' ' : '') + '(' + h.by + ')';
      parts.push(el('span', { class: 'handled-by' },
        t('wh_done_' + h.outcome, { by, t: HQ.clockText(h.at) }), h.note ? ' · ' + h.note : ''));
    }
    if (w.escalated_at) parts.push(el('span', { class: 'escalated' }, t('wh_escalated', { t: HQ.clockText(w.escalated_at) })));
    // Handled: the tag says only whether the condition still holds (not 未处理 again).
    parts.push(el('span', { class: 'tag' }, t(w.open ? (w.handled ? 'sup_still' : 'sup_open') : 'sup_closed')));
    if (!w.handled) {
      const b = el('button', { type: 'button', class: 'handle', 'data-seq': w.seq }, t('wh_button'));
      b.addEventListener('click', () => openForm(w));
      parts.push(b);
    }
    return el('li', { class: cls.join(' '), 'data-type': w.type, 'data-seq': w.seq }, ...parts);
  }

  /** Opens the follow-up form for warning `w`, the note ready for typing. */
  function openForm(w) {
    handling = w.seq;
    $('warn-form').hidden = false;
    $('warn-form').dataset.seq = w.seq;
    $('warn-message').textContent = '';
    $('warn-note').value = '';
    $('warn-outcome-handled').checked = true;
    render();
    $('warn-note').focus();
  }

  function closeForm() {
    const seq = handling;
    handling = null;
    $('warn-form').hidden = true;
    delete $('warn-form').dataset.seq;
    // Back to the list, where the form was opened from.
    const b = seq !== null && document.querySelector('#warnings li[data-seq="' + seq + '"] button.handle');
    if (b) b.focus();
  }

  /** Records the follow-up: outcome and note; the list then shows who handled it. */
  async function submitHandling(ev) {
    ev.preventDefault();
    if (handling === null) return;
    const note = $('warn-note').value.trim();
    if (!note) { $('warn-message').textContent = t('wh_need_note'); $('warn-note').focus(); return; }
    const outcome = $('warn-outcome-corrected').checked ? 'corrected' : 'handled';
    $('warn-submit').disabled = true;
    try {
      await api('POST', '/api/v1/supervision/warnings/' + handling + '/handle', { outcome, note });
      handling = null;
      $('warn-form').hidden = true;
    } catch (e) {
      if (e.status === 401) { showLogin(t('err_sign_in_required')); return; }
      $('warn-message').textContent = errorText(e);
      $('warn-message').dataset.code = e.code || '';
    } finally {
      $('warn-submit').disabled = false;
    }
    await refresh();
  }

  /** A member of staff takes a kiosk's help request on; it leaves every screen. */
  async function acknowledge(kiosk, button) {
    button.disabled = true;
    try {
      await api('POST', '/api/v1/help/' + encodeURIComponent(kiosk) + '/ack', {});
    } catch (e) {
      if (e.status === 401) { showLogin(t('err_sign_in_required')); return; }
      if (e.code !== 'help_not_open') $('report-message').textContent = errorText(e);
    }
    await refresh();
  }

  /** Fetches the CSV with the bearer token and hands it to the browser as a download. */
  async function download(scope) {
    $('report-message').textContent = '';
    const day = $('report-day').value;
    try {
      const r = await fetch('/api/v1/reports/daily.csv?scope=' + scope + (day ? '&day=' + encodeURIComponent(day) : ''), { headers: { ...{ Authorization: 'Bearer ' + HQ.token(), 'Accept-Language': HQ.lang() } }, cache: 'no-store' });
      if (!r.ok) {
        const body = await r.json().catch(() => null);
        throw new HQ.ApiError(r.status, body && body.error && body.error.code, (body && body.error && body.error.message) || r.statusText);
      }
      const text = await r.text();
      document.body.dataset.lastCsv = text;
      const url = URL.createObjectURL(new Blob(['\ufeff' + text], { type: 'text/csv;charset=utf-8' }));
      const a = el('a', { href: url, download: 'hallq-' + (day || data.day) + '-' + scope + '.csv' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      $('report-message').textContent = errorText(e);
    }
  }

  function onLive(live) {
    $('offline').hidden = live;
    document.body.classList.toggle('stale', !live);
    if (live) refresh();
  }

  HQ.mountLangSwitch(render);
  $('login').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', async () => {
    try { await api('DELETE', '/api/v1/sessions/current'); } catch (e) { /* gone anyway */ }
    showLogin();
  });
  $('warn-form').addEventListener('submit', submitHandling);
  $('warn-cancel').addEventListener('click', closeForm);
  $('warn-form').addEventListener('keydown', (e) => { if (e.key === 'Escape') { e.preventDefault(); closeForm(); } });
  $('csv-window').addEventListener('click', () => download('window'));
  $('csv-service').addEventListener('click', () => download('service'));
  if (HQ.token()) start(); else showLogin();
})();
