//! Buttons on GPIO lines: a rating pad or caller keypad built from plain push buttons.
//!
//! Any `embedded-hal` 1.0 [`InputPin`] works; [`CdevPin`] reads a line through the
//! kernel's GPIO character device (`/dev/gpiochipN`, via `gpiocdev`), and the `rpi`
//! feature adds `rppal`'s pins on a Raspberry Pi. Debouncing is sans-IO: the owner polls
//! with the current time (every 5–10 ms) and gets a [`Key`] once per press, on the
//! press edge, after the contact has been stable for the debounce time.

use std::time::{Duration, Instant};

use embedded_hal::digital::InputPin;
use thiserror::Error;

use super::keys::Key;

/// Default time a contact must be stable before a change counts.
pub const DEBOUNCE: Duration = Duration::from_millis(20);

/// One button's debouncer: reports a press when the stable state turns to pressed.
#[derive(Debug, Clone)]
pub struct Debouncer {
    stable: bool,
    candidate: bool,
    since: Option<Instant>,
    period: Duration,
}

impl Debouncer {
    /// A released button that must be stable for `period`.
    pub fn new(period: Duration) -> Self {
        Debouncer {
            stable: false,
            candidate: false,
            since: None,
            period,
        }
    }

    /// Feed a raw sample taken at `now`; true exactly once per debounced press.
    pub fn sample(&mut self, pressed: bool, now: Instant) -> bool {
        if pressed != self.candidate {
            self.candidate = pressed;
            self.since = Some(now);
        }
        if self.candidate != self.stable {
            let since = *self.since.get_or_insert(now);
            if now.duration_since(since) >= self.period {
                self.stable = self.candidate;
                return self.stable;
            }
        }
        false
    }

    /// The debounced state.
    pub fn pressed(&self) -> bool {
        self.stable
    }
}

/// Error reading a pin.
#[derive(Debug, Error)]
#[error("reading GPIO button for {key:?}: {message}")]
pub struct PinError {
    /// The button's key.
    pub key: Key,
    /// What the pin driver said.
    pub message: String,
}

/// Buttons on input pins, each one key; pins read low when pressed unless told.
pub struct GpioKeypad<P> {
    buttons: Vec<(P, Key, Debouncer)>,
    active_low: bool,
}

impl<P: InputPin> GpioKeypad<P> {
    /// Buttons `(pin, key)`, pressed = low (the usual button to ground with pull-up).
    pub fn new(pins: Vec<(P, Key)>, debounce: Duration) -> Self {
        GpioKeypad {
            buttons: pins
                .into_iter()
                .map(|(p, k)| (p, k, Debouncer::new(debounce)))
                .collect(),
            active_low: true,
        }
    }

    /// Pressed = high instead (buttons to the supply with pull-downs).
    pub fn active_high(mut self) -> Self {
        self.active_low = false;
        self
    }

    /// Sample every pin at `now`; keys pressed since the last poll, in pin order.
    pub fn poll(&mut self, now: Instant) -> Result<Vec<Key>, PinError> {
        let mut keys = Vec::new();
        for (pin, key, deb) in &mut self.buttons {
            let low = pin.is_low().map_err(|e| PinError {
                key: *key,
                message: format!("{e:?}"),
            })?;
            if deb.sample(low == self.active_low, now) {
                keys.push(*key);
            }
        }
        Ok(keys)
    }

    /// Give the pins back.
    pub fn release(self) -> Vec<P> {
        self.buttons.into_iter().map(|(p, _, _)| p).collect()
    }
}

/// A GPIO line read through the kernel character device, as an `InputPin`.
pub struct CdevPin {
    request: gpiocdev::Request,
    offset: u32,
}

/// Error of a character-device pin.
#[derive(Debug, Error)]
#[error("GPIO {chip} line {offset}: {source}")]
pub struct CdevError {
    chip: String,
    offset: u32,
    #[source]
    source: gpiocdev::Error,
}

