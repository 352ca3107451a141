// hallq window caller (/counter): sign in at a window with staff id and PIN, then call,
// recall, start, mark no-show, transfer, call a number, pause/resume and finish, by
// button or keyboard. The state shown is re-read from the controller after every event
// on the live stream, so two callers at one window never disagree for long.
'use strict';

(() => {
  const { t, el, api, errorText } = HQ;
  HQ.useToken('hallq.token.counter');
  const $ = (id) => document.getElementById(id);

  let hall = null;              // /api/v1/board: windows and service names
  let win = Number(sessionStorage.getItem('hallq.counter.window')) || null;
  let state = null;             // /api/v1/windows/{n}
  let stream = null;

  function serviceName(code) {
    const s = hall && hall.services.find((x) => x.code === code);
    return s ? HQ.name(s.name) : code;
  }

  function say(text, kind) {
    const m = $('message');
    m.textContent = text || '';
    m.className = 'message ' + (kind || 'info');
    m.dataset.kind = kind || 'info';
  }

  async function loadHall() {
    hall = await api('GET', '/api/v1/board');
    const sel = $('login-window');
    const wanted = Number(HQ.params.get('window')) || win;
    sel.replaceChildren(...hall.windows.map((w) => el('option', { value: w.number, selected: w.number === wanted }, t('window_n', { w: w.number }) + ' · ' + w.name)));
    $('transfer-service').replaceChildren(el('option', { value: '' }, '—'), ...hall.services.map((s) => el('option', { value: s.code }, HQ.name(s.name))));
    $('transfer-window').replaceChildren(el('option', { value: '' }, '—'), ...hall.windows.map((w) => el('option', { value: w.number }, t('window_n', { w: w.number }) + ' · ' + w.name)));
  }

  function showLogin(message) {
    HQ.setToken(null);
    state = null;
    $('desk').hidden = true;
    $('login').hidden = false;
    $('sign-out').hidden = true;
    $('who').textContent = '';
    $('win-title').textContent = '';
    $('login-message').textContent = message || '';
    $('login-staff').focus();
  }

  function showDesk(me) {
    $('login').hidden = true;
    $('desk').hidden = false;
    $('sign-out').hidden = false;
    $('who').textContent = t('signed_in_as', { name: me.name || '', id: me.id });
    const w = hall.windows.find((x) => x.number === win);
    $('win-title').textContent = '· ' + t('window_n', { w: win }) + (w ? ' ' + w.name : '');
    if (!stream) {
      stream = new HQ.Stream(onEvent, onLive);
      stream.start();
    }
    refresh();
  }

  async function signIn(ev) {
    ev.preventDefault();
    $('login-message').textContent = '';
    const body = { staff_id: $('login-staff').value.trim(), pin: $('login-pin').value, window: Number($('login-window').value) };
    $('login-submit').disabled = true;
    try {
      const r = await api('POST', '/api/v1/sessions', body);
      HQ.setToken(r.token);
      win = r.window;
      sessionStorage.setItem('hallq.counter.window', String(win));
      sessionStorage.setItem('hallq.counter.staff', JSON.stringify(r.staff));
      $('login-pin').value = '';
      showDesk(r.staff);
    } catch (e) {
      $('login-message').textContent = errorText(e);
      $('login-message').dataset.code = e.code || '';
      $('login-pin').value = '';
      $('login-pin').focus();
    } finally {
      $('login-submit').disabled = false;
    }
  }

  async function signOut() {
    try { await api('DELETE', '/api/v1/sessions/current'); } catch (e) { /* signed out anyway */ }
    showLogin();
  }

  async function refresh() {
    if (!HQ.token() || !win) return;
    try {
      state = await api('GET', '/api/v1/windows/' + win);
      HQ.syncClock(state.now);
      render();
    } catch (e) {
      if (e.status === 401) showLogin(t('err_sign_in_required'));
      else say(errorText(e), 'error');
    }
  }
  const refreshSoon = HQ.debounce(refresh, 120);

  function render() {
    if (!state) return;
    const cur = state.current;
    $('cur-number').textContent = cur ? cur.number : t('none_current');
    $('cur-number').dataset.number = cur ? cur.number : '';
    const since = state.current_since;
    const parts = [];
    if (cur) {
      parts.push(serviceName(cur.service));
      if (since) parts.push(t(cur.state === 'serving' ? 'at_window_for' : 'waited', { t: HQ.duration((HQ.now() - (cur.state === 'serving' ? since : cur.issued_at)) / 1000) }));
      if (state.recalls) parts.push(t('recalls', { n: state.recalls, max: state.recall_limit }));
    }
    $('cur-detail').textContent = parts.join(' · ');
    const st = state.paused ? 'paused' : cur ? cur.state : 'idle';
    $('cur-state').replaceChildren(el('span', { class: 'state ' + st }, t('st_' + st)));
    $('queues').replaceChildren(...state.services.map((s) => el('li', { 'data-service': s.code },
      el('span', {}, serviceName(s.code), s.waiting ? el('div', { class: 'longest' }, t('longest', { t: HQ.duration(s.longest_wait_secs) })) : null),
      el('span', { class: 'count' }, s.waiting))));
    const paused = !!state.paused;
    const called = cur && cur.state === 'called';
    $('act-call-next').disabled = paused;
    $('act-call').disabled = paused;
    $('act-recall').disabled = !called;
    $('act-start').disabled = !called;
    $('act-no-show').disabled = !called;
    $('act-transfer').disabled = !cur;
    $('act-finish').disabled = !cur;
    $('act-pause').hidden = paused;
    $('act-resume').hidden = !paused;
  }

  function doneText(action, events) {
    const main = events.find((e) => e.type !== 'wait_alarm' && e.type !== 'unmanned_alarm' && e.type !== 'ticket_finished') || events[events.length - 1];
    const n = (main && main.number) || '';
    switch (action) {
      case 'call-next': case 'call': {
        const c = events.find((e) => e.type === 'ticket_called');
        return t('done_called', { n: c ? c.number : n });
      }
      case 'recall': return t('done_recalled', { n });
      case 'start': return t('done_started', { n });
      case 'no-show': return t('done_no_show', { n });
      case 'transfer': return t('done_transferred', { n });
      case 'finish': {
        const f = events.find((e) => e.type === 'ticket_finished');
        return t('done_finished', { n: f ? f.number : n });
      }
      case 'pause': return t('done_paused');
      case 'resume': return t('done_resumed');
      default: return '';
    }
  }

  async function act(action, body) {
    try {
      const r = await api('POST', '/api/v1/windows/' + win + '/' + action, body || {});
      say(doneText(action, r.events || []), 'info');
      if (action === 'finish') $('case-no').value = '';
    } catch (e) {
      if (e.status === 401) { showLogin(t('err_sign_in_required')); return; }
      say(errorText(e), 'error');
      $('message').dataset.code = e.code || '';
    }
    refresh();
  }

  function openDialog(id) {
    const d = $(id);
    d.showModal();
    const first = d.querySelector('input, select');
    if (first) first.focus();
  }

  const handlers = {
    'act-call-next': () => act('call-next'),
    'act-recall': () => act('recall'),
    'act-start': () => act('start'),
    'act-no-show': () => act('no-show'),
    'act-finish': () => {
      const c = $('case-no').value.trim();
      act('finish', c ? { case_no: c } : {});
    },
    'act-transfer': () => openDialog('dlg-transfer'),
    'act-call': () => openDialog('dlg-call'),
    'act-pause': () => openDialog('dlg-pause'),
    'act-resume': () => act('resume'),
  };

  function onKey(ev) {
    if (ev.ctrlKey || ev.altKey || ev.metaKey || $('desk').hidden) return;
    if (document.querySelector('dialog[open]')) return;
    const tag = (ev.target && ev.target.tagName) || '';
    if (['INPUT', 'TEXTAREA', 'SELECT'].includes(tag)) return;
    const key = ev.key.toLowerCase();
    const btn = [...document.querySelectorAll('#desk button[data-key]')].find((b) => b.dataset.key === key && !b.hidden);
    if (btn) {
      ev.preventDefault();
      if (!btn.disabled) btn.click();
    }
  }

  function onEvent(ev) {
    if (ev.type === 'staff_signed_out' && ev.payload && ev.payload.window === win && HQ.token()) {
      // Someone else took this window, or the session moved: find out.
      api('GET', '/api/v1/sessions/current').then((me) => { if (me.window !== win) showLogin(t('err_sign_in_required')); })
        .catch((e) => { if (e.status === 401) showLogin(t('err_sign_in_required')); });
    }
    refreshSoon();
  }

  function onLive(live) {
    $('offline').hidden = live;
    document.body.classList.toggle('stale', !live);
    if (live) refresh();
  }

  function wire() {
    $('login').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', signOut);
    for (const [id, f] of Object.entries(handlers)) $(id).addEventListener('click', f);
    document.addEventListener('keydown', onKey);
    document.querySelectorAll('dialog [data-close]').forEach((b) => b.addEventListener('click', () => b.closest('dialog').close()));
    $('form-transfer').addEventListener('submit', () => {
      const s = $('transfer-service').value;
      const w = $('transfer-window').value;
      if (s) act('transfer', { service: s });
      else if (w) act('transfer', { window: Number(w) });
    });
    $('form-call').addEventListener('submit', () => {
      const n = $('call-number').value.trim().toUpperCase();
      $('call-number').value = '';
      if (n) act('call', { number: n });
    });
    $('form-pause').addEventListener('submit', () => {
      const r = $('pause-reason').value.trim();
      $('pause-reason').value = '';
      act('pause', r ? { reason: r } : {});
    });
    setInterval(render, 1000);
  }

  async function main() {
    HQ.mountLangSwitch(() => render());
    wire();
    try { await loadHall(); } catch (e) { $('login-message').textContent = errorText(e); return; }
    if (!HQ.token()) { showLogin(); return; }
    try {
      const me = await api('GET', '/api/v1/sessions/current');
      if (!me.window) { showLogin(); return; }
      win = me.window;
      showDesk(me.staff);
    } catch (e) {
      showLogin(e.status === 401 ? t('err_sign_in_required') : errorText(e));
    }
  }

  main();
})();
