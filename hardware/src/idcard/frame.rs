//! SAM frames: encoders for requests and answers, and a parser of a byte stream into
//! frames that skips noise and corrupt frames and counts them.

use thiserror::Error;

/// Every frame starts with these five bytes: three for synchronisation, two that mark
/// the start.
pub const PREAMBLE: [u8; 5] = [0xAA, 0xAA, 0xAA, 0x96, 0x69];

/// The largest LEN the parser believes. The longest real answer (text, photo and
/// fingerprints) declares 2,314; a corrupt length beyond this is garbage, not a frame
/// to wait for.
pub const MAX_LEN: usize = 4096;

/// CMD of the SAM-side commands (reset, status, id).
pub const CMD_SAM: [u8; 3] = [0x10, 0x11, 0x12];
/// Find card (寻卡): `20 01`.
pub const FIND_CARD: [u8; 2] = [0x20, 0x01];
/// Select card (选卡): `20 02`.
pub const SELECT_CARD: [u8; 2] = [0x20, 0x02];
/// Read the text and the photo (读基本信息): `30 01`.
pub const READ_BASE: [u8; 2] = [0x30, 0x01];
/// Read the newest extra address (读追加住址): `30 03`.
pub const READ_EXTRA_ADDRESS: [u8; 2] = [0x30, 0x03];
/// Read text, photo and fingerprints: `30 10`.
pub const READ_BASE_FINGERPRINT: [u8; 2] = [0x30, 0x10];
/// Reset the SAM: `10 FF`.
pub const RESET_SAM: [u8; 2] = [0x10, 0xFF];
/// SAM status check: `11 FF`.
pub const SAM_STATUS: [u8; 2] = [0x11, 0xFF];
/// Read the SAM's serial number: `12 FF`.
pub const SAM_ID: [u8; 2] = [0x12, 0xFF];

/// SW3: done (操作成功).
pub const SW3_OK: u8 = 0x90;
/// SW3: a card was found (找卡成功); the data is the card's 4-byte IIN.
pub const SW3_FOUND: u8 = 0x9F;
/// SW3: the checksum of the request was wrong.
pub const SW3_CHECKSUM: u8 = 0x10;
/// SW3: the length of the request was wrong.
pub const SW3_LENGTH: u8 = 0x11;
/// SW3: a command the reader does not take, or not now.
pub const SW3_COMMAND: u8 = 0x21;
/// SW3: an error the reader cannot name.
pub const SW3_UNKNOWN_ERROR: u8 = 0x24;
/// SW3: the card refused the reader's authentication.
pub const SW3_CARD_AUTH: u8 = 0x31;
/// SW3: the reader refused the card's authentication.
pub const SW3_READER_AUTH: u8 = 0x32;
/// SW3: the information did not verify.
pub const SW3_VERIFY: u8 = 0x33;
/// SW3: not a resident ID card.
pub const SW3_WRONG_CARD: u8 = 0x40;
/// SW3: reading the card failed.
pub const SW3_READ_FAILED: u8 = 0x41;
/// SW3: the card gave no random number.
pub const SW3_RANDOM: u8 = 0x47;
/// SW3: the reader's self test failed; it takes no command.
pub const SW3_SELF_TEST: u8 = 0x60;
/// SW3: the reader is not authorised for use.
pub const SW3_NOT_AUTHORISED: u8 = 0x66;
/// SW3: no card found (搜寻身份证失败).
pub const SW3_NO_CARD: u8 = 0x80;
/// SW3: selecting the card failed (the card left, usually).
pub const SW3_SELECT_FAILED: u8 = 0x81;
/// SW3: the card has nothing for this item (no extra address, say).
pub const SW3_NO_CONTENT: u8 = 0x91;

/// A command the controller sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Reset the SAM.
    ResetSam,
    /// Ask the SAM's state.
    SamStatus,
    /// Read the SAM's serial number.
    SamId,
    /// Is a card in the field?
    FindCard,
    /// Select the card found.
    SelectCard,
    /// Read the text block and the photo.
    ReadBase,
    /// Read the text block, the photo and the fingerprints.
    ReadBaseFingerprint,
    /// Read the newest extra address.
    ReadExtraAddress,
}

