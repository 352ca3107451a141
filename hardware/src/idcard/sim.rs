//! A simulated ID card reader: [`SimReader`] answers request frames as a SAM reader
//! does, from the card placed on it; [`SimReaderHandle`] serves it on a byte stream
//! (the master side of a pseudo-terminal) in a thread, and is how a test or
//! `hallq run --simulate` places and removes cards.
//!
//! Like a real reader, a card answers "find card" once after it is placed; once read,
//! find reports no card while "select card" still finds it, until it is lifted.

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::frame::{
    Answer, Command, Request, SW3_CHECKSUM, SW3_COMMAND, SW3_FOUND, SW3_NO_CARD, SW3_NO_CONTENT,
    SW3_OK, SW3_READ_FAILED, SW3_SELECT_FAILED, parse_frames,
};
use super::text::{CardText, join_base};

/// Length of the (blank) photo the simulator sends, as a real card's WLT photo.
pub const PHOTO_LEN: usize = 1024;

/// What the simulator has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Requests answered.
    pub requests: u64,
    /// Corrupt frames (bad checksum or length) received, each answered `00 00 10`.
    pub corrupt: u64,
    /// Card texts sent.
    pub reads: u64,
}

/// The reader's state.
#[derive(Debug, Default)]
pub struct SimReader {
    card: Option<CardText>,
    /// The placed card has not answered a find yet.
    fresh: bool,
    /// Selected since the last find.
    selected: bool,
    buf: Vec<u8>,
    stats: SimStats,
}

impl SimReader {
    /// Lays `card` on the reader (replacing any).
    pub fn place(&mut self, card: CardText) {
        self.card = Some(card);
        self.fresh = true;
        self.selected = false;
    }

    /// Lifts the card.
    pub fn remove(&mut self) {
        self.card = None;
        self.fresh = false;
        self.selected = false;
    }

    /// Whether a card lies on it.
    pub fn has_card(&self) -> bool {
        self.card.is_some()
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Takes bytes from the controller; returns the answer frames for every whole
    /// request among them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.buf.extend_from_slice(bytes);
        let (frames, used, stats) = parse_frames(&self.buf);
        self.buf.drain(..used);
        let mut out = Vec::new();
        for _ in 0..stats.corrupt {
            self.stats.corrupt += 1;
            out.extend(Answer::new(SW3_CHECKSUM, Vec::new()).encode());
        }
        for body in frames {
            self.stats.requests += 1;
            let answer = match Request::from_body(&body) {
                Ok(r) => self.answer(&r),
                Err(_) => Answer::new(SW3_COMMAND, Vec::new()),
            };
            out.extend(answer.encode());
        }
        out
    }

    fn answer(&mut self, r: &Request) -> Answer {
        match Command::from_code(r.code) {
            Some(Command::ResetSam | Command::SamStatus) => Answer::new(SW3_OK, Vec::new()),
            Some(Command::SamId) => Answer::new(SW3_OK, b"SIM-SAM-0000001\0".to_vec()),
            Some(Command::FindCard) => {
                self.selected = false;
                if self.card.is_some() && self.fresh {
                    self.fresh = false;
                    Answer::new(SW3_FOUND, vec![0; 4])
                } else {
                    Answer::new(SW3_NO_CARD, Vec::new())
                }
            }
            Some(Command::SelectCard) => {
                if self.card.is_some() {
                    self.selected = true;
                    Answer::new(SW3_OK, vec![0; 8])
                } else {
                    Answer::new(SW3_SELECT_FAILED, Vec::new())
                }
            }
            Some(Command::ReadBase | Command::ReadBaseFingerprint) => {
                match (&self.card, self.selected) {
                    (Some(card), true) => match card.encode() {
                        Ok(text) => {
                            self.stats.reads += 1;
                            Answer::new(SW3_OK, join_base(&text, &[0; PHOTO_LEN]))
                        }
                        Err(_) => Answer::new(SW3_READ_FAILED, Vec::new()),
                    },
                    _ => Answer::new(SW3_READ_FAILED, Vec::new()),
                }
            }
            Some(Command::ReadExtraAddress) => Answer::new(SW3_NO_CONTENT, Vec::new()),
            None => Answer::new(SW3_COMMAND, Vec::new()),
        }
    }
}

/// How often the serving thread wakes to check for a stop request.
const POLL: Duration = Duration::from_millis(20);

