#!/usr/bin/env python3
"""Writes the kiosk's gettext catalogues (zh_CN, zh_TW) from the table below and checks
that every @tr() string in ui/*.slint has a translation. Run from kiosk-ui/:
    python3 lang/translations.py
The English source strings live in the .slint files; Slint bundles the .po files at build
time (build.rs), so no .mo files or gettext runtime are needed. A plural string
(@tr("one {n}" | "many {n}" % count)) is keyed by its two English forms; Chinese has one
form (nplurals=1), which goes to msgstr[0]."""
import glob, re, sys

T = {
"Appointment check-in": ("预约签到", "預約簽到"),
"A mobile number has 11 digits. You typed {}. Please check it.": ("手机号码是 11 位数字，您输入了 {} 位，请核对。", "手機號碼是 11 位數字，您輸入了 {} 位，請核對。"),
"Back": ("上一步", "上一步"),
"Cancel": ("取消", "取消"),
"By pinyin initials or number": ("按拼音首字母或编号", "按拼音首字母或編號"),
"Check in": ("签到取号", "簽到取號"),
"Checklist ready.": ("告知单已生成。", "告知單已生成。"),
"Choose your service and get a number": ("选择业务，领取排队号", "選擇業務，領取排隊號"),
"Clear": ("清空", "清空"),
"Delete": ("删除", "刪除"),
"Done": ("完成", "完成"),
"Elder mode": ("关怀模式", "關懷模式"),
"Enter the booking code from your text message.": ("请输入短信中的预约码。", "請輸入簡訊中的預約碼。"),
"Enter your booking code": ("输入预约码", "輸入預約碼"),
"Estimated wait: about {} minutes": ("预计等候：约 {} 分钟", "預計等候：約 {} 分鐘"),
"Fees": ("收费标准", "收費標準"),
"Found {}:": ("找到 {} 项：", "找到 {} 項："),
"Free": ("空闲", "空閒"),
"Help": ("求助", "求助"),
"Home": ("首页", "首頁"),
"Item code {} · {}": ("事项编码 {} · {}", "事項編碼 {} · {}"),
"Larger text, one step at a time": ("大字体，一步一步办", "大字體，一步一步辦"),
"Legal basis": ("设定依据", "設定依據"),
"Letters": ("字母", "字母"),
"Materials to bring": ("申请材料", "申請材料"),
"Need help? Press the Help button at the top of the screen, or ask the staff at the information desk.": ("需要帮助？请按屏幕上方的“求助”按钮，或到咨询台找工作人员。", "需要幫助？請按螢幕上方的「求助」按鈕，或到諮詢台找工作人員。"),
"Next": ("下一步", "下一步"),
"Next page": ("下一页", "下一頁"),
"Not staffed": ("暂无人员", "暫無人員"),
"Nothing found. Try fewer letters.": ("没有找到，请少输入几个字母。", "沒有找到，請少輸入幾個字母。"),
"Numbers": ("数字", "數字"),
"OK": ("知道了", "知道了"),
"One moment, please…": ("请稍候……", "請稍候……"),
"Page {} of {}": ("第 {} 页，共 {} 页", "第 {} 頁，共 {} 頁"),
"Paused": ("暂停服务", "暫停服務"),
"People ahead of you: {}": ("您前面还有 {} 人", "您前面還有 {} 人"),
"People waiting now: {}": ("当前等候人数：{}", "目前等候人數：{}"),
"Phone: {}": ("咨询电话：{}", "諮詢電話：{}"),
"Please type your mobile number first.": ("请先输入您的手机号码。", "請先輸入您的手機號碼。"),
"Please wait in the hall and listen for your number.": ("请在大厅等候，留意叫号。", "請在大廳等候，留意叫號。"),
"Previous page": ("上一页", "上一頁"),
"Print checklist": ("打印一次性告知单", "列印一次性告知單"),
"Promised: done on the spot": ("承诺时限：即办", "承諾時限：即辦"),
"Promised: {} working days": ("承诺时限：{} 个工作日", "承諾時限：{} 個工作日"),
"Queue status": ("排队情况", "排隊情況"),
"Search": ("搜索", "搜尋"),
"Search a service": ("搜索事项", "搜尋事項"),
"Service guide": ("办事指南", "辦事指南"),
"Service guide: choose a service": ("办事指南：请选择事项", "辦事指南：請選擇事項"),
"Send": ("提交", "送出"),
"Serving {}": ("正在办理 {}", "正在辦理 {}"),
"Standard": ("标准模式", "標準模式"),
"Statutory: {} working days": ("法定时限：{} 个工作日", "法定時限：{} 個工作日"),
"Step {} of {}": ("第 {} 步，共 {} 步", "第 {} 步，共 {} 步"),
"Steps": ("办理流程", "辦理流程"),
"Take a ticket": ("取号", "取號"),
"Take a ticket for this service": ("为此事项取号", "為此事項取號"),
"Take a ticket: choose your service": ("取号：请选择业务", "取號：請選擇業務"),
"Taken at {}": ("取号时间 {}", "取號時間 {}"),
"Text me when my turn is near": ("快到我时发短信提醒我", "快到我時傳簡訊提醒我"),
"The checklist is printing below.": ("告知单正在打印，请在下方取单。", "告知單正在列印，請在下方取單。"),
"The printer is not available. Please photograph the list of materials or ask the staff for a printed copy.": ("打印机暂不可用。请拍下材料清单，或请工作人员为您打印。", "印表機暫不可用。請拍下材料清單，或請工作人員為您列印。"),
"The queue system cannot be reached. The kiosk keeps trying by itself; please wait a moment or ask the staff.": ("暂时连不上叫号系统，本机正在自动重试。请稍候，或请工作人员帮忙。", "暫時連不上叫號系統，本機正在自動重試。請稍候，或請工作人員幫忙。"),
"The ticket printer is not available. Please remember your number or take a photo of this screen.": ("取号打印机暂不可用。请记住您的号码，或拍下本屏幕。", "取號印表機暫不可用。請記住您的號碼，或拍下本螢幕。"),
"Tickets are not being issued now": ("现在暂停取号", "現在暫停取號"),
"Tickets are not being issued here right now": ("本机暂停取号", "本機暫停取號"),
"This is not a mobile number. A mobile number starts with 13 to 19. Please check it.": ("这不是手机号码。手机号码以 13 至 19 开头，请核对。", "這不是手機號碼。手機號碼以 13 至 19 開頭，請核對。"),
"Time limits": ("办理时限", "辦理時限"),
"Type the first letters of the pinyin, for example S B for 社保.": ("输入拼音首字母，例如“社保”输入 S B。", "輸入拼音首字母，例如「社保」輸入 S B。"),
"Type your mobile number. It is used only for this text message.": ("请输入您的手机号码，仅用于本次叫号提醒短信。", "請輸入您的手機號碼，僅用於本次叫號提醒簡訊。"),
"Type the item code on the number pad.": ("请在数字键盘上输入事项编码。", "請在數字鍵盤上輸入事項編碼。"),
"Welcome. How can we help you?": ("欢迎！请问您要办理什么？", "歡迎！請問您要辦理什麼？"),
"What to bring, where to go": ("带什么材料，到哪个窗口", "帶什麼材料，到哪個窗口"),
"Where to go": ("办理地点", "辦理地點"),
"Who may apply": ("受理条件", "受理條件"),
"Window {}": ("{} 号窗口", "{} 號窗口"),
"Windows: {}": ("办理窗口：{} 号", "辦理窗口：{} 號"),
"You are checked in. Your number is": ("签到成功，您的号码是", "簽到成功，您的號碼是"),
"You can still read the service guides.": ("您仍可查看办事指南。", "您仍可查看辦事指南。"),
"Your number is": ("您的号码是", "您的號碼是"),
"Your turn is near: a text message has gone to {}.": ("快轮到您了，提醒短信已发送到 {}。", "快輪到您了，提醒簡訊已傳送到 {}。"),
"Your ticket is printing below.": ("号票正在打印，请在下方取票。", "號票正在列印，請在下方取票。"),
"{} waiting · about {} min": ("等候 {} 人 · 约 {} 分钟", "等候 {} 人 · 約 {} 分鐘"),
("We will text {} when {n} person is ahead of you.", "We will text {} when {n} people are ahead of you."):
    ("您前面还剩 {n} 人时，我们会发短信到 {}。", "您前面還剩 {n} 人時，我們會傳簡訊到 {}。"),
("When {n} person is ahead of you", "When {n} people are ahead of you"):
    ("您前面还剩 {n} 人时发送", "您前面還剩 {n} 人時傳送"),
}