impl Command {
    /// Every command, for tests and the simulator.
    pub const ALL: [Command; 8] = [
        Command::ResetSam,
        Command::SamStatus,
        Command::SamId,
        Command::FindCard,
        Command::SelectCard,
        Command::ReadBase,
        Command::ReadBaseFingerprint,
        Command::ReadExtraAddress,
    ];

    /// CMD and PARA.
    pub fn code(self) -> [u8; 2] {
        match self {
            Command::ResetSam => RESET_SAM,
            Command::SamStatus => SAM_STATUS,
            Command::SamId => SAM_ID,
            Command::FindCard => FIND_CARD,
            Command::SelectCard => SELECT_CARD,
            Command::ReadBase => READ_BASE,
            Command::ReadBaseFingerprint => READ_BASE_FINGERPRINT,
            Command::ReadExtraAddress => READ_EXTRA_ADDRESS,
        }
    }

    /// The command with this CMD and PARA.
    pub fn from_code(code: [u8; 2]) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The request frame.
    pub fn encode(self) -> Vec<u8> {
        encode_request(self.code(), &[])
    }
}

/// Status of an answer, from SW3 (SW1 and SW2 only forward the card's own APDU status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Done.
    Ok,
    /// A card was found.
    Found,
    /// No card in the field.
    NoCard,
    /// The card could not be selected.
    SelectFailed,
    /// The card has nothing for this item.
    NoContent,
    /// The reader judged our request malformed (checksum, length or command).
    BadRequest(u8),
    /// The card failed: authentication, verification, reading, wrong kind of card.
    CardError(u8),
    /// The reader itself is unusable: self test failed, not authorised.
    ReaderError(u8),
    /// A code not in the protocol.
    Other(u8),
}

impl Status {
    /// The status an SW3 byte means.
    pub fn from_sw3(sw3: u8) -> Status {
        match sw3 {
            SW3_OK => Status::Ok,
            SW3_FOUND => Status::Found,
            SW3_NO_CARD => Status::NoCard,
            SW3_SELECT_FAILED => Status::SelectFailed,
            SW3_NO_CONTENT => Status::NoContent,
            SW3_CHECKSUM | SW3_LENGTH | SW3_COMMAND => Status::BadRequest(sw3),
            SW3_CARD_AUTH | SW3_READER_AUTH | SW3_VERIFY | SW3_WRONG_CARD | SW3_READ_FAILED
            | SW3_RANDOM => Status::CardError(sw3),
            SW3_SELF_TEST | SW3_NOT_AUTHORISED | SW3_UNKNOWN_ERROR => Status::ReaderError(sw3),
            other => Status::Other(other),
        }
    }
}

/// A request as the reader receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// CMD and PARA.
    pub code: [u8; 2],
    /// Data after them (none for the commands above).
    pub data: Vec<u8>,
}

/// An answer as the controller receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// SW1, SW2 (the card's APDU status) and SW3 (the reader's).
    pub sw: [u8; 3],
    /// Data after them.
    pub data: Vec<u8>,
}

impl Answer {
    /// An answer with `00 00 sw3` and `data`.
    pub fn new(sw3: u8, data: Vec<u8>) -> Answer {
        Answer {
            sw: [0, 0, sw3],
            data,
        }
    }

    /// What SW3 says.
    pub fn status(&self) -> Status {
        Status::from_sw3(self.sw[2])
    }

    /// The answer frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = self.sw.to_vec();
        body.extend_from_slice(&self.data);
        encode_frame(&body)
    }
}

/// XOR of `bytes`.
pub fn xor(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |a, b| a ^ b)
}

/// A frame around `body` (CMD PARA data, or SW1 SW2 SW3 data): preamble, length,
/// body, checksum. A body longer than [`MAX_LEN`] − 1 is cut there (nothing hallq
/// sends comes near it).
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let body = &body[..body.len().min(MAX_LEN - 1)];
    let len = (body.len() + 1) as u16;
    let mut out = Vec::with_capacity(PREAMBLE.len() + 3 + body.len());
    out.extend_from_slice(&PREAMBLE);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out.push(xor(&out[PREAMBLE.len()..]));
    out
}

/// A request frame: CMD PARA and `data`.
pub fn encode_request(code: [u8; 2], data: &[u8]) -> Vec<u8> {
    let mut body = code.to_vec();
    body.extend_from_slice(data);
    encode_frame(&body)
}

