//! The Modbus RTU master's side of the wire (`hallq_hardware::window::rtu`): whatever a
//! device, a second master or line noise sends back, `parse_response` and
//! `RtuMaster::call` give registers, an exception or a clear error, never a panic, a
//! hang or a read past what was asked. A well-formed answer built from the request
//! must parse back to exactly the registers it carries (round trip).
#![no_main]

use std::io::{Cursor, Read, Write};

use hallq_hardware::window::rtu::{
    MAX_READ_REGS, MAX_WRITE_REGS, Request, Response, RtuError, RtuMaster, crc16, parse_response,
};
use libfuzzer_sys::fuzz_target;

/// A device whose replies are the fuzz input; what the master writes is kept.
struct Wire {
    replies: Cursor<Vec<u8>>,
    written: Vec<u8>,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.replies.read(buf)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn u16_at(data: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([
        data.get(i).copied().unwrap_or(0),
        data.get(i + 1).copied().unwrap_or(0),
    ])
}

/// The request the input picks: function, unit, address and count from the first bytes.
fn request(data: &[u8]) -> (u8, Request) {
    let unit = data.get(1).copied().unwrap_or(1);
    let addr = u16_at(data, 2);
    let count = u16_at(data, 4) % (MAX_READ_REGS + 6);
    let req = match data.first().copied().unwrap_or(0) % 4 {
        0 => Request::ReadHolding { addr, count },
        1 => Request::ReadInput { addr, count },
        2 => Request::WriteSingle { addr, value: count },
        _ => Request::WriteMultiple {
            addr,
            values: (0..count as usize % (MAX_WRITE_REGS + 3))
                .map(|i| u16_at(data, 6 + 2 * i))
                .collect(),
        },
    };
    (unit, req)
}

/// Whether the master puts the request on the wire at all.
fn sendable(req: &Request) -> bool {
    match req {
        Request::WriteMultiple { values, .. } => values.len() <= MAX_WRITE_REGS,
        Request::ReadHolding { count, .. } | Request::ReadInput { count, .. } => {
            *count <= MAX_READ_REGS
        }
        Request::WriteSingle { .. } => true,
    }
}

fn with_crc(mut frame: Vec<u8>) -> Vec<u8> {
    let crc = crc16(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

fuzz_target!(|data: &[u8]| {
    let (unit, req) = request(data);
    let rest = data.get(6..).unwrap_or(&[]);

    // 1. Any bytes as a complete frame, as they are and with a valid CRC appended
    //    (so the checks past the CRC are reached too).
    let _ = parse_response(unit, &req, rest);
    let framed = with_crc(rest.to_vec());
    if let Ok(Response::Registers(regs)) = parse_response(unit, &req, &framed) {
        let count = match &req {
            Request::ReadHolding { count, .. } | Request::ReadInput { count, .. } => *count,
            _ => panic!("registers answered to a write"),
        };
        assert_eq!(regs.len(), count as usize);
    }

    // 2. The master reading the bytes as a stream: it stops at the length the
    //    request implies and never asks the port for more than that.
    let mut master = RtuMaster::new(Wire {
        replies: Cursor::new(rest.to_vec()),
        written: Vec::new(),
    });
    match master.call(unit, &req) {
        Ok(_) | Err(RtuError::Exception { .. } | RtuError::Malformed(_) | RtuError::Io(_)) => {}
        Err(RtuError::TooLarge(n)) => assert!(n > MAX_WRITE_REGS || n > MAX_READ_REGS as usize),
    }
    let wire = master.release();
    if sendable(&req) {
        assert_eq!(wire.written, req.encode(unit), "the request on the wire");
        assert!(wire.replies.position() as usize <= req.response_len().max(5));
    }

    // 3. Round trip: the answer a correct device gives parses to what it carries.
    let answer = match &req {
        Request::ReadHolding { count, .. } | Request::ReadInput { count, .. }
            if *count as usize * 2 <= 250 =>
        {
            let regs: Vec<u16> = (0..*count as usize).map(|i| u16_at(rest, 2 * i)).collect();
            let mut f = vec![unit, req.function(), (regs.len() * 2) as u8];
            for r in &regs {
                f.extend_from_slice(&r.to_be_bytes());
            }
            Some((with_crc(f), Response::Registers(regs)))
        }
        Request::ReadHolding { .. } | Request::ReadInput { .. } => None,
        Request::WriteSingle { .. } => Some((req.encode(unit), Response::Written)),
        Request::WriteMultiple { addr, values } => {
            let mut f = vec![unit, req.function()];
            f.extend_from_slice(&addr.to_be_bytes());
            f.extend_from_slice(&(values.len() as u16).to_be_bytes());
            Some((with_crc(f), Response::Written))
        }
    };
    if let Some((frame, want)) = answer {
        assert_eq!(parse_response(unit, &req, &frame).ok(), Some(want.clone()));
        if sendable(&req) {
            let mut master = RtuMaster::new(Wire {
                replies: Cursor::new(frame),
                written: Vec::new(),
            });
            assert_eq!(master.call(unit, &req).ok(), Some(want));
        }
    }
    // An exception answer surfaces as one, with its code.
    let exc = with_crc(vec![
        unit,
        req.function() | 0x80,
        rest.first().copied().unwrap_or(2),
    ]);
    assert!(matches!(
        parse_response(unit, &req, &exc),
        Err(RtuError::Exception { .. })
    ));
});
