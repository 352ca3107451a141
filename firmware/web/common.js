// hallq web pages: what every page shares. Texts in three languages, the JSON API
// client (bearer token from sessionStorage, never a cookie), the live event stream read
// over fetch (so it can carry the token and Last-Event-ID) with automatic reconnection,
// the hall clock and the call chime.
'use strict';

const HQ = (() => {
  const LANGS = ['zh-CN', 'zh-TW', 'en'];
  const LANG_LABEL = { 'zh-CN': '简体', 'zh-TW': '繁體', en: 'EN' };

  // [zh-CN, zh-TW, en]
  const T = {
    hall_board: ['叫号屏', '叫號屏', 'Call board'],
    please: ['请', '請', 'Number'],
    to_window: ['到 {w} 号窗口', '到 {w} 號窗口', 'to window {w}'],
    window_n: ['{w} 号窗口', '{w} 號窗口', 'Window {w}'],
    number: ['号码', '號碼', 'Number'],
    window: ['窗口', '窗口', 'Window'],
    time: ['时间', '時間', 'Time'],
    waiting: ['等候', '等候', 'Waiting'],
    waiting_people: ['{n} 人等候', '{n} 人等候', '{n} waiting'],
    staff_no: ['工号 {id}', '工號 {id}', 'Staff no. {id}'],
    recent_calls: ['最近叫号', '最近叫號', 'Latest calls'],
    waiting_counts: ['等候人数', '等候人數', 'People waiting'],
    reconnecting: ['连接中断，正在重新连接…', '連線中斷，正在重新連線…', 'Connection lost — reconnecting…'],
    sound_off: ['点击此处启用提示音', '點擊此處啟用提示音', 'Click to enable the chime'],
    no_calls: ['暂无叫号', '暫無叫號', 'No calls yet'],
    st_called: ['呼叫中', '呼叫中', 'Calling'],
    st_serving: ['办理中', '辦理中', 'Serving'],
    st_idle: ['空闲', '空閒', 'Idle'],
    st_paused: ['暂停服务', '暫停服務', 'Paused'],
    st_absent: ['无人值守', '無人值守', 'Unstaffed'],
    // counter
    counter_title: ['窗口呼叫器', '窗口呼叫器', 'Window caller'],
    staff_id: ['工号', '工號', 'Staff id'],
    pin: ['密码（PIN）', '密碼（PIN）', 'PIN'],
    sign_in: ['登录', '登入', 'Sign in'],
    sign_out: ['退出', '登出', 'Sign out'],
    current_ticket: ['当前号码', '當前號碼', 'Current ticket'],
    none_current: ['暂无', '暫無', 'None'],
    recalls: ['已重呼 {n}/{max} 次', '已重呼 {n}/{max} 次', 'Recalled {n} of {max}'],
    waited: ['已等候 {t}', '已等候 {t}', 'waited {t}'],
    at_window_for: ['已办理 {t}', '已辦理 {t}', 'at the window {t}'],
    longest: ['最长 {t}', '最長 {t}', 'longest {t}'],
    a_call_next: ['呼叫下一位', '呼叫下一位', 'Call next'],
    a_recall: ['重呼', '重呼', 'Recall'],
    a_start: ['开始办理', '開始辦理', 'Start'],
    a_no_show: ['过号', '過號', 'No-show'],
    a_transfer: ['转移', '轉移', 'Transfer'],
    a_call: ['指定呼叫', '指定呼叫', 'Call number'],
    a_pause: ['暂停', '暫停', 'Pause'],
    a_resume: ['恢复', '恢復', 'Resume'],
    a_finish: ['办结', '辦結', 'Finish'],
    case_no: ['办件编号（可选）', '辦件編號（可選）', 'Case no. (optional)'],
    pause_reason: ['暂停原因（可选）', '暫停原因（可選）', 'Reason (optional)'],
    call_number_ph: ['号码，如 A012', '號碼，如 A012', 'Number, e.g. A012'],
    to_service: ['转到事项', '轉到事項', 'To service'],
    to_window_sel: ['或转到窗口', '或轉到窗口', 'or to window'],
    ok: ['确定', '確定', 'OK'],
    cancel: ['取消', '取消', 'Cancel'],
    shortcuts: ['快捷键', '快捷鍵', 'Shortcuts'],
    done_called: ['已呼叫 {n}', '已呼叫 {n}', 'Called {n}'],
    done_recalled: ['已重呼 {n}', '已重呼 {n}', 'Recalled {n}'],
    done_started: ['{n} 开始办理', '{n} 開始辦理', 'Serving {n}'],
    done_no_show: ['{n} 已过号', '{n} 已過號', '{n} marked no-show'],
    done_transferred: ['{n} 已转移', '{n} 已轉移', '{n} transferred'],
    done_finished: ['{n} 已办结，请提示群众评价', '{n} 已辦結，請提示群眾評價', '{n} finished — invite a rating'],
    done_paused: ['已暂停叫号', '已暫停叫號', 'Calling paused'],
    done_resumed: ['已恢复叫号', '已恢復叫號', 'Calling resumed'],
    signed_in_as: ['{name}（{id}）', '{name}（{id}）', '{name} ({id})'],
    err_invalid_credentials: ['工号或密码错误', '工號或密碼錯誤', 'Wrong staff id or PIN'],
    err_account_locked: ['密码错误次数过多，账号已锁定', '密碼錯誤次數過多，帳號已鎖定', 'Too many wrong PINs: the account is locked'],
    err_wrong_window: ['您无权在此窗口操作', '您無權在此窗口操作', 'You may not work at this window'],
    err_sign_in_required: ['登录已失效，请重新登录', '登入已失效，請重新登入', 'Your sign-in has ended; sign in again'],
    locked_until: ['，请于 {t} 后再试', '，請於 {t} 後再試', ' until {t}'],
    err_network: ['无法连接叫号控制器', '無法連線叫號控制器', 'Cannot reach the controller'],
    err_forbidden: ['您的账号无此权限', '您的帳號無此權限', 'Your account may not do this'],
    // rating pad
    rate_sleep: ['欢迎您对我们的服务进行评价', '歡迎您對我們的服務進行評價', 'Your opinion of our service is welcome'],
    rate_prompt: ['请对 {n} 号的本次服务进行评价', '請對 {n} 號的本次服務進行評價', 'Please rate the service for {n}'],
    rate_reason_prompt: ['请选择不满意的原因（必选）', '請選擇不滿意的原因（必選）', 'Please choose what was wrong (required)'],
    rate_comment: ['意见或建议（可选）', '意見或建議（可選）', 'Comment (optional)'],
    rate_submit: ['提交评价', '提交評價', 'Submit'],
    rate_back: ['返回', '返回', 'Back'],
    rate_thanks: ['感谢您的评价！', '感謝您的評價！', 'Thank you!'],
    rate_reason_needed: ['请至少选择一个原因', '請至少選擇一個原因', 'Please choose at least one reason'],
    lv_非常满意: ['非常满意', '非常滿意', 'Very satisfied'],
    lv_满意: ['满意', '滿意', 'Satisfied'],
    lv_基本满意: ['基本满意', '基本滿意', 'Basically satisfied'],
    lv_不满意: ['不满意', '不滿意', 'Dissatisfied'],
    lv_非常不满意: ['非常不满意', '非常不滿意', 'Very dissatisfied'],
    // 回访整改: the follow-up of a bad rating (supervision)
    sup_follow_ups: ['回访整改', '回訪整改', 'Follow-ups of bad ratings'],
    fu_count: ['未办结 {n} 件，逾期 {o} 件', '未辦結 {n} 件，逾期 {o} 件', '{n} open, {o} overdue'],
    fu_none: ['当前无待办回访整改', '當前無待辦回訪整改', 'No follow-up is open'],
    fu_line: ['{number}（{service}，{window} 号窗口，{level}：{reasons}）', '{number}（{service}，{window} 號窗口，{level}：{reasons}）', '{number} ({service}, window {window}, {level}: {reasons})'],
    fu_due: ['限 {day} 前', '限 {day} 前', 'due {day}'],
    fu_overdue: ['已逾期', '已逾期', 'overdue'],
    fu_closed_today: ['今日办结：{list}', '今日辦結：{list}', 'Closed today: {list}'],
    fu_open: ['待接收', '待接收', 'not yet received'],
    fu_received: ['已接收', '已接收', 'received'],
    fu_rectified: ['已整改', '已整改', 'rectified'],
    fu_visited: ['已回访', '已回訪', 'visited'],
    fu_closed: ['已办结', '已辦結', 'closed'],
    // supervision
    sup_title: ['电子监察', '電子監察', 'Supervision'],
    sup_windows: ['窗口状态', '窗口狀態', 'Windows'],
    sup_queues: ['排队情况', '排隊情況', 'Queues'],
    sup_warnings: ['预警', '預警', 'Warnings'],
    sup_figures: ['今日数据', '今日數據', 'Today'],
    sup_ratings: ['好差评', '好差評', 'Ratings'],
    sup_devices: ['设备状态', '設備狀態', 'Devices'],
    dev_ok: ['正常', '正常', 'OK'],
    dev_none: ['暂无设备上报', '暫無設備上報', 'No device has reported'],
    sup_reports: ['日报表下载', '日報表下載', 'Daily report'],
    sup_no_warnings: ['当前无预警', '當前無預警', 'No warnings'],
    sup_open: ['未处理', '未處理', 'open'],
    sup_help: ['求助', '求助', 'Help requests'],
    help_none: ['当前无求助', '當前無求助', 'No one is asking for help'],
    help_line: ['{kiosk} 求助（{screen}）· {t}', '{kiosk} 求助（{screen}）· {t}', '{kiosk} asks for help ({screen}) · {t}'],
    help_staff_line: ['请工作人员前往：{list}', '請工作人員前往：{list}', 'Staff please go to: {list}'],
    help_ack: ['前往处理', '前往處理', 'On my way'],
    scr_home: ['首页', '首頁', 'home'],
    scr_services: ['选择事项', '選擇事項', 'choosing a service'],
    scr_ticket: ['取号', '取號', 'ticket'],
    scr_guides: ['办事指南', '辦事指南', 'service guides'],
    scr_guide: ['办事指南', '辦事指南', 'a service guide'],
    scr_search: ['搜索', '搜尋', 'search'],
    scr_checkin: ['预约签到', '預約簽到', 'appointment check-in'],
    scr_status: ['查询进度', '查詢進度', 'ticket status'],
    scr_closed: ['暂停取号', '暫停取號', 'closed'],
    sup_closed: ['已解除', '已解除', 'cleared'],
    sup_still: ['仍持续', '仍持續', 'still on'],
    wh_title: ['预警处理', '預警處理', 'Follow up a warning'],
    wh_outcome: ['处理结果', '處理結果', 'Outcome'],
    wh_handled: ['处理', '處理', 'Handled'],
    wh_corrected: ['纠错（预警有误）', '糾錯（預警有誤）', 'Corrected (the warning was wrong)'],
    wh_note: ['处理说明', '處理說明', 'Note'],
    wh_submit: ['提交', '提交', 'Submit'],
    wh_cancel: ['取消', '取消', 'Cancel'],
    wh_button: ['处理', '處理', 'Follow up'],
    wh_done_handled: ['已处理 · {by} · {t}', '已處理 · {by} · {t}', 'Handled · {by} · {t}'],
    wh_done_corrected: ['已纠错 · {by} · {t}', '已糾錯 · {by} · {t}', 'Corrected · {by} · {t}'],
    wh_escalated: ['已上报 {t}', '已上報 {t}', 'Escalated {t}'],
    wh_need_note: ['请填写处理说明', '請填寫處理說明', 'Please write a note'],
    csv_window: ['按窗口 CSV', '按窗口 CSV', 'Per window (CSV)'],
    csv_service: ['按事项 CSV', '按事項 CSV', 'Per service (CSV)'],
    service: ['事项', '事項', 'Service'],
    state: ['状态', '狀態', 'State'],
    staff: ['工作人员', '工作人員', 'Staff'],
    served_today: ['今日办结', '今日辦結', 'Served'],
    f_issued: ['取号', '取號', 'Issued'],
    f_served: ['办结', '辦結', 'Served'],
    f_no_shows: ['过号', '過號', 'No-shows'],
    f_waiting: ['等候中', '等候中', 'Waiting'],
    f_avg_wait: ['平均等候', '平均等候', 'Average wait'],
    f_max_wait: ['最长等候', '最長等候', 'Longest wait'],
    f_avg_service: ['平均办理', '平均辦理', 'Average service'],
    total_ratings: ['共 {n} 条，差评 {b} 条', '共 {n} 條，差評 {b} 條', '{n} ratings, {b} bad'],
    w_wait_alarm: ['{number} 号等候超时（{service}，{t}）', '{number} 號等候超時（{service}，{t}）', '{number} waiting too long ({service}, {t})'],
    w_service_over_time: ['{window} 号窗口办理超时（{number}，{t}）', '{window} 號窗口辦理超時（{number}，{t}）', 'Window {window} over its time limit ({number}, {t})'],
    w_queue_alarm: ['{service} 排队人数超限（{waiting} 人）', '{service} 排隊人數超限（{waiting} 人）', '{service} queue over its alarm level ({waiting})'],
    w_pause_alarm: ['{window} 号窗口暂停过久（{t}）', '{window} 號窗口暫停過久（{t}）', 'Window {window} paused too long ({t})'],
    w_unmanned_alarm: ['{window} 号窗口无人值守过久（{t}）', '{window} 號窗口無人值守過久（{t}）', 'Window {window} unstaffed too long ({t})'],
    w_device_fault: ['设备故障：{device} {code}', '設備故障：{device} {code}', 'Device fault: {device} {code}'],
    supervisor_sign_in: ['监察人员登录', '監察人員登入', 'Supervisor sign-in'],
    // staff accounts (admin)
    adm_title: ['账号管理', '帳號管理', 'Staff accounts'],
    adm_sign_in: ['管理员登录', '管理員登入', 'Admin sign-in'],
    adm_accounts: ['账号', '帳號', 'Accounts'],
    adm_name: ['姓名', '姓名', 'Name'],
    adm_roles: ['权限', '權限', 'Roles'],
    adm_windows: ['窗口', '窗口', 'Windows'],
    adm_actions: ['操作', '操作', 'Actions'],
    adm_add: ['新增账号', '新增帳號', 'Add an account'],
    adm_add_submit: ['添加', '新增', 'Add'],
    adm_pin_typed: ['PIN（6–12 位数字，由本人输入）', 'PIN（6–12 位數字，由本人輸入）', 'PIN (6–12 digits, typed by the person)'],
    adm_windows_hint: ['窗口（如 1:A, 2:B）', '窗口（如 1:A, 2:B）', 'Windows (e.g. 1:A, 2:B)'],
    adm_windows_ph: ['1:A, 2:B', '1:A, 2:B', '1:A, 2:B'],
    adm_role_staff: ['窗口人员', '窗口人員', 'Staff'],
    adm_role_supervisor: ['监察', '監察', 'Supervisor'],
    adm_role_admin: ['管理员', '管理員', 'Admin'],
    adm_st_active: ['正常', '正常', 'Active'],
    adm_st_disabled: ['已停用', '已停用', 'Disabled'],
    adm_st_locked: ['已锁定', '已鎖定', 'Locked'],
    adm_until: ['至 {t}', '至 {t}', 'until {t}'],
    adm_disable: ['停用', '停用', 'Disable'],
    adm_enable: ['启用', '啟用', 'Enable'],
    adm_unlock: ['解锁', '解鎖', 'Unlock'],
    adm_reset_pin: ['重置 PIN', '重設 PIN', 'Reset PIN'],
    adm_edit: ['修改', '修改', 'Edit'],
    adm_remove: ['删除', '刪除', 'Remove'],
    adm_reset_pin_for: ['重置 {name}（{id}）的 PIN', '重設 {name}（{id}）的 PIN', 'New PIN for {name} ({id})'],
    adm_edit_for: ['修改 {name}（{id}）的权限和窗口', '修改 {name}（{id}）的權限和窗口', 'Roles and windows of {name} ({id})'],
    adm_remove_for: ['删除账号 {name}（{id}）？', '刪除帳號 {name}（{id}）？', 'Remove the account of {name} ({id})?'],
    adm_remove_note: ['删除后该账号不能再登录，工号永不复用，审计记录保留。', '刪除後該帳號不能再登入，工號永不複用，審計記錄保留。', 'It can never sign in again; the id is never given to anyone else; the audit trail keeps it.'],
    adm_bad_windows: ['窗口格式有误，请写成 1:A, 2:B', '窗口格式有誤，請寫成 1:A, 2:B', 'Windows: write them like 1:A, 2:B'],
    adm_bad_field: ['{field}：', '{field}：', '{field}:'],
    adm_done_added: ['已添加 {id}', '已新增 {id}', 'Added {id}'],
    adm_done_disabled: ['已停用 {id}，其登录已结束', '已停用 {id}，其登入已結束', '{id} disabled and signed out'],
    adm_done_enabled: ['已启用 {id}', '已啟用 {id}', '{id} enabled'],
    adm_done_unlocked: ['已解锁 {id}', '已解鎖 {id}', '{id} unlocked'],
    adm_done_pin_reset: ['已重置 {id} 的 PIN', '已重設 {id} 的 PIN', 'New PIN set for {id}'],
    adm_done_changed: ['已修改 {id}', '已修改 {id}', '{id} changed'],
    adm_done_removed: ['已删除 {id}', '已刪除 {id}', '{id} removed'],
    err_admin_required: ['只有管理员账号可以管理账号', '只有管理員帳號可以管理帳號', 'Only an admin account manages staff accounts'],
    err_staff_exists: ['该工号已存在或曾被使用（工号永不复用）', '該工號已存在或曾被使用（工號永不複用）', 'That id exists or was used before (ids are never reused)'],
    err_unknown_staff: ['没有这个账号', '沒有這個帳號', 'There is no such account'],
    err_own_account: ['不能停用、删除自己的账号或取消自己的管理员权限', '不能停用、刪除自己的帳號或取消自己的管理員權限', 'You cannot disable or remove your own account, or drop your own admin role'],
    adm_role_desk: ['导办台', '導辦台', 'Guide desk'],
    // guide desk
    desk_title: ['导办台', '導辦台', 'Guide desk'],
    desk_sign_in: ['导办人员登录', '導辦人員登入', 'Guide desk sign-in'],
    desk_services: ['为群众取号', '為群眾取號', 'Issue a ticket'],
    green_channel: ['绿色通道', '綠色通道', 'Green channel'],
    desk_proxy: ['代办', '代辦', 'Proxy (代办)'],
    desk_normal: ['普通', '普通', 'Normal'],
    desk_reason: ['绿色通道原因', '綠色通道原因', 'Reason for the green channel'],
    desk_reason_hint: ['按数字键选择原因', '按數字鍵選擇原因', 'press a digit to pick'],
    desk_note: ['补充说明（勿填姓名、证件号、电话）', '補充說明（勿填姓名、證件號、電話）', 'Note (no name, ID or phone number)'],
    desk_confirm: ['确认取号', '確認取號', 'Issue ticket'],
    desk_pick_service: ['请先选择事项', '請先選擇事項', 'Pick a service first'],
    green_reason_required: ['请选择绿色通道原因', '請選擇綠色通道原因', 'Choose the reason for the green channel'],
    desk_last: ['刚发的号', '剛發的號', 'Last ticket'],
    desk_issued: ['已发号 {n}', '已發號 {n}', 'Issued {n}'],
    desk_printed: ['已打印', '已列印', 'Printed'],
    desk_print_queued: ['等待打印', '等待列印', 'Waiting to print'],
    desk_not_printed: ['未打印', '未列印', 'Not printed'],
    desk_no_printer: ['导办台无打印机，请告知群众号码', '導辦台無印表機，請告知群眾號碼', 'no printer at the desk: tell the citizen the number'],
    desk_reprint: ['补打', '補打', 'Reprint'],
    desk_reprinted: ['已补打 {n}', '已補打 {n}', 'Reprinted {n}'],
    desk_lookup: ['预约签到', '預約簽到', 'Appointments'],
    desk_lookup_ph: ['预约码或手机号', '預約碼或手機號', 'Appointment code or mobile number'],
    desk_search: ['查找', '查找', 'Find'],
    desk_none_found: ['今日没有找到该预约', '今日沒有找到該預約', 'No appointment found for today'],
    desk_check_in: ['签到取号', '簽到取號', 'Check in'],
    ap_open: ['可签到', '可簽到', 'open for check-in'],
    ap_early: ['未到签到时间（{t} 起）', '未到簽到時間（{t} 起）', 'too early (from {t})'],
    ap_missed: ['已过签到时间', '已過簽到時間', 'check-in time has passed'],
    ap_checked_in: ['已签到 {n}', '已簽到 {n}', 'checked in ({n})'],
    desk_queue: ['排队与等候', '排隊與等候', 'Queues and waits'],
    est_wait: ['预计等候', '預計等候', 'Estimated wait'],
    open_windows: ['开放窗口', '開放窗口', 'Windows open'],
    minutes: ['{n} 分钟', '{n} 分鐘', '{n} min'],
    ahead: ['前面 {n} 人', '前面 {n} 人', '{n} ahead'],
    desk_help: ['群众求助', '群眾求助', 'Help requests'],
    key_digits: ['选择事项（按 G 后先选原因）', '選擇事項（按 G 後先選原因）', 'pick a service (after G: the reason)'],
    key_lookup: ['查找预约', '查找預約', 'find an appointment'],
    key_enter: ['确认', '確認', 'confirm'],
    key_esc: ['取消', '取消', 'cancel'],
    sup_green: ['绿色通道', '綠色通道', 'Green channel'],
    sup_green_total: ['共 {n} 张，代办 {p} 张', '共 {n} 張，代辦 {p} 張', '{n} tickets; {p} by proxy'],
    green_unspecified: ['未注明原因', '未註明原因', 'no reason given'],
  };

  const params = new URLSearchParams(location.search);
  let lang = params.get('lang') || localStorage.getItem('hallq.lang') || 'zh-CN';
  if (!LANGS.includes(lang)) lang = 'zh-CN';
  const listeners = [];

  function t(key, vars) {
    const row = T[key];
    let s = row ? row[LANGS.indexOf(lang)] : key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.split('{' + k + '}').join(v);
    return s;
  }

  /** Fills every [data-i18n] element (and placeholders) in the current language. */
  function translate(root = document) {
    document.documentElement.lang = lang;
    root.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    root.querySelectorAll('[data-i18n-ph]').forEach((el) => { el.placeholder = t(el.dataset.i18nPh); });
  }

  function setLang(l) {
    lang = l;
    localStorage.setItem('hallq.lang', l);
    translate();
    document.querySelectorAll('.langs button').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.lang === l)));
    listeners.forEach((f) => f(l));
  }

  /** Calls `f(lang)` after every change of language (a page's own part re-renders). */
  function onLang(f) { listeners.push(f); }

  /** Adds a page's own texts ({key: [zh-CN, zh-TW, en]}) to the shared table. */
  function addTexts(more) { Object.assign(T, more); }

  /** Puts 简体 | 繁體 | EN buttons into every `.langs` element. */
  function mountLangSwitch(onChange) {
    if (onChange) listeners.push(onChange);
    document.querySelectorAll('.langs').forEach((box) => {
      box.replaceChildren(...LANGS.map((l) => {
        const b = el('button', { type: 'button', 'data-lang': l, 'aria-pressed': String(l === lang) }, LANG_LABEL[l]);
        b.addEventListener('click', () => setLang(l));
        return b;
      }));
    });
    translate();
  }

  /** A name object {zh-CN, zh-TW, en} in the current language. */
  function name(n) {
    if (!n || typeof n === 'string') return n || '';
    return n[lang] || n['zh-CN'] || '';
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v; else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // ----- the API -----------------------------------------------------------------
  let tokenKey = 'hallq.token';
  function useToken(key) { tokenKey = key; }
  function token() { return sessionStorage.getItem(tokenKey); }
  function setToken(tok) { if (tok) sessionStorage.setItem(tokenKey, tok); else sessionStorage.removeItem(tokenKey); }

  /** Headers for the API: language, the session token, a kiosk key given in the URL. */
  function headers(extra) {
    const h = { 'Accept-Language': lang, Accept: 'application/json', ...extra };
    const tok = token();
    if (tok) h.Authorization = 'Bearer ' + tok;
    const key = params.get('key');
    if (key) h['X-Kiosk-Key'] = key;
    return h;
  }

  class ApiError extends Error {
    constructor(status, code, message, field) { super(message); this.status = status; this.code = code; this.field = field; }
  }

  async function api(method, path, body, extra) {
    let r;
    try {
      r = await fetch(path, {
        method,
        headers: headers({ ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...extra }),
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'network', t('err_network'));
    }
    if (r.status === 204) return null;
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      const err = (data && data.error) || {};
      throw new ApiError(r.status, err.code || 'http_' + r.status, err.message || r.statusText, err.field);
    }
    return data;
  }

  /** The message to show for an API error: ours for sign-in problems, else the server's. */
  function errorText(e) {
    const key = 'err_' + e.code;
    if (T[key]) {
      const until = e.code === 'account_locked' && /(\d{2}:\d{2}):\d{2}/.exec(e.message || '');
      return t(key) + (until ? t('locked_until', { t: until[1] }) : '');
    }
    return e.message || String(e);
  }

  // ----- the live stream ------------------------------------------------------------
  /**
   * Reads `/api/v1/stream` with fetch, parses Server-Sent Events, and reconnects with
   * growing back-off, resuming after the last seen sequence number (Last-Event-ID).
   * `onState(true|false)` tells the page whether what it shows is live.
   */
  class Stream {
    constructor(onEvent, onState) {
      this.onEvent = onEvent;
      this.onState = onState || (() => {});
      this.last = null;
      this.live = false;
      this.seen = Date.now();
      this.retry = null;
    }

    start(after) {
      if (after !== undefined && after !== null) this.last = after;
      this.run();
      // Keep-alives come every 15 s: silence for 40 s means the link is dead.
      setInterval(() => {
        if (this.live && Date.now() - this.seen > 40000 && this.ctrl) this.ctrl.abort();
      }, 5000);
    }

    setLive(v) {
      if (v !== this.live) { this.live = v; this.onState(v); }
    }

    async run() {
      let backoff = 500;
      for (;;) {
        try {
          this.ctrl = new AbortController();
          const h = headers({ Accept: 'text/event-stream' });
          if (this.last !== null) h['Last-Event-ID'] = String(this.last);
          const r = await fetch('/api/v1/stream', { headers: h, signal: this.ctrl.signal, cache: 'no-store' });
          if (!r.ok || !r.body) throw new Error('stream HTTP ' + r.status);
          this.seen = Date.now();
          this.setLive(true);
          backoff = 500;
          const reader = r.body.getReader();
          const dec = new TextDecoder();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            this.seen = Date.now();
            buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const block = buf.slice(0, i);
              buf = buf.slice(i + 2);
              this.dispatch(block);
            }
          }
        } catch (e) {
          // fall through to reconnect
        }
        this.setLive(false);
        if (this.retry) {
          // The controller said it is restarting: come back after its delay, from
          // the start of the back-off again.
          const wait = this.retry;
          this.retry = null;
          backoff = 500;
          await new Promise((res) => setTimeout(res, wait));
          continue;
        }
        await new Promise((res) => setTimeout(res, backoff));
        backoff = Math.min(backoff * 2, 8000);
      }
    }

    dispatch(block) {
      let id = null;
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('id:')) id = line.slice(3).trim();
        else if (line.startsWith('data:')) data += line.slice(5).replace(/^ /, '');
      }
      if (!data) return;
      let ev;
      try { ev = JSON.parse(data); } catch (e) { return; }
      // The controller is stopping; the stream ends next and we resume after `last`.
      if (ev.type === 'reconnect') { this.retry = Number(ev.retry_ms) || 1000; return; }
      if (id !== null) this.last = Number(id);
      try { this.onEvent(ev); } catch (e) { console.error(e); }
    }
  }

  // ----- time -------------------------------------------------------------------
  let skew = 0; // server clock minus ours, ms
  function syncClock(serverNow) { if (serverNow) skew = serverNow - Date.now(); }
  function now() { return Date.now() + skew; }

  /** 754 s → "12:34"; 4000 s → "1:06:40". */
  function duration(secs) {
    secs = Math.max(0, Math.floor(secs));
    const h = Math.floor(secs / 3600);
    const m = Math.floor((secs % 3600) / 60);
    const s = secs % 60;
    const mm = String(m).padStart(h ? 2 : 1, '0');
    return (h ? h + ':' : '') + mm + ':' + String(s).padStart(2, '0');
  }

  function clockText(ms) {
    const d = new Date(ms);
    const p = (x) => String(x).padStart(2, '0');
    return p(d.getHours()) + ':' + p(d.getMinutes());
  }

  // ----- the chime ------------------------------------------------------------------
  let audio = null;
  function audioContext() {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return null;
    if (!audio) audio = new AC();
    return audio;
  }

  /** Two falling tones ("叮咚"); counts what it played in body[data-chimes]. */
  function chime() {
    const ctx = audioContext();
    if (!ctx) return false;
    if (ctx.state === 'suspended') ctx.resume();
    if (ctx.state !== 'running') return false;
    const t0 = ctx.currentTime + 0.02;
    [[880, 0], [659.25, 0.45]].forEach(([f, d]) => {
      const o = ctx.createOscillator();
      const g = ctx.createGain();
      o.type = 'sine';
      o.frequency.value = f;
      g.gain.setValueAtTime(0.0001, t0 + d);
      g.gain.exponentialRampToValueAtTime(0.5, t0 + d + 0.03);
      g.gain.exponentialRampToValueAtTime(0.0001, t0 + d + 0.9);
      o.connect(g).connect(ctx.destination);
      o.start(t0 + d);
      o.stop(t0 + d + 0.95);
    });
    document.body.dataset.chimes = String(Number(document.body.dataset.chimes || 0) + 1);
    return true;
  }

  function debounce(f, ms) {
    let timer = null;
    return (...a) => { clearTimeout(timer); timer = setTimeout(() => f(...a), ms); };
  }

  return {
    t, translate, mountLangSwitch, onLang, addTexts, name, el, lang: () => lang, params,
    useToken, token, setToken, api, ApiError, errorText, Stream,
    syncClock, now, duration, clockText, audioContext, chime, debounce,
  };
})();