/// A frame body that is too short for its direction.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a frame body of {0} bytes is too short")]
pub struct ShortFrame(pub usize);

impl Request {
    /// The request a frame body holds (at least CMD and PARA).
    pub fn from_body(body: &[u8]) -> Result<Request, ShortFrame> {
        match body {
            [c, p, data @ ..] => Ok(Request {
                code: [*c, *p],
                data: data.to_vec(),
            }),
            _ => Err(ShortFrame(body.len())),
        }
    }
}

impl Answer {
    /// The answer a frame body holds (at least SW1 SW2 SW3).
    pub fn from_body(body: &[u8]) -> Result<Answer, ShortFrame> {
        match body {
            [a, b, c, data @ ..] => Ok(Answer {
                sw: [*a, *b, *c],
                data: data.to_vec(),
            }),
            _ => Err(ShortFrame(body.len())),
        }
    }
}

/// What the parser threw away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParseStats {
    /// Bytes outside any frame (noise before a preamble, or the start of a corrupt
    /// frame given up on).
    pub skipped: usize,
    /// Frames whose length was impossible or whose checksum was wrong.
    pub corrupt: usize,
}

/// Splits `buf` into frame bodies (without preamble, length and checksum). Returns the
/// bodies, how many bytes were used (the caller keeps the rest, an unfinished frame or
/// the start of a preamble, for the next read) and what was skipped. Never panics: a
/// corrupt frame is counted and the search goes on one byte after its preamble, so a
/// real frame hidden inside garbage is still found.
pub fn parse_frames(buf: &[u8]) -> (Vec<Vec<u8>>, usize, ParseStats) {
    let mut frames = Vec::new();
    let mut stats = ParseStats::default();
    let mut pos = 0;
    loop {
        let Some(start) = find_preamble(&buf[pos..]).map(|i| pos + i) else {
            // Keep the longest tail that may still grow into a preamble.
            let keep = partial_preamble(&buf[pos..]);
            stats.skipped += buf.len() - pos - keep;
            return (frames, buf.len() - keep, stats);
        };
        stats.skipped += start - pos;
        let head = start + PREAMBLE.len();
        let Some(len_bytes) = buf.get(head..head + 2) else {
            return (frames, start, stats);
        };
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if !(3..=MAX_LEN).contains(&len) {
            stats.corrupt += 1;
            stats.skipped += 1;
            pos = start + 1;
            continue;
        }
        let end = head + 2 + len;
        let Some(frame) = buf.get(head..end) else {
            return (frames, start, stats);
        };
        let (checked, sum) = frame.split_at(frame.len() - 1);
        if xor(checked) != sum[0] {
            stats.corrupt += 1;
            stats.skipped += 1;
            pos = start + 1;
            continue;
        }
        frames.push(checked[2..].to_vec());
        pos = end;
    }
}

fn find_preamble(buf: &[u8]) -> Option<usize> {
    buf.windows(PREAMBLE.len()).position(|w| w == PREAMBLE)
}