impl embedded_hal::digital::Error for CdevError {
    fn kind(&self) -> embedded_hal::digital::ErrorKind {
        embedded_hal::digital::ErrorKind::Other
    }
}

impl CdevPin {
    /// Request `offset` on `chip` (e.g. `/dev/gpiochip0`) as an input with pull-up.
    pub fn input(chip: &str, offset: u32) -> Result<CdevPin, CdevError> {
        let request = gpiocdev::Request::builder()
            .on_chip(chip)
            .with_consumer("hallq-keypad")
            .with_line(offset)
            .as_input()
            .with_bias(gpiocdev::line::Bias::PullUp)
            .request()
            .map_err(|source| CdevError {
                chip: chip.to_string(),
                offset,
                source,
            })?;
        Ok(CdevPin { request, offset })
    }
}

impl embedded_hal::digital::ErrorType for CdevPin {
    type Error = CdevError;
}

impl InputPin for CdevPin {
    fn is_high(&mut self) -> Result<bool, CdevError> {
        self.request
            .value(self.offset)
            .map(|v| v == gpiocdev::line::Value::Active)
            .map_err(|source| CdevError {
                chip: String::new(),
                offset: self.offset,
                source,
            })
    }
    fn is_low(&mut self) -> Result<bool, CdevError> {
        self.is_high().map(|h| !h)
    }
}

/// A Raspberry Pi pin through `rppal` (feature `rpi`), with pull-up.
#[cfg(feature = "rpi")]
pub fn rpi_input(bcm: u8) -> Result<rppal::gpio::InputPin, rppal::gpio::Error> {
    Ok(rppal::gpio::Gpio::new()?.get(bcm)?.into_input_pullup())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::keys::Key;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};

    #[test]
    fn a_bouncing_contact_gives_one_press() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut d = Debouncer::new(DEBOUNCE);
        // Bounce for 8 ms, then hold.
        let samples = [
            (0, true),
            (2, false),
            (4, true),
            (6, false),
            (8, true),
            (18, true),
            (28, true),
            (40, true),
        ];
        let presses: Vec<u64> = samples
            .iter()
            .filter_map(|&(t, p)| d.sample(p, ms(t)).then_some(t))
            .collect();
        assert_eq!(presses, vec![28]);
        // Release bounce, then a second press.
        for (t, p) in [
            (100, false),
            (103, true),
            (105, false),
            (130, false),
            (200, true),
            (225, true),
        ] {
            if d.sample(p, ms(t)) {
                assert_eq!(t, 225);
            }
        }
        assert!(d.pressed());
    }

    #[test]
    fn a_glitch_shorter_than_the_debounce_time_is_ignored() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(DEBOUNCE);
        assert!(!d.sample(true, t0));
        assert!(!d.sample(false, t0 + Duration::from_millis(10)));
        assert!(!d.sample(false, t0 + Duration::from_millis(50)));
        assert!(!d.pressed());
    }

    #[test]
    fn keypad_reads_pins_low_as_pressed() {
        let t0 = Instant::now();
        let pin = |states: &[State]| {
            Mock::new(
                &states
                    .iter()
                    .map(|s| Transaction::get(*s))
                    .collect::<Vec<_>>(),
            )
        };
        let p1 = pin(&[State::High, State::Low, State::Low]);
        let p2 = pin(&[State::Low, State::Low, State::Low]);
        let mut pad = GpioKeypad::new(vec![(p1, Key::Rating(1)), (p2, Key::Rating(5))], DEBOUNCE);
        assert!(pad.poll(t0).unwrap().is_empty());
        assert_eq!(pad.poll(t0 + Duration::from_millis(10)).unwrap(), vec![]);
        assert_eq!(
            pad.poll(t0 + Duration::from_millis(30)).unwrap(),
            vec![Key::Rating(1), Key::Rating(5)]
        );
        for mut p in pad.release() {
            p.done();
        }
    }
}
