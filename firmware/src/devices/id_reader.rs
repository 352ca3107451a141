//! The resident ID card readers at the kiosks (刷身份证取号): one thread owns each reader,
//! asks "find card" every `poll_ms`, reads a new card, and keeps what the kiosk may use
//! of it in [`IdCards`], in memory only:
//!
//! - the keyed hash of the citizen number (`PersonalKey::hash("id", …)`, the same key a
//!   typed `citizen_id` gets, so a card and a typed number are one person), which the
//!   per-person limits and the appointment lookup match on;
//! - the masked name and number (`王*明`, `110***********123X`) and the birth date, for
//!   the screen and the age class.
//!
//! The name, the full number, the address and the photo are dropped as soon as the
//! card is decoded; none reaches the database, an event, a log or the uplink. The card
//! is forgotten when it leaves the reader, after `[id_card] hold_secs`, or when the
//! reader goes offline. Health goes to the device registry as `id_reader/<id>`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hallq_hardware::idcard::number::{self, Date};
use hallq_hardware::idcard::reader::{IdReader, ReaderError};
use hallq_hardware::idcard::text::CardText;
use hallq_hardware::transport::{Backoff, SerialTransport};
use serde::Deserialize;

use super::health::{Devices, Health};
use crate::personal::PersonalKey;

/// Device ids of readers are this and the reader's id.
pub const DEVICE_PREFIX: &str = "id_reader/";

/// One `[[id_reader]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdReaderConfig {
    /// The reader's name, unique in the hall (`id_reader/<id>` in the device list).
    pub id: String,
    /// Serial port: `/dev/ttyUSB0`, or a `/dev/serial/by-id/…` link.
    pub port: String,
    /// Baud rate; SAM readers start at 115200.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// The kiosk it sits at: the `X-Kiosk-Id` that kiosk sends.
    pub kiosk: String,
    /// How often to look for a card, milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// How long one answer may take, milliseconds (a card's text and photo take about
    /// 120 ms at 115200 baud).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_baud() -> u32 {
    115_200
}
fn default_poll_ms() -> u64 {
    300
}
fn default_timeout_ms() -> u64 {
    600
}

/// `[id_card]`: what a card at the kiosk enables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdCardConfig {
    /// One live ticket per person per service: a second ticket for a service while
    /// the person's first is waiting, called or being served is refused (a card or a
    /// typed number; the engine's `[queue] per_citizen_daily_limit` still counts the
    /// day's tickets across services).
    #[serde(default = "yes")]
    pub daily_limit_per_service: bool,
    /// A card holder this old or older gets a green-channel ticket; 0 turns it off.
    #[serde(default = "default_green_age")]
    pub green_age: u32,
    /// The reason such a ticket records (`green_reason`): a code of `[desk]
    /// green_reasons`, so supervision counts the card's green tickets with the desk's
    /// tickets for the same reason.
    #[serde(default = "default_green_reason")]
    pub green_reason: String,
    /// Offer the card holder's appointment of today, and check it in with the card.
    #[serde(default = "yes")]
    pub find_appointment: bool,
    /// A card left on the reader is forgotten after this many seconds (and read again
    /// only when lifted and placed again).
    #[serde(default = "default_hold_secs")]
    pub hold_secs: u64,
}

fn yes() -> bool {
    true
}
fn default_green_age() -> u32 {
    70
}
fn default_green_reason() -> String {
    "elderly".into()
}
fn default_hold_secs() -> u64 {
    60
}

impl Default for IdCardConfig {
    fn default() -> Self {
        IdCardConfig {
            daily_limit_per_service: true,
            green_age: default_green_age(),
            green_reason: default_green_reason(),
            find_appointment: true,
            hold_secs: default_hold_secs(),
        }
    }
}

impl IdCardConfig {
    /// The first bad key and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.green_age > 120 {
            return Err((
                "id_card.green_age",
                "an age from 1 to 120, or 0 for no automatic green channel".into(),
            ));
        }
        if !(5..=600).contains(&self.hold_secs) {
            return Err(("id_card.hold_secs", "between 5 and 600 seconds".into()));
        }
        Ok(())
    }

    /// Whether a holder of `age` gets the green channel.
    pub fn green(&self, age: u32) -> bool {
        self.green_age > 0 && age >= self.green_age
    }
}

