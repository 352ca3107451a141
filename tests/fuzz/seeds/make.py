#!/usr/bin/env python3
"""Writes the named seed inputs of every fuzz target into tests/fuzz/seeds/<target>/.

Each seed is a real example: golden frames from the unit tests, the register map and
frames of docs/protocol.md, the messages of docs/events.md, the shipped example
configuration and voice pack. scripts/fuzz runs every target on its minimised corpus
(tests/fuzz/corpus/<target>, where new finds go) and on these seeds.
Rerun after changing an example:  python3 tests/fuzz/seeds/make.py
"""
import json
import os
import re
import struct
import tomllib
import wave
import io

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
OUT = os.path.join(ROOT, "tests/fuzz/seeds")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def rtu(*parts):
    body = b"".join(parts)
    return body + struct.pack("<H", crc16(body))


def be(*words):
    return b"".join(struct.pack(">H", w & 0xFFFF) for w in words)


def gb(s):
    return s.encode("gb2312")


def line_regs(text, colour=0, mode=0):
    b = gb(text)
    if len(b) % 2:
        b += b"\0"
    return [colour, mode, len(gb(text))] + [struct.unpack(">H", b[i:i + 2])[0] for i in range(0, len(b), 2)]


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


# --- Modbus master: [function pick, unit, addr, count, answer bytes...] -------------
identity = [0x4851, 1, 1, 0x3D, 2, 8, 128, 32, 0, 0, 0x0100, 0]
status = [0x8000, 0x1001, 2, 2, 1, 0x0101, 2, 0x0205] + [0] * 26
put("modbus_master", "identity-read", bytes([1, 3]) + be(0, 12) + rtu(bytes([3, 4, 24]), be(*identity)))
put("modbus_master", "status-poll", bytes([1, 5]) + be(0x10, 0x22) + rtu(bytes([5, 4, 68]), be(*status)))
put("modbus_master", "key-ack-echo", bytes([2, 5]) + be(0x100, 3) + bytes.fromhex("0506010000 03C9B3".replace(" ", "")))
put("modbus_master", "line-write-echo", bytes([3, 3]) + be(0x1000, 8) + be(*line_regs("请 A001 号", 1, 0x100)[3:]) + rtu(bytes([3, 0x10]), be(0x1000, 8)))
put("modbus_master", "exception-illegal-value", bytes([3, 7]) + be(0x1000, 3) + rtu(bytes([7, 0x90, 3])))
put("modbus_master", "spec-example", bytes([0, 1]) + be(0, 10) + bytes.fromhex("01030000000AC5CD"))

# --- Modbus device: [op, unit pick, addr, count/value, values...] -------------------
# unit picks: 0 → 3 screen, 1 → 10 board, 2 → 23 caller, 3 → 33 rating pad.
put("modbus_device", "identity-of-each", b"".join(bytes([0, p]) + be(0, 12) for p in range(4)))
put("modbus_device", "press-poll-ack", bytes([4, 3]) + be(0, 0x0101) + bytes([4, 3]) + be(0, 0x0203)
    + bytes([0, 3]) + be(0x10, 0x22) + bytes([0, 3]) + be(0x10, 0x22))
put("modbus_device", "call-line-and-brightness", bytes([3, 0]) + be(0x1000, 8) + be(*line_regs("请 A001 号", 1, 0x100)[:8])
    + bytes([3, 0]) + be(0x1040, 9) + be(*line_regs("请到3号窗口")) + bytes([2, 0]) + be(0x102, 12)
    + bytes([1, 0]) + be(0x1000, 59))
put("modbus_device", "bad-text-and-power-cut", bytes([3, 0]) + be(0x1000, 4) + be(0, 0, 2, 0x8140)
    + bytes([0x85, 0]) + be(0, 0) + bytes([0, 0]) + be(0x10, 0x22))
put("modbus_device", "fault-clear-offline", bytes([2, 1]) + be(0x101, 0x8000) + bytes([5, 1]) + be(0, 0)
    + bytes([0, 1]) + be(0x10, 0x22) + bytes([0x05 | 0x40, 1]) + be(0, 0))

# --- Register map: registers as big-endian words ------------------------------------
put("window_regmap", "identity", be(*identity))
put("window_regmap", "status-two-presses", be(*status) + be(*status))
put("window_regmap", "line-call", be(*line_regs("请 A001 号", 1, 0x100)))
put("window_regmap", "line-odd", be(0, 0, 3, 0xBAC5, 0x4100))