fn lock(m: &Mutex<SimReader>) -> MutexGuard<'_, SimReader> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A simulated reader serving a stream in its own thread. Dropping it stops the thread.
pub struct SimReaderHandle {
    shared: Arc<Mutex<SimReader>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SimReaderHandle {
    /// Serves on `stream`, whose reads must time out (a `serialport::TTYPort` master
    /// from `TTYPort::pair()` does, after 100 ms).
    pub fn serve_stream<S>(mut stream: S) -> std::io::Result<SimReaderHandle>
    where
        S: Read + Write + Send + 'static,
    {
        let shared = Arc::new(Mutex::new(SimReader::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("sim-id-reader".into())
            .spawn(move || {
                let mut buf = [0u8; 1024];
                while !st.load(Ordering::Relaxed) {
                    match stream.read(&mut buf) {
                        Ok(0) => std::thread::sleep(POLL),
                        Ok(n) => {
                            let out = lock(&s).feed(&buf[..n]);
                            if !out.is_empty() && stream.write_all(&out).is_err() {
                                std::thread::sleep(POLL);
                            }
                            let _ = stream.flush();
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::TimedOut
                                    | ErrorKind::WouldBlock
                                    | ErrorKind::Interrupted
                            ) => {}
                        // The other side closed (nobody has the terminal open): wait
                        // for the controller to open it again.
                        Err(_) => std::thread::sleep(POLL),
                    }
                }
            })?;
        Ok(SimReaderHandle {
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// A handle to place and lift cards from another thread.
    pub fn control(&self) -> SimReaderControl {
        SimReaderControl {
            shared: self.shared.clone(),
        }
    }

    /// Lays `card` on the reader.
    pub fn place(&self, card: CardText) {
        lock(&self.shared).place(card);
    }

    /// Lifts the card.
    pub fn remove(&self) {
        lock(&self.shared).remove();
    }

    /// Whether a card lies on it.
    pub fn has_card(&self) -> bool {
        lock(&self.shared).has_card()
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        lock(&self.shared).stats()
    }
}

/// Places and lifts cards on a served simulated reader; cheap to clone.
#[derive(Clone)]
pub struct SimReaderControl {
    shared: Arc<Mutex<SimReader>>,
}

impl SimReaderControl {
    /// Lays `card` on the reader.
    pub fn place(&self, card: CardText) {
        lock(&self.shared).place(card);
    }

    /// Lifts the card.
    pub fn remove(&self) {
        lock(&self.shared).remove();
    }
}

impl Drop for SimReaderHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idcard::frame::{PREAMBLE, Status};

    fn answers(bytes: &[u8]) -> Vec<Answer> {
        let (frames, used, stats) = parse_frames(bytes);
        assert_eq!((used, stats.corrupt), (bytes.len(), 0));
        frames
            .iter()
            .map(|f| Answer::from_body(f).unwrap())
            .collect()
    }

    #[test]
    fn a_placed_card_is_found_once_selected_while_there_and_read_in_full() {
        let mut sim = SimReader::default();
        let a = answers(&sim.feed(&Command::FindCard.encode()));
        assert_eq!(a[0].status(), Status::NoCard);
        sim.place(CardText::specimen("王小明", "11010119500101101X"));
        let mut both = Command::FindCard.encode();
        both.extend(Command::SelectCard.encode());
        both.extend(Command::ReadBase.encode());
        // In pieces, as a UART delivers them.
        let mut out = Vec::new();
        for piece in both.chunks(3) {
            out.extend(sim.feed(piece));
        }
        let a = answers(&out);
        assert_eq!(
            a.iter().map(Answer::status).collect::<Vec<_>>(),
            [Status::Found, Status::Ok, Status::Ok]
        );
        // 1,295 bytes on the wire, as a real card's text and photo.
        assert_eq!(a[2].encode().len(), 1295);
        let a = answers(&sim.feed(&Command::FindCard.encode()));
        assert_eq!(a[0].status(), Status::NoCard);
        sim.remove();
        let a = answers(&sim.feed(&Command::SelectCard.encode()));
        assert_eq!(a[0].status(), Status::SelectFailed);
        assert_eq!(sim.stats().reads, 1);
    }

    #[test]
    fn a_corrupt_request_is_answered_with_the_checksum_error() {
        let mut sim = SimReader::default();
        let mut bad = Command::FindCard.encode();
        *bad.last_mut().unwrap() ^= 1;
        let out = sim.feed(&bad);
        assert_eq!(
            out,
            [PREAMBLE.as_slice(), &[0x00, 0x04, 0x00, 0x00, 0x10, 0x14]].concat()
        );
        assert_eq!(sim.stats().corrupt, 1);
        let unknown = crate::idcard::frame::encode_request([0x77, 0x01], &[]);
        assert_eq!(answers(&sim.feed(&unknown))[0].sw[2], SW3_COMMAND);
    }
}