impl IdReaderConfig {
    /// The first bad key (relative to the section) and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 32
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !name_ok(&self.id) {
            return Err(("id", "1 to 32 letters, digits, - and _".into()));
        }
        if !name_ok(&self.kiosk) {
            return Err((
                "kiosk",
                "the kiosk's X-Kiosk-Id: 1 to 32 letters, digits, - and _".into(),
            ));
        }
        if self.port.trim().is_empty() {
            return Err(("port", "the reader's serial port, e.g. /dev/ttyUSB0".into()));
        }
        if ![9600, 19_200, 38_400, 57_600, 115_200].contains(&self.baud) {
            return Err((
                "baud",
                "one of 9600, 19200, 38400, 57600, 115200 (SAM readers)".into(),
            ));
        }
        if !(50..=5000).contains(&self.poll_ms) {
            return Err(("poll_ms", "between 50 and 5000".into()));
        }
        if !(100..=5000).contains(&self.timeout_ms) {
            return Err(("timeout_ms", "between 100 and 5000".into()));
        }
        Ok(())
    }
}

/// What the controller keeps of a card on a reader: nothing that names the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCard {
    /// Keyed hash of the citizen number.
    pub citizen: String,
    /// Masked name, `王*明`.
    pub name: String,
    /// Masked number, `110***********123X`.
    pub id: String,
    /// Birth date, for the age on the day asked.
    pub birth: Date,
    /// The reader it lies on.
    pub reader: String,
    read_at: Instant,
}

impl HeldCard {
    /// What is kept of `card`, if its number is a valid citizen number.
    pub fn from_card(card: &CardText, reader: &str, key: &PersonalKey) -> Option<HeldCard> {
        let id = number::validate(&card.id_number).ok()?;
        Some(HeldCard {
            citizen: key.hash("id", &id),
            name: number::mask_name(&card.name),
            id: number::mask_id(&id),
            birth: number::birth_date(&id).unwrap_or(card.birth),
            reader: reader.to_string(),
            read_at: Instant::now(),
        })
    }
}

/// The card on each kiosk's reader; cheap to clone.
#[derive(Clone, Default)]
pub struct IdCards {
    held: Arc<Mutex<HashMap<String, HeldCard>>>,
    /// Kiosk id → reader id.
    readers: Arc<HashMap<String, String>>,
    hold: Duration,
}

impl IdCards {
    /// The registry for these readers, forgetting a card after `hold`.
    pub fn new(readers: &[IdReaderConfig], hold: Duration) -> IdCards {
        IdCards {
            held: Arc::default(),
            readers: Arc::new(
                readers
                    .iter()
                    .map(|r| (r.kiosk.clone(), r.id.clone()))
                    .collect(),
            ),
            hold,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, HeldCard>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The reader at `kiosk`, if it has one.
    pub fn reader_of(&self, kiosk: &str) -> Option<&str> {
        self.readers.get(kiosk).map(String::as_str)
    }

    /// The card on `kiosk`'s reader, unless it has been there longer than the hold.
    pub fn current(&self, kiosk: &str) -> Option<HeldCard> {
        let mut held = self.lock();
        match held.get(kiosk) {
            Some(c) if c.read_at.elapsed() <= self.hold => Some(c.clone()),
            Some(_) => {
                held.remove(kiosk);
                None
            }
            None => None,
        }
    }

    fn put(&self, kiosk: &str, card: HeldCard) {
        self.lock().insert(kiosk.to_string(), card);
    }

    fn clear(&self, kiosk: &str) {
        self.lock().remove(kiosk);
    }
}

/// Starts the thread that owns one reader. It runs as long as the process.
pub fn start(
    config: IdReaderConfig,
    cards: IdCards,
    devices: Devices,
    key: PersonalKey,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("id-reader-{}", config.id))
        .spawn(move || {
            Owner {
                device: format!("{DEVICE_PREFIX}{}", config.id),
                config,
                cards,
                devices,
                key,
                on_reader: None,
            }
            .run()
        })
}

/// The reader thread's state.
struct Owner {
    config: IdReaderConfig,
    device: String,
    cards: IdCards,
    devices: Devices,
    key: PersonalKey,
    /// The hash of the card read and still lying on the reader.
    on_reader: Option<String>,
}

impl Owner {
    fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let poll = Duration::from_millis(self.config.poll_ms);
        let timeout = Duration::from_millis(self.config.timeout_ms);
        loop {
            let port = match SerialTransport::open(
                &self.config.port,
                self.config.baud,
                false,
                Duration::from_millis(20),
            ) {
                Ok(p) => p,
                Err(e) => {
                    self.gone(format!("读卡器未连接 / not connected: {e}"));
                    std::thread::sleep(backoff.next_delay());
                    continue;
                }
            };
            tracing::info!(reader = %self.config.id, port = %self.config.port, kiosk = %self.config.kiosk, "ID card reader opened");
            let mut reader = IdReader::new(port, timeout);
            loop {
                match self.step(&mut reader) {
                    Ok(()) => {
                        backoff.reset();
                        self.devices.report_blocking(&self.device, Health::Ok);
                    }
                    Err(ReaderError::Io(e)) => {
                        self.gone(format!("读卡器断开 / port failed: {e}"));
                        break;
                    }
                    Err(ReaderError::Timeout(t)) => {
                        self.gone(format!("读卡器无响应 / no answer within {t:?}"));
                        break;
                    }
                    // A card that could not be read, or not a resident ID card: the
                    // reader works, the citizen tries again. The error names fields,
                    // never their values.
                    Err(e) => {
                        tracing::warn!(reader = %self.config.id, error = %e, "ID card not read");
                        self.devices.report_blocking(&self.device, Health::Ok);
                    }
                }
                std::thread::sleep(poll);
            }
            std::thread::sleep(backoff.next_delay());
        }
    }

