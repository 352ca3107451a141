// hallq hall call board (/board): the newest call large and blinking, the latest calls
// (layout "list") or a column per window (layout "windows"), waiting counts, scrolling
// notices, the staff line (kiosks whose citizen asked for help, until acknowledged on
// the supervision page), date and time, and the call chime. It follows the live stream and, whenever
// the stream is down, says so on screen and greys out what it shows until it is back.
'use strict';

(() => {
  const { t, el, api } = HQ;
  const $ = (id) => document.getElementById(id);

  let board = null;         // the last /api/v1/board answer
  let latest = null;        // { number, window, at }
  let layout = HQ.params.get('layout');
  let streamStarted = false;
  let stream = null;
  let flashing = null;

  function windowName(n) {
    const w = board && board.windows.find((x) => x.number === n);
    return w ? w.name : '';
  }

  /** People waiting for the services a window serves. */
  function waitingAt(w) {
    return board.services.filter((s) => (w.services || []).includes(s.code)).reduce((n, s) => n + s.waiting, 0);
  }

  async function load() {
    try {
      board = await api('GET', '/api/v1/board');
    } catch (e) {
      onLive(false);
      setTimeout(load, 2000);
      return;
    }
    HQ.syncClock(board.now);
    if (!layout || !['list', 'windows'].includes(layout)) layout = board.layout;
    const newest = board.recent_calls[0];
    if (newest && (!latest || newest.at > latest.at)) latest = { number: newest.number, window: newest.window, at: newest.at, class: newest.class };
    render();
    if (!streamStarted) {
      streamStarted = true;
      stream = new HQ.Stream(onEvent, onLive);
      stream.start(board.last_seq);
    }
  }
  const reloadSoon = HQ.debounce(load, 250);

  function render() {
    if (!board) return;
    $('hall').textContent = board.hall;
    document.title = board.hall + ' · ' + t('hall_board');
    $('layout-list').hidden = layout !== 'list';
    $('layout-windows').hidden = layout !== 'windows';
    document.body.dataset.layout = layout;
    renderLatest();
    $('recent').replaceChildren(...(board.recent_calls.length
      ? board.recent_calls.map((c) => el('li', { 'data-number': c.number, 'data-class': c.class || 'normal' },
        el('span', { class: 'num' }, c.number, green(c.class)),
        el('span', { class: 'win' }, t('window_n', { w: c.window }))))
      : [el('li', { class: 'empty' }, t('no_calls'))]));
    $('waiting').replaceChildren(...board.services.map((s) => el('li', { 'data-service': s.code },
      el('span', {}, HQ.name(s.name)), el('span', { class: 'count' }, s.waiting))));
    $('columns').replaceChildren(...board.windows.map((w) => {
      const st = !w.staffed ? 'absent' : w.paused ? 'paused' : w.current ? w.current.state : 'idle';
      const stText = st === 'absent' ? t('st_paused') : t('st_' + st);
      const col = el('div', { class: 'column ' + st, 'data-window': w.number },
        el('div', { class: 'col-window' }, w.number),
        el('div', { class: 'col-name' }, w.name),
        // 亮身份: who serves there (name and staff number), when the hall shows it.
        el('div', { class: 'col-staff' }, w.staff ? staffText(w.staff) : ''),
        el('div', { class: 'col-number' }, w.current && st !== 'paused' ? w.current.number : '—', w.current && st !== 'paused' ? green(w.current.class) : null),
        el('div', { class: 'col-state' }, stText),
        el('div', { class: 'col-waiting' }, t('waiting_people', { n: waitingAt(w) })));
      if (flashing && flashing.window === w.number && Date.now() < flashing.until) col.classList.add('flash');
      return col;
    }));
    const help = board.help || [];
    const line = $('staff-line');
    line.hidden = help.length === 0;
    line.dataset.kiosks = help.map((h) => h.kiosk).join(' ');
    line.textContent = help.length
      ? t('help_staff_line', { list: help.map((h) => h.kiosk + '（' + t('scr_' + h.screen) + '）').join('、') })
      : '';
    const notices = board.notices.length ? board.notices : [board.hall];
    const track = $('notices');
    const text = notices.join('\u0000');
    if (track.dataset.text !== text) {
      track.dataset.text = text;
      track.replaceChildren(...notices.map((n) => el('span', {}, n)));
    }
  }

  /** "王芳 工号 S001": the name and staff number of whoever serves at a window. */
  function staffText(s) {
    return (s.name ? s.name + ' ' : '') + t('staff_no', { id: s.id });
  }

  /** 绿色通道: the mark a green ticket carries wherever the board shows its number. */
  function green(cls) {
    return cls === 'green' ? el('span', { class: 'green-tag' }, t('green_channel')) : null;
  }

  function renderLatest() {
    $('latest-number').textContent = latest ? latest.number : '—';
    $('latest-green').replaceChildren(...[green(latest && latest.class)].filter(Boolean));
    $('latest-window').textContent = latest ? t('to_window', { w: latest.window }) : '';
    $('latest').dataset.number = latest ? latest.number : '';
  }

  /** A call: show it large, blink for a few seconds, chime. */
  function announce(p, at) {
    latest = { number: p.number, window: p.window, at, class: p.class };
    renderLatest();
    const box = $('latest');
    box.classList.remove('flash');
    void box.offsetWidth; // restart the animation
    box.classList.add('flash');
    flashing = { window: p.window, until: Date.now() + 3500 };
    if (board && board.chime) {
      if (!HQ.chime()) $('sound').hidden = false;
    }
  }

  function onEvent(ev) {
    const p = ev.payload || {};
    if (ev.type === 'ticket_called' || ev.type === 'ticket_recalled') {
      // Calls replayed after a reconnect are shown but not chimed twice over.
      const fresh = HQ.now() - ev.at < 60000;
      if (fresh) announce(p, ev.at);
      if (board && ev.type === 'ticket_called') {
        board.recent_calls = [{ number: p.number, window: p.window, at: ev.at, class: p.class }, ...board.recent_calls.filter((c) => c.number !== p.number)];
        render();
      }
    }
    reloadSoon();
  }

  function onLive(live) {
    $('offline').hidden = live;
    document.body.classList.toggle('stale', !live);
    document.body.dataset.live = String(live);
    if (live && board) reloadSoon();
  }

  function tick() {
    const d = new Date(HQ.now());
    const lang = HQ.lang();
    $('date').textContent = new Intl.DateTimeFormat(lang, { year: 'numeric', month: 'long', day: 'numeric', weekday: 'long' }).format(d);
    $('time').textContent = new Intl.DateTimeFormat(lang, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false }).format(d);
  }

  $('sound').addEventListener('click', () => {
    const ctx = HQ.audioContext();
    if (ctx) ctx.resume().then(() => { $('sound').hidden = ctx.state === 'running'; });
  });
  HQ.mountLangSwitch(() => { render(); tick(); });
  tick();
  setInterval(tick, 1000);
  load();
})();
