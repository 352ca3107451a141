//! The reader driver: one command, one answer, over any `Read + Write` port whose reads
//! time out (a serial port, a pseudo-terminal). The caller's thread owns it.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::frame::{Answer, Command, Status, parse_frames};
use super::text::{CardText, TextError, split_base};

/// Why a command got no usable answer.
#[derive(Debug, Error)]
pub enum ReaderError {
    /// The port failed (unplugged, say).
    #[error("reader port: {0}")]
    Io(#[from] std::io::Error),
    /// No whole answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The reader answered with a status the command does not expect.
    #[error("the reader answered {command:?} with status {status:?}")]
    Status {
        /// The command sent.
        command: Command,
        /// What came back.
        status: Status,
    },
    /// The card's text block is not a card's.
    #[error("card text: {0}")]
    Text(#[from] TextError),
}

/// A reader on a port.
pub struct IdReader<P> {
    port: P,
    timeout: Duration,
    buf: Vec<u8>,
    corrupt: u64,
}

impl<P: Read + Write> IdReader<P> {
    /// A reader on `port`; each command waits at most `timeout` for its answer.
    pub fn new(port: P, timeout: Duration) -> IdReader<P> {
        IdReader {
            port,
            timeout,
            buf: Vec::new(),
            corrupt: 0,
        }
    }

    /// Corrupt frames seen so far (bad checksum or length).
    pub fn corrupt_frames(&self) -> u64 {
        self.corrupt
    }

    /// Give the port back.
    pub fn release(self) -> P {
        self.port
    }

    /// Sends `command` and returns the reader's answer, whatever its status. Bytes
    /// left from an earlier answer are dropped first, so a late answer is never taken
    /// for this one's.
    pub fn transact(&mut self, command: Command) -> Result<Answer, ReaderError> {
        self.buf.clear();
        self.port.write_all(&command.encode())?;
        self.port.flush()?;
        let deadline = Instant::now() + self.timeout;
        let mut chunk = [0u8; 2048];
        loop {
            let (frames, used, stats) = parse_frames(&self.buf);
            self.corrupt += stats.corrupt as u64;
            self.buf.drain(..used);
            if let Some(a) = frames.iter().find_map(|f| Answer::from_body(f).ok()) {
                return Ok(a);
            }
            if Instant::now() >= deadline {
                return Err(ReaderError::Timeout(self.timeout));
            }
            match self.port.read(&mut chunk) {
                Ok(0) => std::thread::sleep(Duration::from_millis(2)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// [`IdReader::transact`], refusing any status but `want`.
    fn expect(&mut self, command: Command, want: Status) -> Result<Answer, ReaderError> {
        let a = self.transact(command)?;
        if a.status() == want {
            Ok(a)
        } else {
            Err(ReaderError::Status {
                command,
                status: a.status(),
            })
        }
    }

    /// Whether a new card lies on the reader (find card).
    pub fn find(&mut self) -> Result<bool, ReaderError> {
        let a = self.transact(Command::FindCard)?;
        match a.status() {
            Status::Found => Ok(true),
            Status::NoCard => Ok(false),
            status => Err(ReaderError::Status {
                command: Command::FindCard,
                status,
            }),
        }
    }

    /// Whether the card read before is still there (select card answers while it is,
    /// when find card no longer does).
    pub fn still_there(&mut self) -> Result<bool, ReaderError> {
        let a = self.transact(Command::SelectCard)?;
        match a.status() {
            Status::Ok => Ok(true),
            Status::SelectFailed | Status::NoCard => Ok(false),
            status => Err(ReaderError::Status {
                command: Command::SelectCard,
                status,
            }),
        }
    }

    /// Reads the card found: select, then read the text (the photo is dropped). `None`
    /// when the card left before it was read.
    pub fn read_card(&mut self) -> Result<Option<CardText>, ReaderError> {
        if !self.still_there()? {
            return Ok(None);
        }
        let a = self.expect(Command::ReadBase, Status::Ok)?;
        let (text, _photo) = split_base(&a.data)?;
        Ok(Some(CardText::decode(text)?))
    }

    /// Find, and read if a new card is there.
    pub fn poll(&mut self) -> Result<Option<CardText>, ReaderError> {
        if self.find()? {
            self.read_card()
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idcard::frame::{Answer, SW3_FOUND, SW3_NO_CARD, SW3_OK};
    use crate::idcard::sim::SimReader;
    use crate::idcard::text::join_base;

    /// A port that answers each request with what the script gives, and records what
    /// was sent.
    struct Scripted {
        answers: Vec<Vec<u8>>,
        pending: Vec<u8>,
        sent: Vec<u8>,
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pending.is_empty() {
                return Err(ErrorKind::TimedOut.into());
            }
            // Two bytes at a time: answers arrive in pieces, as on a UART.
            let n = self.pending.len().min(buf.len()).min(2);
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.sent.extend_from_slice(buf);
            if !self.answers.is_empty() {
                self.pending = self.answers.remove(0);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_card_read_is_find_select_read_and_noise_is_skipped() {
        let card = CardText::specimen("王小明", "11010119500101101X");
        let mut noisy = vec![0x00, 0x13];
        noisy.extend(Answer::new(SW3_FOUND, vec![0; 4]).encode());
        let port = Scripted {
            answers: vec![
                noisy,
                Answer::new(SW3_OK, vec![0; 8]).encode(),
                Answer::new(SW3_OK, join_base(&card.encode().unwrap(), &[0; 1024])).encode(),
            ],
            pending: Vec::new(),
            sent: Vec::new(),
        };
        let mut r = IdReader::new(port, Duration::from_millis(200));
        assert_eq!(r.poll().unwrap(), Some(card));
        let sent = r.release().sent;
        let mut want = Command::FindCard.encode();
        want.extend(Command::SelectCard.encode());
        want.extend(Command::ReadBase.encode());
        assert_eq!(sent, want);
    }

    #[test]
    fn no_card_is_none_and_silence_is_a_timeout() {
        let port = Scripted {
            answers: vec![Answer::new(SW3_NO_CARD, Vec::new()).encode()],
            pending: Vec::new(),
            sent: Vec::new(),
        };
        let mut r = IdReader::new(port, Duration::from_millis(50));
        assert_eq!(r.poll().unwrap(), None);
        assert!(matches!(r.poll(), Err(ReaderError::Timeout(_))));
    }

    #[test]
    fn the_simulator_answers_the_driver() {
        let mut sim = SimReader::default();
        let card = CardText::specimen("李四", "440524188001010014");
        struct Loop<'a>(&'a mut SimReader, Vec<u8>);
        impl Read for Loop<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.1.is_empty() {
                    return Err(ErrorKind::TimedOut.into());
                }
                let n = self.1.len().min(buf.len());
                buf[..n].copy_from_slice(&self.1[..n]);
                self.1.drain(..n);
                Ok(n)
            }
        }
        impl Write for Loop<'_> {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let out = self.0.feed(buf);
                self.1.extend(out);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        {
            let mut r = IdReader::new(Loop(&mut sim, Vec::new()), Duration::from_millis(50));
            assert_eq!(r.poll().unwrap(), None);
        }
        sim.place(card.clone());
        let mut r = IdReader::new(Loop(&mut sim, Vec::new()), Duration::from_millis(50));
        assert_eq!(r.poll().unwrap(), Some(card));
        // Read once, the card no longer answers find, but select says it is there.
        assert!(!r.find().unwrap());
        assert!(r.still_there().unwrap());
        drop(r);
        sim.remove();
        let mut r = IdReader::new(Loop(&mut sim, Vec::new()), Duration::from_millis(50));
        assert!(!r.still_there().unwrap());
    }
}
