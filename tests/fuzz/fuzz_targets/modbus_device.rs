//! The device side of the window bus: the simulated hall devices
//! (`hallq_hardware::window::sim`, what tests and `hallq run --simulate` put on the
//! PTY) answering whatever requests a master sends — any function, unit, address,
//! count and register values — interleaved with key presses and power cuts. Never a
//! panic; every answer has the size the request asks for; a line write is shown only
//! when the register map accepts it, exactly as it decodes; and the master's own
//! decoders and key tracker read what the devices answer.
#![no_main]

use std::borrow::Cow;

use hallq_hardware::window::keys::Key;
use hallq_hardware::window::regmap::{self, Identity, KeyTracker, Status};
use hallq_hardware::window::sim::{SimBus, SimSpec};
use libfuzzer_sys::fuzz_target;
use tokio_modbus::{ExceptionCode, Request, Response};

const UNITS: [u8; 5] = [3, 10, 23, 33, 99];

fn bus() -> SimBus {
    SimBus::new(&[
        SimSpec::window_screen(3),
        SimSpec::hall_board(10),
        SimSpec::caller_keypad(23),
        SimSpec::rating_keypad(33, 5),
    ])
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn word(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
}

fuzz_target!(|data: &[u8]| {
    let bus = bus();
    let mut input = Input(data);
    let mut trackers: [KeyTracker; UNITS.len()] = Default::default();
    while let (Some(op), Some(pick)) = (input.byte(), input.byte()) {
        let ui = pick as usize % UNITS.len();
        let unit = if pick >= 250 { pick } else { UNITS[ui] };
        let (Some(addr), Some(count)) = (input.word(), input.word()) else {
            break;
        };
        let req = match op % 8 {
            0 => Request::ReadInputRegisters(addr, count),
            1 => Request::ReadHoldingRegisters(addr, count),
            2 => Request::WriteSingleRegister(addr, count),
            3 => {
                let n = count as usize % 130;
                let values: Vec<u16> = (0..n).map_while(|_| input.word()).collect();
                Request::WriteMultipleRegisters(addr, Cow::Owned(values))
            }
            4 => {
                // A press on a keypad, between two polls.
                let _ = bus.press(unit, Key::from_code(count).unwrap_or(Key::Digit(1)));
                continue;
            }
            5 if op & 0x80 != 0 => {
                let _ = bus.power_cycle(unit);
                continue;
            }
            5 => {
                let _ = bus.set_online(unit, op & 0x40 == 0);
                continue;
            }
            6 => Request::ReadCoils(addr, count),
            _ => Request::WriteSingleCoil(addr, count != 0),
        };
        let before = bus.lines(unit).ok();
        let answer = bus.answer(unit, req.clone());
        match (&req, answer) {
            (_, None) => {}
            (Request::ReadInputRegisters(a, n), Some(Ok(Response::ReadInputRegisters(regs)))) => {
                assert_eq!(regs.len(), *n as usize);
                if *a == 0 && *n >= regmap::IDENTITY_LEN {
                    Identity::decode(&regs).expect("a simulated device has a valid identity");
                }
                if *a == regmap::STATUS_START && *n == regmap::STATUS_LEN {
                    let status = Status::decode(&regs).expect("status block");
                    let step = trackers[ui].step(&status);
                    if let Some(seq) = step.ack {
                        let _ =
                            bus.answer(unit, Request::WriteSingleRegister(regmap::KEY_ACK, seq));
                    }
                }
            }
            (
                Request::ReadHoldingRegisters(_, n),
                Some(Ok(Response::ReadHoldingRegisters(regs))),
            ) => {
                assert_eq!(regs.len(), *n as usize);
            }
            (
                Request::WriteSingleRegister(a, v),
                Some(Ok(Response::WriteSingleRegister(ra, rv))),
            ) => {
                assert_eq!((*a, *v), (ra, rv));
            }
            (
                Request::WriteMultipleRegisters(a, values),
                Some(Ok(Response::WriteMultipleRegisters(ra, rn))),
            ) => {
                assert_eq!((*a, values.len()), (ra, rn as usize));
                assert!(!values.is_empty());
                let shown = bus.lines(unit).expect("the device answered");
                let n = (a.wrapping_sub(regmap::LINE_BASE) / regmap::LINE_STRIDE) as usize;
                if *a >= regmap::LINE_BASE && n < shown.len() {
                    let line = regmap::decode_line(values).expect("an accepted line decodes");
                    assert_eq!(shown[n], line, "what the screen shows is what was written");
                }
            }
            (_, Some(Ok(other))) => panic!("{req:?} answered {other:?}"),
            (_, Some(Err(code))) => {
                assert_ne!(code, ExceptionCode::ServerDeviceFailure);
                // A refused request changes no line on the screen.
                assert_eq!(
                    bus.lines(unit).ok(),
                    before,
                    "{req:?} refused but changed lines"
                );
            }
        }
    }
});
