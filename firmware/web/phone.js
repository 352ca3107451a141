// The citizen's ticket page: the ticket's status from its own stream (/t/TOKEN/stream),
// in 简体, 繁體 or English. The stream sends the whole status each time, so a reconnect
// (after a controller restart) is up to date with its first event.
(function () {
  'use strict';
  var TEXT = {
    'zh-CN': {
      title: '排队进度', your_number: '您的号码', ahead_before: '前面还有', ahead_after: '人',
      reconnecting: '连接中断，正在重新连接…', sound_on: '开启叫号提示音', sound_enabled: '提示音已开启',
      foot: '此页面随叫号自动更新，无需刷新。请勿将链接分享给他人。',
      wait: '预计等候约 {m} 分钟', wait_soon: '马上就到您了，请留意叫号',
      go_to: '请到 {w} 号窗口', waiting: '正在排队', called: '正在叫您的号',
      called_again: '再次叫号（第 {n} 次）', serving: '正在 {w} 号窗口为您办理',
      finished: '办理完成', finished_note: '感谢您的耐心等候，祝您顺利！',
      no_show: '您已过号', no_show_note: '叫号时您未到窗口。请重新取号，或到服务台咨询工作人员。',
      requeued: '您错过了叫号，已为您重新排队，请留意叫号。',
      transferred: '已转至新的业务', transferred_note: '已从“{from}”转至“{to}”，请继续等候。',
      reserved: '请等候 {w} 号窗口叫号', cancelled: '此号已取消', cancelled_note: '如仍需办理，请重新取号。',
      expired: '号票已失效，只在取号当天有效。',
      near: '快到您了！请回到大厅，留意叫号。', sms_will: '快到您时将短信提醒 {m}', sms_sent: '已短信提醒 {m}'
    },
    'zh-TW': {
      title: '排隊進度', your_number: '您的號碼', ahead_before: '前面還有', ahead_after: '人',
      reconnecting: '連線中斷，正在重新連線…', sound_on: '開啟叫號提示音', sound_enabled: '提示音已開啟',
      foot: '此頁面隨叫號自動更新，無需重新整理。請勿將連結分享給他人。',
      wait: '預計等候約 {m} 分鐘', wait_soon: '馬上就到您了，請留意叫號',
      go_to: '請到 {w} 號窗口', waiting: '正在排隊', called: '正在叫您的號',
      called_again: '再次叫號（第 {n} 次）', serving: '正在 {w} 號窗口為您辦理',
      finished: '辦理完成', finished_note: '感謝您的耐心等候，祝您順利！',
      no_show: '您已過號', no_show_note: '叫號時您未到窗口。請重新取號，或到服務台諮詢工作人員。',
      requeued: '您錯過了叫號，已為您重新排隊，請留意叫號。',
      transferred: '已轉至新的業務', transferred_note: '已從「{from}」轉至「{to}」，請繼續等候。',
      reserved: '請等候 {w} 號窗口叫號', cancelled: '此號已取消', cancelled_note: '如仍需辦理，請重新取號。',
      expired: '號票已失效，只在取號當天有效。',
      near: '快到您了！請回到大廳，留意叫號。', sms_will: '快到您時將簡訊提醒 {m}', sms_sent: '已簡訊提醒 {m}'
    },
    en: {
      title: 'Your place in the queue', your_number: 'Your number', ahead_before: '', ahead_after: 'people ahead of you',
      reconnecting: 'Connection lost, reconnecting…', sound_on: 'Turn on the call sound', sound_enabled: 'Call sound is on',
      foot: 'This page updates by itself. Please do not share its link.',
      wait: 'Estimated wait: about {m} min', wait_soon: 'Your turn is coming up; please listen for your number',
      go_to: 'Please go to window {w}', waiting: 'Waiting', called: 'Your number is being called',
      called_again: 'Called again ({n})', serving: 'Being served at window {w}',
      finished: 'Done', finished_note: 'Thank you for your patience.',
      no_show: 'Your number was missed', no_show_note: 'You were not at the window when called. Please take a new ticket, or ask at the help desk.',
      requeued: 'You missed your call and are back in the queue; please listen for your number.',
      transferred: 'Moved to another service', transferred_note: 'Moved from "{from}" to "{to}"; please keep waiting.',
      reserved: 'Please wait for window {w} to call you', cancelled: 'This ticket was withdrawn', cancelled_note: 'Please take a new ticket if you still need the service.',
      expired: 'This ticket has expired; tickets are valid on the day they are taken only.',
      near: 'Your turn is near! Please come back to the hall and listen for your number.',
      sms_will: 'We will text {m} when your turn is near', sms_sent: 'Text message sent to {m}'
    }
  };

  function pickLang() {
    var saved = null;
    try { saved = localStorage.getItem('hallq.phone.lang'); } catch (e) { /* private mode */ }
    if (saved && TEXT[saved]) return saved;
    var nav = (navigator.language || 'zh-CN').toLowerCase();
    if (nav.indexOf('zh') === 0) {
      return /tw|hk|mo|hant/.test(nav) ? 'zh-TW' : 'zh-CN';
    }
    return nav.indexOf('en') === 0 ? 'en' : 'zh-CN';
  }

  var lang = pickLang();
  var base = location.pathname.replace(/\/+$/, '');
  var status = null;
  var lastCalls = null;
  var nearShown = false;
  var status0 = false;
  var audio = null;
  var source = null;
  var $ = function (id) { return document.getElementById(id); };

  function t(key, vars) {
    var table = TEXT[lang] && Object.prototype.hasOwnProperty.call(TEXT[lang], key) ? TEXT[lang] : TEXT['zh-CN'];
    var s = table[key] || '';
    Object.keys(vars || {}).forEach(function (k) { s = s.split('{' + k + '}').join(String(vars[k])); });
    return s;
  }

  function name(names) {
    if (!names) return '';
    return names[lang] || names['zh-CN'] || '';
  }

  function applyLang() {
    document.documentElement.lang = lang;
    document.querySelectorAll('[data-i18n]').forEach(function (el) {
      el.textContent = t(el.getAttribute('data-i18n'));
    });
    document.querySelectorAll('.langs button').forEach(function (b) {
      b.setAttribute('aria-pressed', String(b.getAttribute('data-lang') === lang));
    });
    if (audio) $('sound').textContent = t('sound_enabled');
    document.title = t('title');
    if (status) render(status);
  }

  function beep() {
    if (!audio) return;
    try {
      var now = audio.currentTime;
      [0, 0.35].forEach(function (at) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        osc.frequency.value = 880;
        gain.gain.setValueAtTime(0.0001, now + at);
        gain.gain.exponentialRampToValueAtTime(0.4, now + at + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, now + at + 0.3);
        osc.connect(gain);
        gain.connect(audio.destination);
        osc.start(now + at);
        osc.stop(now + at + 0.32);
      });
    } catch (e) { /* no audio: the page and the vibration still tell */ }
  }

  function alertCall() {
    try { if (navigator.vibrate) navigator.vibrate([400, 200, 400, 200, 400]); } catch (e) { /* not allowed */ }
    beep();
  }

  function render(st) {
    status = st;
    document.body.dataset.state = st.state;
    $('number').textContent = st.number;
    $('service').textContent = name(st.service_name);
    var queued = st.state === 'waiting' || st.state === 'transferred';
    $('place').hidden = !queued;
    if (queued) {
      $('ahead').textContent = st.ahead;
      $('wait').textContent = st.ahead === 0 || st.estimated_wait_minutes === 0
        ? t('wait_soon') : t('wait', { m: st.estimated_wait_minutes });
    }
    // The near-turn notice: a banner once it has gone, a line while it waits.
    var near = queued && !!st.notice && st.notice.sent;
    $('near').hidden = !near;
    if (near) $('near').textContent = t('near');
    $('sms').textContent = st.notice && queued
      ? t(st.notice.sent ? 'sms_sent' : 'sms_will', { m: st.notice.mobile }) : '';
    if (near && !nearShown && status0) alertCall();
    nearShown = near;
    status0 = true;
    var called = st.state === 'called';
    $('call').hidden = !called;
    if (called) $('call').textContent = t('go_to', { w: st.window });
    var state = '';
    var notice = '';
    switch (st.state) {
      case 'waiting':
        state = t('waiting');
        if (st.requeued) notice = t('requeued');
        break;
      case 'transferred':
        state = t('transferred');
        if (st.transferred_from) {
          notice = t('transferred_note', { from: name(st.transferred_from), to: name(st.service_name) });
        }
        if (st.reserved_window) notice = (notice ? notice + ' ' : '') + t('reserved', { w: st.reserved_window });
        break;
      case 'called':
        state = st.recalls > 0 ? t('called_again', { n: st.recalls + 1 }) : t('called');
        break;
      case 'serving': state = t('serving', { w: st.window }); break;
      case 'finished': state = t('finished'); notice = t('finished_note'); break;
      case 'no_show': state = t('no_show'); notice = t('no_show_note'); break;
      case 'cancelled': state = t('cancelled'); notice = t('cancelled_note'); break;
      default: state = '';
    }
    $('state').textContent = state;
    $('notice').textContent = notice;
    // A new call (or a recall) alerts once.
    var calls = called ? st.window + ':' + st.recalls : null;
    if (calls && calls !== lastCalls) alertCall();
    lastCalls = calls;
  }

  function setLive(live) {
    document.body.dataset.live = String(live);
    $('offline').hidden = live;
  }

  function expired() {
    if (source) source.close();
    setLive(true);
    document.body.dataset.state = 'expired';
    $('place').hidden = true;
    $('call').hidden = true;
    $('state').textContent = '';
    $('notice').textContent = t('expired');
  }

  function connect() {
    source = new EventSource(base + '/stream');
    source.addEventListener('open', function () { setLive(true); });
    source.addEventListener('status', function (e) {
      setLive(true);
      try { render(JSON.parse(e.data).status); } catch (err) { /* a malformed event is skipped */ }
    });
    source.addEventListener('expired', expired);
    source.addEventListener('reconnect', function () { setLive(false); });
    source.addEventListener('error', function () {
      setLive(false);
      if (source.readyState !== EventSource.CLOSED) return; // it reconnects on its own
      // Refused (too busy, or gone): ask once what the ticket is, then try again.
      fetch(base + '/status', { cache: 'no-store' }).then(function (r) {
        if (r.status === 404) { expired(); return; }
        setTimeout(connect, 3000);
      }, function () { setTimeout(connect, 3000); });
    });
  }

  document.querySelectorAll('.langs button').forEach(function (b) {
    b.addEventListener('click', function () {
      lang = b.getAttribute('data-lang');
      try { localStorage.setItem('hallq.phone.lang', lang); } catch (e) { /* private mode */ }
      applyLang();
    });
  });
  $('sound').addEventListener('click', function () {
    // Browsers play sound only after a tap: this tap allows it for the call.
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    if (!audio) audio = new Ctx();
    if (audio.resume) audio.resume();
    $('sound').setAttribute('aria-pressed', 'true');
    $('sound').textContent = t('sound_enabled');
    beep();
  });

  applyLang();
  connect();
})();