def esc(s):
    return s.replace("\\", "\\\\").replace('"', '\\"')

STR = r'"((?:[^"\\]|\\.)*)"'
used = set()
for f in glob.glob("ui/*.slint"):
    for one, _, many in re.findall(r'@tr\(' + STR + r'(\s*\|\s*' + STR + r')?', open(f, encoding="utf-8").read()):
        used.add((one, many) if many else one)
missing = sorted(map(str, used - T.keys()))
if missing:
    sys.exit("untranslated: " + "; ".join(missing))
for i, lang in enumerate(["zh_CN", "zh_TW"]):
    out = ['msgid ""', 'msgstr ""', '"Content-Type: text/plain; charset=UTF-8\\n"',
           f'"Language: {lang}\\n"', '"Plural-Forms: nplurals=1; plural=0;\\n"', ""]
    for k in sorted(used, key=lambda k: k if isinstance(k, tuple) else (k,)):
        if isinstance(k, tuple):
            out += [f'msgid "{esc(k[0])}"', f'msgid_plural "{esc(k[1])}"',
                    f'msgstr[0] "{esc(T[k][i])}"', ""]
        else:
            out += [f'msgid "{esc(k)}"', f'msgstr "{esc(T[k][i])}"', ""]
    with open(f"lang/{lang}/LC_MESSAGES/hallq-kiosk.po", "w", encoding="utf-8") as fh:
        fh.write("\n".join(out))
print(f"{len(used)} strings, 2 catalogues")