    /// The reader is unusable: forget its card and say so.
    fn gone(&mut self, why: String) {
        self.on_reader = None;
        self.cards.clear(&self.config.kiosk);
        self.devices
            .report_blocking(&self.device, Health::fault("offline", why));
    }

    /// One look at the reader.
    fn step(&mut self, reader: &mut IdReader<SerialTransport>) -> Result<(), ReaderError> {
        if reader.find()? {
            let Some(card) = reader.read_card()? else {
                return self.lifted();
            };
            let Some(held) = HeldCard::from_card(&card, &self.config.id, &self.key) else {
                drop(card);
                tracing::warn!(reader = %self.config.id, kiosk = %self.config.kiosk, "a card whose number is not a valid citizen number was ignored");
                return Ok(());
            };
            drop(card);
            // The same card answering find again (some readers do while it lies
            // there) keeps its first read time, so the hold still runs out.
            if self.on_reader.as_deref() != Some(held.citizen.as_str()) {
                self.on_reader = Some(held.citizen.clone());
                tracing::info!(reader = %self.config.id, kiosk = %self.config.kiosk, "ID card read");
                self.cards.put(&self.config.kiosk, held);
            }
            Ok(())
        } else if self.on_reader.is_some() && !reader.still_there()? {
            self.lifted()
        } else {
            Ok(())
        }
    }

    fn lifted(&mut self) -> Result<(), ReaderError> {
        if self.on_reader.take().is_some() {
            tracing::info!(reader = %self.config.id, kiosk = %self.config.kiosk, "ID card lifted");
        }
        self.cards.clear(&self.config.kiosk);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_card_keeps_the_hash_and_the_masks_only() {
        let key = PersonalKey::from_bytes([3; 32]);
        let card = CardText::specimen("王小明", "11010519491231002x");
        let held = HeldCard::from_card(&card, "r1", &key).unwrap();
        assert_eq!(held.citizen, key.hash("id", "11010519491231002X"));
        assert_eq!(held.name, "王*明");
        assert_eq!(held.id, "110***********002X");
        assert_eq!(held.birth, Date::new(1949, 12, 31).unwrap());
        let shown = format!("{held:?}");
        assert!(!shown.contains("王小明") && !shown.contains("11010519491231002"));
        let bad = CardText::specimen("王小明", "11010519491231003X");
        assert_eq!(HeldCard::from_card(&bad, "r1", &key), None);
    }

    #[test]
    fn a_card_is_forgotten_after_the_hold() {
        let readers = [IdReaderConfig {
            id: "r1".into(),
            port: "/dev/null".into(),
            baud: 115_200,
            kiosk: "kiosk-1".into(),
            poll_ms: 300,
            timeout_ms: 600,
        }];
        let cards = IdCards::new(&readers, Duration::from_millis(30));
        assert_eq!(cards.reader_of("kiosk-1"), Some("r1"));
        assert_eq!(cards.reader_of("kiosk-2"), None);
        let key = PersonalKey::from_bytes([3; 32]);
        let held = HeldCard::from_card(
            &CardText::specimen("王明", "11010519491231002X"),
            "r1",
            &key,
        )
        .unwrap();
        cards.put("kiosk-1", held.clone());
        assert_eq!(cards.current("kiosk-1"), Some(held));
        assert_eq!(cards.current("kiosk-2"), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cards.current("kiosk-1"), None);
    }
}
