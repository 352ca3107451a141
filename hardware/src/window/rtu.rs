//! A small synchronous Modbus RTU master over any `Read + Write`, and the Modbus
//! implementation of [`CounterDisplay`].
//!
//! The daemon's bus task uses `tokio-modbus`; this module exists for the places that
//! are synchronous by nature (a setup tool, a device test jig, golden-frame tests that
//! pin the exact bytes on the wire) and to cross-check tokio-modbus byte for byte.
//! Only the function codes the profile uses are here: 0x03, 0x04, 0x06, 0x10.

use std::io::{Read, Write};

use thiserror::Error;

use super::CounterDisplay;
use super::regmap;
use super::text::DisplayContent;

/// Read Holding Registers.
pub const FC_READ_HOLDING: u8 = 0x03;
/// Read Input Registers.
pub const FC_READ_INPUT: u8 = 0x04;
/// Write Single Register.
pub const FC_WRITE_SINGLE: u8 = 0x06;
/// Write Multiple Registers.
pub const FC_WRITE_MULTIPLE: u8 = 0x10;
/// Most registers one FC 0x10 request may carry.
pub const MAX_WRITE_REGS: usize = 123;
/// Most registers one read may return.
pub const MAX_READ_REGS: u16 = 125;

/// Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= b as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

fn finish(mut frame: Vec<u8>) -> Vec<u8> {
    let crc = crc16(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

/// A request, as the master sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// FC 0x03.
    ReadHolding {
        /// First register.
        addr: u16,
        /// How many.
        count: u16,
    },
    /// FC 0x04.
    ReadInput {
        /// First register.
        addr: u16,
        /// How many.
        count: u16,
    },
    /// FC 0x06.
    WriteSingle {
        /// Register.
        addr: u16,
        /// Value.
        value: u16,
    },
    /// FC 0x10.
    WriteMultiple {
        /// First register.
        addr: u16,
        /// Values (at most 123).
        values: Vec<u16>,
    },
}

impl Request {
    /// The function code.
    pub fn function(&self) -> u8 {
        match self {
            Request::ReadHolding { .. } => FC_READ_HOLDING,
            Request::ReadInput { .. } => FC_READ_INPUT,
            Request::WriteSingle { .. } => FC_WRITE_SINGLE,
            Request::WriteMultiple { .. } => FC_WRITE_MULTIPLE,
        }
    }

    /// The whole RTU frame for `unit`, CRC included.
    pub fn encode(&self, unit: u8) -> Vec<u8> {
        let mut f = vec![unit, self.function()];
        match self {
            Request::ReadHolding { addr, count } | Request::ReadInput { addr, count } => {
                f.extend_from_slice(&addr.to_be_bytes());
                f.extend_from_slice(&count.to_be_bytes());
            }
            Request::WriteSingle { addr, value } => {
                f.extend_from_slice(&addr.to_be_bytes());
                f.extend_from_slice(&value.to_be_bytes());
            }
            Request::WriteMultiple { addr, values } => {
                f.extend_from_slice(&addr.to_be_bytes());
                f.extend_from_slice(&(values.len() as u16).to_be_bytes());
                f.push((values.len() * 2) as u8);
                for v in values {
                    f.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        finish(f)
    }

    /// Length in bytes of the normal response frame.
    pub fn response_len(&self) -> usize {
        match self {
            Request::ReadHolding { count, .. } | Request::ReadInput { count, .. } => {
                5 + 2 * *count as usize
            }
            Request::WriteSingle { .. } | Request::WriteMultiple { .. } => 8,
        }
    }
}

/// Bytes on the wire for `bytes` bytes at `baud`, 8N1 (10 bits a byte).
pub fn wire_time(bytes: usize, baud: u32) -> std::time::Duration {
    std::time::Duration::from_secs_f64(bytes as f64 * 10.0 / baud as f64)
}

/// Why a Modbus exchange failed.
#[derive(Debug, Error)]
pub enum RtuError {
    /// Transport failure or timeout.
    #[error("serial I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The device answered with a Modbus exception.
    #[error("device answered exception {code:#04x} to function {function:#04x}")]
    Exception {
        /// Function code.
        function: u8,
        /// Exception code (1 illegal function, 2 address, 3 value...).
        code: u8,
    },
    /// The answer was malformed (bad CRC, wrong unit or function, wrong length).
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    /// A request the profile cannot send (too many registers to write or to read).
    #[error("request too large: {0} registers")]
    TooLarge(usize),
}

/// A decoded response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Registers read.
    Registers(Vec<u16>),
    /// A write was confirmed.
    Written,
}

/// Parse a complete response frame to `req` from `unit`. Any byte string is safe to
/// pass; only a frame that matches the request exactly is accepted.
pub fn parse_response(unit: u8, req: &Request, frame: &[u8]) -> Result<Response, RtuError> {
    if frame.len() < 5 {
        return Err(RtuError::Malformed("short frame"));
    }
    let (body, crc) = frame.split_at(frame.len() - 2);
    if crc16(body).to_le_bytes() != [crc[0], crc[1]] {
        return Err(RtuError::Malformed("bad CRC"));
    }
    if body[0] != unit {
        return Err(RtuError::Malformed("answer from another unit"));
    }
    let fc = req.function();
    if body[1] == fc | 0x80 {
        return Err(RtuError::Exception {
            function: fc,
            code: body[2],
        });
    }
    if body[1] != fc {
        return Err(RtuError::Malformed("function code mismatch"));
    }
    match req {
        Request::ReadHolding { count, .. } | Request::ReadInput { count, .. } => {
            let n = body[2] as usize;
            if n != 2 * *count as usize || body.len() != 3 + n {
                return Err(RtuError::Malformed("byte count mismatch"));
            }
            Ok(Response::Registers(
                body[3..]
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect(),
            ))
        }
        Request::WriteSingle { addr, value } => {
            if body.len() != 6 || body[2..6] != [addr.to_be_bytes(), value.to_be_bytes()].concat() {
                return Err(RtuError::Malformed("write echo mismatch"));
            }
            Ok(Response::Written)
        }
        Request::WriteMultiple { addr, values } => {
            let want = [addr.to_be_bytes(), (values.len() as u16).to_be_bytes()].concat();
            if body.len() != 6 || body[2..6] != want[..] {
                return Err(RtuError::Malformed("write echo mismatch"));
            }
            Ok(Response::Written)
        }
    }
}

/// A synchronous RTU master: one request, one answer, over a transport whose reads
/// time out (a `serialport` port with a timeout, a PTY, a test buffer).
pub struct RtuMaster<T> {
    io: T,
}

impl<T: Read + Write> RtuMaster<T> {
    /// Wrap a transport.
    pub fn new(io: T) -> Self {
        RtuMaster { io }
    }

    /// Give the transport back.
    pub fn release(self) -> T {
        self.io
    }

    /// Send `req` to `unit` and wait for the answer.
    pub fn call(&mut self, unit: u8, req: &Request) -> Result<Response, RtuError> {
        match req {
            Request::WriteMultiple { values, .. } if values.len() > MAX_WRITE_REGS => {
                return Err(RtuError::TooLarge(values.len()));
            }
            Request::ReadHolding { count, .. } | Request::ReadInput { count, .. }
                if *count > MAX_READ_REGS =>
            {
                return Err(RtuError::TooLarge(*count as usize));
            }
            _ => {}
        }
        self.io.write_all(&req.encode(unit))?;
        self.io.flush()?;
        let mut buf = Vec::with_capacity(req.response_len());
        let mut chunk = [0u8; 256];
        loop {
            // An exception frame is 5 bytes; a normal one is response_len.
            let want = if buf.len() >= 2 && buf[1] & 0x80 != 0 {
                5
            } else {
                req.response_len()
            };
            if buf.len() >= want {
                return parse_response(unit, req, &buf[..want]);
            }
            let room = (want - buf.len()).min(chunk.len());
            let n = self.io.read(&mut chunk[..room])?;
            if n == 0 {
                return Err(RtuError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// FC 0x04.
    pub fn read_input(&mut self, unit: u8, addr: u16, count: u16) -> Result<Vec<u16>, RtuError> {
        match self.call(unit, &Request::ReadInput { addr, count })? {
            Response::Registers(r) => Ok(r),
            Response::Written => Err(RtuError::Malformed("unexpected response")),
        }
    }

    /// FC 0x03.
    pub fn read_holding(&mut self, unit: u8, addr: u16, count: u16) -> Result<Vec<u16>, RtuError> {
        match self.call(unit, &Request::ReadHolding { addr, count })? {
            Response::Registers(r) => Ok(r),
            Response::Written => Err(RtuError::Malformed("unexpected response")),
        }
    }

    /// FC 0x06.
    pub fn write_single(&mut self, unit: u8, addr: u16, value: u16) -> Result<(), RtuError> {
        self.call(unit, &Request::WriteSingle { addr, value })
            .map(|_| ())
    }

    /// FC 0x10.
    pub fn write_multiple(&mut self, unit: u8, addr: u16, values: &[u16]) -> Result<(), RtuError> {
        self.call(
            unit,
            &Request::WriteMultiple {
                addr,
                values: values.to_vec(),
            },
        )
        .map(|_| ())
    }
}

/// The requests that make a profile screen with `lines` lines show `content`: one FC
/// 0x10 per line (blank lines for the rest), then brightness. Shared by this module and
/// the async bus so both send the same bytes.
pub fn display_requests(content: &DisplayContent, lines: u16) -> Vec<Request> {
    let mut reqs: Vec<Request> = (0..lines.min(regmap::MAX_LINES))
        .map(|n| Request::WriteMultiple {
            addr: regmap::line_address(n),
            values: content
                .lines
                .get(n as usize)
                .map(regmap::encode_line)
                .unwrap_or_else(regmap::blank_line),
        })
        .collect();
    reqs.push(Request::WriteSingle {
        addr: regmap::BRIGHTNESS,
        value: content.brightness.min(15) as u16,
    });
    reqs
}

/// A hall-profile screen reached through a synchronous [`RtuMaster`].
pub struct ModbusDisplay<T> {
    master: RtuMaster<T>,
    unit: u8,
    lines: u16,
}

impl<T: Read + Write> ModbusDisplay<T> {
    /// A screen at `unit` with `lines` lines (from its identity block, or config).
    pub fn new(master: RtuMaster<T>, unit: u8, lines: u16) -> Self {
        ModbusDisplay {
            master,
            unit,
            lines,
        }
    }

    /// Give the master back.
    pub fn release(self) -> RtuMaster<T> {
        self.master
    }
}

impl<T: Read + Write> CounterDisplay for ModbusDisplay<T> {
    type Error = RtuError;

    fn show(&mut self, content: &DisplayContent) -> Result<(), RtuError> {
        for req in display_requests(content, self.lines) {
            self.master.call(self.unit, &req)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::text::{Align, Colour, DisplayLine};

    /// A transport that records what is written and plays back canned answers.
    struct Script {
        written: Vec<u8>,
        answers: std::collections::VecDeque<Vec<u8>>,
        current: std::io::Cursor<Vec<u8>>,
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.current.position() as usize >= self.current.get_ref().len() {
                match self.answers.pop_front() {
                    Some(a) => self.current = std::io::Cursor::new(a),
                    None => return Err(std::io::ErrorKind::TimedOut.into()),
                }
            }
            self.current.read(buf)
        }
    }
    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn crc_matches_the_modbus_specification_example() {
        // Modbus over Serial Line v1.02, the classic "01 03 00 00 00 0A" → C5 CD.
        assert_eq!(
            Request::ReadHolding { addr: 0, count: 10 }.encode(1),
            hex("01 03 00 00 00 0A C5 CD")
        );
        assert_eq!(crc16(&hex("02 07")), 0x1241);
    }

    #[test]
    fn the_call_line_of_the_protocol_page_is_this_frame() {
        let line = DisplayLine::new("请 A001 号")
            .unwrap()
            .colour(Colour::Red)
            .align(Align::Centre);
        let req = Request::WriteMultiple {
            addr: regmap::line_address(0),
            values: regmap::encode_line(&line),
        };
        assert_eq!(
            req.encode(3),
            hex("03 10 10 00 00 08 10 00 01 01 00 00 0A C7 EB 20 41 30 30 31 20 BA C5 D6 C3")
        );
    }

    #[test]
    fn status_poll_and_ack_frames() {
        assert_eq!(
            Request::ReadInput {
                addr: regmap::STATUS_START,
                count: regmap::STATUS_LEN
            }
            .encode(5),
            hex("05 04 00 10 00 22 70 52")
        );
        assert_eq!(
            Request::WriteSingle {
                addr: regmap::KEY_ACK,
                value: 3
            }
            .encode(5),
            hex("05 06 01 00 00 03 C9 B3")
        );
    }

    #[test]
    fn a_display_shows_through_the_master_and_exceptions_surface() {
        let content = DisplayContent::from_lines(&["A001", "请到3号窗口"]).unwrap();
        let reqs = display_requests(&content, 2);
        let answers = reqs
            .iter()
            .map(|r| match r {
                Request::WriteMultiple { addr, values } => finish(
                    [
                        vec![7, 0x10],
                        addr.to_be_bytes().to_vec(),
                        (values.len() as u16).to_be_bytes().to_vec(),
                    ]
                    .concat(),
                ),
                Request::WriteSingle { .. } => r.encode(7),
                _ => unreachable!(),
            })
            .collect();
        let script = Script {
            written: vec![],
            answers,
            current: std::io::Cursor::new(vec![]),
        };
        let mut d = ModbusDisplay::new(RtuMaster::new(script), 7, 2);
        d.show(&content).unwrap();
        let written = d.release().release().written;
        let expected: Vec<u8> = reqs.iter().flat_map(|r| r.encode(7)).collect();
        assert_eq!(written, expected);

        let script = Script {
            written: vec![],
            answers: [finish(vec![7, 0x90, 0x03])].into(),
            current: std::io::Cursor::new(vec![]),
        };
        let mut d = ModbusDisplay::new(RtuMaster::new(script), 7, 2);
        assert!(matches!(
            d.show(&content),
            Err(RtuError::Exception {
                function: 0x10,
                code: 3
            })
        ));
        // A silent device times out instead of hanging.
        let script = Script {
            written: vec![],
            answers: Default::default(),
            current: std::io::Cursor::new(vec![]),
        };
        let mut d = ModbusDisplay::new(RtuMaster::new(script), 7, 2);
        assert!(matches!(d.show(&content), Err(RtuError::Io(_))));
    }

    #[test]
    fn a_read_of_more_registers_than_a_frame_holds_is_refused_before_sending() {
        // Found by the modbus_master fuzz target: 130 registers made the reader slice
        // its 256-byte buffer at 265.
        let script = Script {
            written: vec![],
            answers: Default::default(),
            current: std::io::Cursor::new(vec![]),
        };
        let mut m = RtuMaster::new(script);
        assert!(matches!(
            m.read_input(1, 0, MAX_READ_REGS + 5),
            Err(RtuError::TooLarge(130))
        ));
        assert!(m.release().written.is_empty());
    }

    #[test]
    fn wire_time_at_9600_is_about_a_millisecond_a_byte() {
        let t = wire_time(20, 9600);
        assert!((t.as_secs_f64() - 0.020833).abs() < 1e-5);
    }

    proptest::proptest! {
        #[test]
        fn no_response_bytes_make_the_parser_panic(
            frame in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            count in 0u16..130,
        ) {
            for req in [
                Request::ReadInput { addr: 0, count },
                Request::ReadHolding { addr: 0, count },
                Request::WriteSingle { addr: 1, value: 2 },
                Request::WriteMultiple { addr: 1, values: vec![0; count as usize] },
            ] {
                let _ = parse_response(frame.first().copied().unwrap_or(0), &req, &frame);
                // A frame with a valid CRC exercises the inner checks too.
                let f = finish(frame.clone());
                let _ = parse_response(f[0], &req, &f);
            }
        }
    }
}