# --- GB2312 text: device bytes and daemon text ---------------------------------------
for name, s in [("call", "请 A001 号"), ("window", "请到3号窗口"), ("paused", "暂停服务"), ("notice", "今日办理社保业务请带身份证原件")]:
    put("window_text", name + ".gb2312", gb(s))
    put("window_text", name + ".utf8", s)
put("window_text", "gbk-only.utf8", "朱镕基")
# Found by fuzzing: a private-use character GB18030 puts in an empty GB2312 cell
# (0xA6DF), which decodes as another character (U+FE16).
put("window_text", "private-use-in-an-empty-cell.utf8", "\ue793")
put("window_text", "empty-cells.gb2312", bytes([0xA6, 0xDF, 0xA2, 0xA1, 0xAA, 0xA1, 0xD7, 0xFA]))

# --- Vendor frames: [cut] + stream ----------------------------------------------------
frames = bytes([0x02, 0x03, 0x31, 0x00, 0x11]) + b"A001" + b"\r" + bytes([0x02, 0x03, 0x31, 0x01, 0x00, 0x0D]) + bytes([0x02, 0x03, 0x33, 0x0C, 0x00, 0x0D])
put("vendor_frame", "two-line-screen", bytes([128]) + frames)
put("vendor_frame", "noise-and-tail", bytes([40, 0xFF, 0x00]) + bytes([2, 9, 0x31, 1, 2]) + gb("暂停服务") + b"\r" + bytes([2, 9, 0x31, 1]))
put("vendor_frame", "other-profile", bytes([200, 0xAA, 1, 0x32, 0, 0, 3, 0xAA, 1, 0x31, 0, 0x21]) + gb("请 A001 号") + b"\x03")

# --- Keys: big-endian key codes ---------------------------------------------------------
put("window_keys", "caller-types-and-calls", be(0x0541, 0x0400, 0x0401, 0x0402, 0x0308, 0x0301, 0x0404, 0x0304, 0x0309))
put("window_keys", "rating-and-reasons", be(0x0101, 0x0104, 0x0203, 0x0105, 0x0208))
put("window_keys", "usb-presses", bytes([0x40, 79, 0x40, 80, 0x40, 96, 0x00, 78, 0x80, 59]))

# --- Unifont .hex -----------------------------------------------------------------------
hexfont = "0041:0000000018242442427E424242420000\n53F7:00001FF01010101010101FF00000FFFE080010001FF000100010001000A00040\n"
try:
    with open("/usr/share/unifont/unifont.hex") as f:
        want = {"0031", "0020", "8BF7", "7A97", "53E3"}
        hexfont += "".join(l for l in f if l.split(":")[0] in want)
except OSError:
    pass
put("unifont_hex", "glyphs", "# sample\n" + hexfont)

