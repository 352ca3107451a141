// hallq rating pad (/rate/<window>): sleeps until its window finishes a ticket, then
// offers the five 好差评 levels as big buttons. A bad level asks for at least one reason
// from the hall's list (and an optional comment); the controller itself refuses a bad
// rating without a reason, and the pad shows that refusal. Then it thanks and sleeps.
// A citizen who walks away gets no rating from the pad: the default rating is the
// upstream platform's business, never the device's.
'use strict';

(() => {
  const { t, el, api, errorText } = HQ;
  const $ = (id) => document.getElementById(id);
  const LEVELS = ['非常满意', '满意', '基本满意', '不满意', '非常不满意'];
  const STARS = ['★★★★★', '★★★★', '★★★', '★★', '★'];
  const BAD = new Set(['不满意', '非常不满意']);
  const AWAKE_MS = 120000;   // back to sleep if nobody rates
  const THANKS_MS = 5000;

  const win = Number(location.pathname.split('/').pop());
  let reasons = [];
  let ticket = null;          // { id, number }
  let level = null;
  const chosen = new Set();
  let sleepTimer = null;

  function show(screen) {
    for (const s of ['sleep', 'levels', 'reasons', 'thanks']) $(s).hidden = s !== screen;
    document.body.dataset.screen = screen;
  }

  function sleepIn(ms) {
    clearTimeout(sleepTimer);
    sleepTimer = setTimeout(() => { ticket = null; show('sleep'); }, ms);
  }

  function wake(p) {
    ticket = { id: p.ticket, number: p.number };
    level = null;
    chosen.clear();
    $('comment').value = '';
    $('rate-message').textContent = '';
    renderTexts();
    show('levels');
    sleepIn(AWAKE_MS);
  }

  function renderTexts() {
    $('title').textContent = t('sup_ratings') + ' · ' + t('window_n', { w: win });
    if (ticket) $('prompt').textContent = t('rate_prompt', { n: ticket.number });
    $('level-buttons').replaceChildren(...LEVELS.map((l, i) => {
      const b = el('button', { type: 'button', class: 'level l' + i, 'data-level': l }, el('span', { class: 'face', 'aria-hidden': 'true' }, STARS[i]), t('lv_' + l));
      b.addEventListener('click', () => choose(l));
      return b;
    }));
    $('reason-buttons').replaceChildren(...reasons.map((r) => {
      const b = el('button', { type: 'button', class: 'reason', 'data-reason': r, 'aria-pressed': String(chosen.has(r)) }, r);
      b.addEventListener('click', () => {
        if (chosen.has(r)) chosen.delete(r); else chosen.add(r);
        b.setAttribute('aria-pressed', String(chosen.has(r)));
        $('rate-message').textContent = '';
      });
      return b;
    }));
    if (level) $('chosen-level').textContent = t('lv_' + level);
  }

  function choose(l) {
    level = l;
    sleepIn(AWAKE_MS);
    if (BAD.has(l)) {
      $('chosen-level').textContent = t('lv_' + l);
      show('reasons');
    } else {
      submit();
    }
  }

  async function submit() {
    if (!ticket || !level) return;
    sleepIn(AWAKE_MS);
    // No channel in the body: the controller records the pad itself, from this page's
    // pad key (or, on the controller's own screen, the window named in the header).
    const body = { ticket: ticket.id, level, reasons: [...chosen] };
    const c = $('comment').value.trim();
    if (c) body.comment = c;
    $('submit').disabled = true;
    try {
      await api('POST', '/api/v1/ratings', body, { 'X-Rating-Pad': String(win) });
      ticket = null;
      show('thanks');
      sleepIn(THANKS_MS);
    } catch (e) {
      const msg = $('rate-message');
      msg.textContent = e.field === 'reasons' && chosen.size === 0 ? t('rate_reason_needed') : errorText(e);
      msg.dataset.code = e.code || '';
      msg.dataset.field = e.field || '';
      if (!BAD.has(level)) show('reasons');
    } finally {
      $('submit').disabled = false;
    }
  }

  function onEvent(ev) {
    const p = ev.payload || {};
    if (ev.type === 'ticket_finished' && p.window === win) wake(p);
    // The hall server put a new setup in force: its rating reasons from now on.
    if (ev.type === 'config_applied') {
      api('GET', '/api/v1/board').then((b) => { reasons = b.rating_reasons; }).catch(() => {});
    }
    // The ticket was rated elsewhere (a second pad, the kiosk): nothing left to do here.
    if (ev.type === 'rating_recorded' && ticket && p.rating && p.rating.ticket === ticket.id && document.body.dataset.screen !== 'thanks') show('sleep');
  }

  function onLive(live) {
    $('offline').hidden = live;
    document.body.dataset.live = String(live);
  }

  async function main() {
    HQ.mountLangSwitch(renderTexts);
    $('back').addEventListener('click', () => { level = null; show('levels'); });
    $('submit').addEventListener('click', submit);
    show('sleep');
    let start = null;
    for (;;) {
      try {
        const b = await api('GET', '/api/v1/board');
        reasons = b.rating_reasons;
        start = b.last_seq;
        break;
      } catch (e) {
        onLive(false);
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
    renderTexts();
    new HQ.Stream(onEvent, onLive).start(start);
  }

  main();
})();