/// Length of the longest suffix of `buf` (shorter than the preamble) that is a prefix
/// of it.
fn partial_preamble(buf: &[u8]) -> usize {
    (1..PREAMBLE.len().min(buf.len() + 1))
        .rev()
        .find(|&n| buf[buf.len() - n..] == PREAMBLE[..n])
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_commands_of_a_card_read_are_the_published_bytes() {
        assert_eq!(
            Command::FindCard.encode(),
            [0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x20, 0x01, 0x22]
        );
        assert_eq!(
            Command::SelectCard.encode(),
            [0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x20, 0x02, 0x21]
        );
        assert_eq!(
            Command::ReadBase.encode(),
            [0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x30, 0x01, 0x32]
        );
        assert_eq!(
            Command::SamStatus.encode(),
            [0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x11, 0xFF, 0xED]
        );
    }

    #[test]
    fn a_found_card_and_a_selected_card_answer_as_readers_do() {
        let found = Answer::new(SW3_FOUND, vec![0; 4]).encode();
        assert_eq!(
            found,
            [
                0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x08, 0x00, 0x00, 0x9F, 0x00, 0x00, 0x00, 0x00,
                0x97
            ]
        );
        let selected = Answer::new(SW3_OK, vec![0; 8]).encode();
        assert_eq!(
            selected,
            [
                0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x0C, 0x00, 0x00, 0x90, 0, 0, 0, 0, 0, 0, 0, 0,
                0x9C
            ]
        );
        let no_card = Answer::new(SW3_NO_CARD, Vec::new()).encode();
        assert_eq!(
            no_card,
            [
                0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x04, 0x00, 0x00, 0x80, 0x84
            ]
        );
        let (frames, used, stats) = parse_frames(&found);
        assert_eq!((used, stats), (found.len(), ParseStats::default()));
        let a = Answer::from_body(&frames[0]).unwrap();
        assert_eq!(a.status(), Status::Found);
        assert_eq!(a.data, [0; 4]);
    }

    #[test]
    fn status_codes_fall_into_their_kinds() {
        assert_eq!(Status::from_sw3(0x90), Status::Ok);
        assert_eq!(Status::from_sw3(0x80), Status::NoCard);
        assert_eq!(Status::from_sw3(0x81), Status::SelectFailed);
        assert_eq!(Status::from_sw3(0x10), Status::BadRequest(0x10));
        assert_eq!(Status::from_sw3(0x41), Status::CardError(0x41));
        assert_eq!(Status::from_sw3(0x66), Status::ReaderError(0x66));
        assert_eq!(Status::from_sw3(0x91), Status::NoContent);
        assert_eq!(Status::from_sw3(0x55), Status::Other(0x55));
        for c in Command::ALL {
            assert_eq!(Command::from_code(c.code()), Some(c));
        }
        assert_eq!(Command::from_code([0x20, 0x09]), None);
    }

    #[test]
    fn noise_and_a_corrupt_frame_are_skipped_and_counted() {
        let good = Command::FindCard.encode();
        let mut bad = Command::SelectCard.encode();
        *bad.last_mut().unwrap() ^= 0xFF;
        let mut stream = vec![0x00, 0xAA, 0x13];
        stream.extend_from_slice(&bad);
        stream.extend_from_slice(&good);
        let (frames, used, stats) = parse_frames(&stream);
        assert_eq!(frames, vec![vec![0x20, 0x01]]);
        assert_eq!(used, stream.len());
        assert_eq!(stats.corrupt, 1);
        assert_eq!(stats.skipped, 3 + bad.len());
    }

    #[test]
    fn an_impossible_length_is_corrupt_not_a_frame_to_wait_for() {
        let mut stream = PREAMBLE.to_vec();
        stream.extend_from_slice(&[0xFF, 0xFF, 1, 2, 3]);
        let (frames, used, stats) = parse_frames(&stream);
        assert!(frames.is_empty());
        assert_eq!(stats.corrupt, 1);
        assert_eq!(used, stream.len());
        let mut short = PREAMBLE.to_vec();
        short.extend_from_slice(&[0x00, 0x02, 0x20, 0x22]);
        assert_eq!(parse_frames(&short).2.corrupt, 1);
    }

    #[test]
    fn an_unfinished_frame_and_a_preamble_start_are_kept_for_the_next_read() {
        let whole = Answer::new(SW3_OK, vec![1, 2, 3]).encode();
        for cut in 0..whole.len() {
            let (frames, used, _) = parse_frames(&whole[..cut]);
            assert!(frames.is_empty(), "cut at {cut}");
            let kept = &whole[used..cut];
            assert!(whole.starts_with(kept), "cut at {cut} kept {kept:02X?}");
            assert_eq!(used, 0, "cut at {cut}");
        }
        let (_, used, stats) = parse_frames(&[0x01, 0x02, 0xAA, 0xAA]);
        assert_eq!((used, stats.skipped), (2, 2));
    }

    #[test]
    fn a_frame_inside_a_corrupt_one_is_still_found() {
        // A preamble whose length swallows a real frame that follows it.
        let real = Command::ReadBase.encode();
        let mut stream = PREAMBLE.to_vec();
        stream.extend_from_slice(&[0x00, 0x05, 0x00]);
        stream.extend_from_slice(&real);
        let (frames, used, stats) = parse_frames(&stream);
        assert_eq!(frames, vec![vec![0x30, 0x01]]);
        assert_eq!(used, stream.len());
        assert_eq!(stats.corrupt, 1);
    }
}