# --- Voice: WAV clips and manifests ------------------------------------------------------
def wav(rate, channels, width, frames):
    b = io.BytesIO()
    with wave.open(b, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return b.getvalue()

put("voice_wav", "mono16k", wav(16000, 1, 2, struct.pack("<8h", 0, 1000, 2000, 1000, 0, -1000, -2000, -1000)))
put("voice_wav", "espeak-22k", wav(22050, 1, 2, struct.pack("<6h", 0, 300, -300, 0, 10, -10)))
put("voice_wav", "stereo", wav(16000, 2, 2, struct.pack("<4h", 1, 2, 3, 4)))
streamed = bytearray(wav(22050, 1, 2, struct.pack("<4h", 5, 6, 7, 8)))
streamed[4:8] = struct.pack("<I", 0x7FFFF024)
streamed[40:44] = struct.pack("<I", 0x7FFFF000)
put("voice_wav", "espeak-streamed-header", bytes(streamed))
put("voice_wav", "8bit", wav(8000, 1, 1, bytes([128, 140, 120, 128])))
manifest = read("firmware/voice/pack/default/pack.toml").decode()
put("voice_pack", "default-head", "\n".join(manifest.splitlines()[:12]) + '\n"zh.qing" = "qing.wav"\n')
put("voice_pack", "docs-example", 'name = "青山县 hall recordings"\nsample_rate = 16000\ngap_ms = 40\npause_ms = 450\n\n[clips]\n"chime" = "qing.wav"\n"zh.qing" = "qing.wav"\n')
put("voice_pack", "bad-rate", 'name = "x"\nsample_rate = 4000\n')

# --- MQTT commands (docs/events.md) -------------------------------------------------------
for i, cmd in enumerate([
    {"id": "c1", "command": "lock_kiosk", "message": "系统维护，请到服务台取号"},
    {"id": "c2", "command": "unlock_kiosk"},
    {"id": "n-7", "command": "show_notice", "text": "午休时间 12:00-13:30", "minutes": 90},
    {"id": "n-8", "command": "clear_notice"},
    {"id": "r1", "command": "reprint_ticket", "ticket": 17},
    {"id": "rep-d", "command": "request_report", "period": "2026-11-23"},
    {"id": "rep-w", "command": "request_report", "period": "2026-W48"},
    {"id": "rep-m", "command": "request_report", "period": "2026-11"},
    {"id": "c3", "command": "reboot"},
    {"id": "rep-edge", "command": "request_report", "period": "262143-W01"},
]):
    put("mqtt_command", f"{i:02d}-{cmd['command']}", json.dumps(cmd, ensure_ascii=False))
put("mqtt_command", "event-kiosk-locked", json.dumps({"type": "kiosk_locked", "message": "维护", "command_id": "c1"}, ensure_ascii=False))
put("mqtt_command", "event-notice-shown", json.dumps({"type": "notice_shown", "text": "午休", "until": 100, "command_id": "c2"}, ensure_ascii=False))

# --- MQTT configuration: the example hall's [queue] as JSON ---------------------------------
hall = tomllib.loads(read("firmware/examples/county-hall.toml").decode())
queue = hall["queue"]


def dates(v):
    if isinstance(v, dict):
        return {k: dates(x) for k, x in v.items()}
    if isinstance(v, list):
        return [dates(x) for x in v]
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


queue = dates(queue)
put("mqtt_config", "example-hall", json.dumps({"version": 5, "queue": queue}, ensure_ascii=False))
small = dict(queue)
small["services"] = queue["services"][:1]
small["windows"] = [dict(w, services=[s for s in w["services"] if (s["code"] if isinstance(s, dict) else s) == queue["services"][0]["code"]]) for w in queue["windows"]]
small["windows"] = [w for w in small["windows"] if w["services"]][:1]
put("mqtt_config", "one-service", json.dumps({"version": 6, "queue": small}, ensure_ascii=False))
bad = json.loads(json.dumps(queue))
bad["services"][1]["prefix"] = bad["services"][0]["prefix"]
put("mqtt_config", "shared-prefix", json.dumps({"version": 7, "queue": bad}, ensure_ascii=False))
put("mqtt_config", "unknown-key", json.dumps({"version": 8, "queue": queue, "extra": 1}, ensure_ascii=False))
# Found by the fuzzer: a stray byte after the document (refused since).
put("mqtt_config", "trailing-byte", json.dumps({"version": 9, "queue": small}, ensure_ascii=False).encode() + b"\xd9")

# --- Events as the receiver reads them (docs/events.md) -------------------------------------
env = {
    "id": "6f1c0c1e-8d7b-4a53-9c55-0f2f3c0c2a11", "controller_id": "qingshan-main", "hall_id": "qingshan",
    "seq": 1042, "schema": 1, "at": 1795395600123, "time": "2026-11-23T09:00:00.123+08:00", "type": "ticket_called",
    "payload": {"type": "ticket_called", "ticket": 17, "number": "A017", "service": "SB", "class": "normal",
                "window": 3, "staff": "S001", "direct": False, "waited_secs": 412},
}
put("uplink_receive", "ticket-called", json.dumps(env, ensure_ascii=False))
env2 = dict(env, id="7f1c0c1e-8d7b-4a53-9c55-0f2f3c0c2a12", seq=1045, type="kiosk_locked",
            payload={"type": "kiosk_locked", "command_id": "c1", "message": "维护中"})
put("uplink_receive", "kiosk-locked-after-gap", json.dumps(env2, ensure_ascii=False))
put("uplink_receive", "offline-state", json.dumps({"status": "offline", "controller_id": "qingshan-main", "hall_id": "qingshan", "hall_name": "青山县政务服务中心", "version": "0.1.0", "reason": "connection lost"}, ensure_ascii=False))

# --- API requests with a header the API reads by hand (api_bodies) ----------------------------
# First byte: top bit = header mode, bits 4-5 = which header, the rest picks the endpoint
# (0x80, 0x9C, 0xAA, 0xB8 all pick /api/v1/tickets).
put("api_bodies", "header-idempotency-key", b"\x80kiosk-2-7f3a9c\n" + b'{"service":"SB"}')
put("api_bodies", "header-accept-language", b"\x9Cen-GB,en;q=0.8,zh-CN;q=0.5\n" + b'{"service":"MZ"}')
put("api_bodies", "header-kiosk-key", b"\xAAkiosk-lan-key-0123456789\n" + b'{"service":"SB"}')
put("api_bodies", "header-last-event-id", b"\xB81042\n" + b'{"service":"SB"}')

# --- Whole HTTP requests (http_requests) -------------------------------------------------------
# First byte: method (low 3 bits: GET POST PUT DELETE PATCH HEAD OPTIONS POST), bit 3 = with
# the signed-in staff token, bit 4 = from the LAN. Then the path, header lines, an empty
# line and the body (docs/api.md's requests, and the kiosk boundary's refusals).
GET, POST, PUT, DELETE, PATCH, HEAD = 0, 1, 2, 3, 4, 5
STAFF_TOKEN, LAN = 8, 16


def http(name, method, path, headers=(), body=b""):
    head = "".join(f"{h}\n" for h in headers)
    put("http_requests", name, bytes([method]) + f"{path}\n{head}\n".encode() + body)


JSON = "Content-Type: application/json"
http("issue", POST, "/api/v1/tickets", [JSON, "Idempotency-Key: k-1"], b'{"service":"SB"}')
http("issue-text-plain", POST, "/api/v1/tickets", ["Content-Type: text/plain"], b'{"service":"SB"}')
http("issue-form", POST, "/api/v1/tickets", ["Content-Type: application/x-www-form-urlencoded"], b"service=SB")
http("issue-cross-origin", POST, "/api/v1/tickets", [JSON, "Host: 127.0.0.1:8080", "Origin: http://evil.example"], b'{"service":"SB"}')
http("issue-same-origin", POST, "/api/v1/tickets", [JSON, "Host: hall.example:8080", "Origin: http://hall.example:8080"], b'{"service":"SB"}')
http("issue-trailing", POST, "/api/v1/tickets", [JSON], b'{"service":"SB"} {}')
http("issue-lan-key", POST | LAN, "/api/v1/tickets", [JSON, "X-Kiosk-Key: kiosk-lan-key-0123456789", "X-Kiosk-Id: k2"], b'{"service":"MZ","class":"green"}')
http("rebind", GET, "/api/v1/overview", ["Host: rebind.evil.example"])
http("overview-localhost", GET, "/api/v1/overview", ["Host: localhost:8080", "Accept-Language: en"])
http("services", GET, "/api/v1/services")
http("ticket", GET, "/api/v1/tickets/1")
http("withdraw", DELETE, "/api/v1/tickets/1", ["X-Ticket-Token: 00112233445566778899aabbccddeeff"])
http("withdraw-staff", DELETE | STAFF_TOKEN, "/api/v1/tickets/2", [JSON], '{"reason":"市民已离开"}'.encode())
http("window", GET | STAFF_TOKEN, "/api/v1/windows/1")
http("window-abc", GET | STAFF_TOKEN, "/api/v1/windows/abc")
http("window-big", GET | STAFF_TOKEN, "/api/v1/windows/4294967296")
http("call-next", POST | STAFF_TOKEN, "/api/v1/windows/1/call-next")
http("call-next-minus", POST | STAFF_TOKEN, "/api/v1/windows/-1/call-next")
http("call", POST | STAFF_TOKEN, "/api/v1/windows/1/call", [JSON], b'{"number":"A001"}')
http("pause", POST | STAFF_TOKEN, "/api/v1/windows/1/pause", [JSON], '{"reason":"午休"}'.encode())
http("finish", POST | STAFF_TOKEN, "/api/v1/windows/1/finish", [JSON], b'{"case_no":"QS2026"}')
http("stream-after", GET, "/api/v1/stream?after=abc")
http("rating", POST, "/api/v1/ratings", [JSON], '{"ticket":1,"level":"非常满意","comment":"\u202e好"}'.encode())
http("rating-pad", POST, "/api/v1/ratings", [JSON, "X-Rating-Pad: 1"], '{"ticket":1,"level":"不满意","reasons":["等候时间长"]}'.encode())
http("book", POST, "/api/v1/appointments", [JSON], b'{"service":"SB","slot_at":"9999-12-31 09:00","code":"AP1"}')
http("check-in", POST, "/api/v1/appointments/AP1/check-in", [JSON])
http("report", GET | STAFF_TOKEN, "/api/v1/reports/daily?day=2026-13-01")
http("report-csv", GET | STAFF_TOKEN, "/api/v1/reports/daily.csv?scope=windows")
http("supervision", GET | STAFF_TOKEN, "/api/v1/supervision")
http("staff-list", GET | STAFF_TOKEN, "/api/v1/staff")
http("help", POST, "/api/v1/help", [JSON, "X-Kiosk-Id: k1"], b"{}")
http("voice", POST, "/api/v1/voice/prompt", [JSON], b'{"prompt":"your_number","number":"A001"}')
http("guide", GET, "/api/v1/services/SB/guide")
http("put-tickets", PUT, "/api/v1/tickets", [JSON], b"{}")
http("metrics", GET, "/metrics")
http("page", GET, "/web/common.js")
http("rate-page", GET, "/rate/1")
http("head", HEAD, "/api/v1/health")

# --- Configuration: the example hall and its commented sections ------------------------------
example = read("firmware/examples/county-hall.toml").decode()
put("config", "example-hall.toml", example)
for section in ["printer", "voice", "uplink", "bus"]:
    m = re.search(r"^# \[\[?%s\]?\]" % section, example, re.M)
    if not m:
        continue
    lines = []
    for l in example[m.start():].splitlines():
        if not l.startswith("#"):
            break
        lines.append(l[2:] if l.startswith("# ") else l[1:])
    put("config", f"example-with-{section}.toml", example + "\n" + "\n".join(lines) + "\n")
bus = re.search(r"```toml\n(\[\[bus\]\].*?)```", read("docs/protocol.md").decode(), re.S)
if bus:
    put("config", "example-with-protocol-bus.toml", example + "\n" + bus.group(1))


# --- id_card: SAM frames of the resident ID card reader (hardware/src/idcard) --------
PREAMBLE = bytes([0xAA, 0xAA, 0xAA, 0x96, 0x69])


def sam(body):
    n = len(body) + 1
    head = bytes([n >> 8, n & 0xFF]) + body
    x = 0
    for b in head:
        x ^= b
    return PREAMBLE + head + bytes([x])


def ucs2(s, n):
    b = s.encode("utf-16-le")
    return b + b" \x00" * ((n - len(b)) // 2)


def card_text(name, idno, birth):
    return (ucs2(name, 30) + ucs2("1", 2) + ucs2("01", 4) + ucs2(birth, 16)
            + ucs2("北京市东城区东长安街1号", 70) + ucs2(idno, 36)
            + ucs2("北京市公安局东城分局", 30) + ucs2("20200101", 16) + ucs2("长期", 16)
            + ucs2("", 36))


text = card_text("王小明", "11010119500101101X", "19500101")
base = bytes([0x01, 0x00, 0x04, 0x00]) + text + bytes(1024)
# The leading byte is where the fuzz target cuts the stream in two.
put("id_card", "find-select-read-requests", b"\x80" + sam(b"\x20\x01") + sam(b"\x20\x02") + sam(b"\x30\x01"))
put("id_card", "card-found", b"\x40" + sam(b"\x00\x00\x9f" + bytes(4)))
put("id_card", "no-card", b"\x10" + sam(b"\x00\x00\x80"))
put("id_card", "base-answer", b"\x7f" + sam(b"\x00\x00\x90" + base))
put("id_card", "noise-and-corrupt", b"\x55\x00\x13\xaa" + sam(b"\x20\x01")[:-1] + b"\x00" + sam(b"\x11\xff"))
put("id_card", "text-block", b"\x00" + text)
put("id_card", "typed-number", b"\x00" + "11010519491231002X".encode())
