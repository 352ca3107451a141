#!/usr/bin/python3
"""A window screen played by pymodbus: a Modbus RTU server on a serial port that
answers hallq's identity and status reads as docs/protocol.md says, and after every
write dumps its display lines, decoded from GB2312 by Python's own codec, to a JSON
file.

usage: pymodbus_screen.py PORT UNIT OUT.json
"""
import asyncio
import json
import os
import sys

from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext)
from pymodbus.server import StartAsyncSerialServer
from pymodbus.transaction import ModbusRtuFramer

port, unit, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
LINES = 2
LINE_BASE, STRIDE, BLOCK = 0x1000, 0x40, 59


def dump(block):
    lines = []
    for n in range(LINES):
        regs = block.getValues(LINE_BASE + STRIDE * n, BLOCK)
        length = regs[2]
        text_regs = regs[3:3 + (length + 1) // 2]
        raw = b"".join(r.to_bytes(2, "big") for r in text_regs)[:length]
        lines.append({
            "colour": regs[0],
            "mode": regs[1],
            "length": length,
            "regs": regs[:3 + (length + 1) // 2],
            "text": raw.decode("gb2312"),
        })
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"lines": lines, "brightness": block.getValues(0x0102, 1)[0]}, f,
                  ensure_ascii=False)
    os.replace(tmp, out)


class Holding(ModbusSequentialDataBlock):
    def setValues(self, address, values):
        super().setValues(address, values)
        dump(self)


# Identity (0x0000-0x000B): magic "HQ", profile 1, kind 1 = window screen,
# capabilities display|colour|blink|scroll|brightness, 2 lines of 8, 128x32 dots.
inputs = [0] * 0x32
inputs[0:12] = [0x4851, 1, 1, 0x3D, 2, 8, 128, 32, 0, 0, 0x0100, 0]
inputs[0x10] = 0x8000  # RESTARTED
inputs[0x11] = 0x2222  # BOOT_ID
holding = Holding(0, [0] * 0x1100)
holding.values[0x0102] = 8
slave = ModbusSlaveContext(ir=ModbusSequentialDataBlock(0, inputs), hr=holding,
                           di=ModbusSequentialDataBlock(0, [0]), co=ModbusSequentialDataBlock(0, [0]),
                           zero_mode=True)
context = ModbusServerContext(slaves={unit: slave}, single=False)
dump(holding)
asyncio.run(StartAsyncSerialServer(context=context, framer=ModbusRtuFramer, port=port,
                                   baudrate=9600))
