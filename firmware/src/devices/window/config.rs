//! The settings of the window devices: `[[bus]]` (RS-485, Modbus or vendor frames),
//! `[[led_matrix]]` (MAX7219 chains on SPI), and the keypads' `[[gpio_keypad]]` and
//! `[[usb_keypad]]` (in [`super::keypad_config`]), checked with errors that name their key.
//! A device's `window` is checked against the file's `[queue]`, unless the hall server
//! may push the windows (an `[uplink]` is configured); then a device at a window that is
//! not in force yet stays dark until one is.

use std::path::PathBuf;

use hallq_hardware::window::keys::RatingLevel;
use hallq_hardware::window::max7219::Geometry;
use hallq_hardware::window::regmap::DeviceKind;
use hallq_hardware::window::vendor_frame::VendorProfile;
use serde::Deserialize;

pub use super::checks::{check_window, default_armed, rating_key_map};
pub use super::keypad_config::{Active, GpioKeypadConfig, UsbKeypadConfig, parse_key};

/// What an RS-485 bus speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusProtocol {
    /// The hall-device Modbus RTU profile: screens and keypads that answer.
    #[default]
    Modbus,
    /// The common write-only vendor screen frame (`HEADER addr cmd line attr text END`).
    Vendor,
}

/// One `[[bus]]` section: an RS-485 port and the devices on it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowBusConfig {
    /// Name in logs and device ids (`bus0/unit3`); defaults to `bus<N>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Serial device, e.g. `/dev/ttyUSB0` or `/dev/serial/by-id/...`.
    pub port: String,
    /// `modbus` (the hall-device profile, the default) or `vendor` (write-only screens).
    #[serde(default)]
    pub protocol: BusProtocol,
    /// Baud rate (8N1).
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// How long to wait for a device's answer, milliseconds (Modbus).
    #[serde(default = "default_timeout")]
    pub response_timeout_ms: u64,
    /// How often keypads are polled, milliseconds (Modbus).
    #[serde(default = "default_key_poll")]
    pub key_poll_ms: u64,
    /// How long finish arms the window's rating keypad, seconds.
    #[serde(default = "default_armed")]
    pub rating_armed_secs: u64,
    /// Scrolling notice on the hall board's last line (通知公告); when empty, the
    /// `[board]` notices are used.
    #[serde(default)]
    pub notice: String,
    /// Vendor screens: the first byte of every frame (default 0x02).
    #[serde(default)]
    pub frame_header: Option<u8>,
    /// Vendor screens: the last byte of every frame (default 0x0D).
    #[serde(default)]
    pub frame_end: Option<u8>,
    /// Vendor screens: redraw every screen this often, seconds, since a screen that
    /// never answers cannot tell us it lost power (0 = only on changes).
    #[serde(default)]
    pub refresh_secs: Option<u64>,
    /// The devices.
    #[serde(default, rename = "device")]
    pub devices: Vec<WindowDeviceConfig>,
}

impl Default for WindowBusConfig {
    fn default() -> Self {
        WindowBusConfig {
            name: None,
            port: String::new(),
            protocol: BusProtocol::Modbus,
            baud: default_baud(),
            response_timeout_ms: default_timeout(),
            key_poll_ms: default_key_poll(),
            rating_armed_secs: default_armed(),
            notice: String::new(),
            frame_header: None,
            frame_end: None,
            refresh_secs: None,
            devices: Vec::new(),
        }
    }
}

fn default_baud() -> u32 {
    9600
}
fn default_timeout() -> u64 {
    100
}
fn default_key_poll() -> u64 {
    100
}
/// Default seconds between full redraws of write-only vendor screens.
pub const DEFAULT_VENDOR_REFRESH_SECS: u64 = 30;

/// One `[[bus.device]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowDeviceConfig {
    /// Modbus unit id 1–247, or a vendor screen's address 0–255.
    pub unit: u8,
    /// `window_screen`, `hall_board`, `caller_keypad`, `rating_keypad` or `window_terminal`
    /// (a vendor bus carries screens only).
    pub kind: DeviceKind,
    /// The window it belongs to (not for a hall board).
    #[serde(default)]
    pub window: Option<u32>,
    /// A rating pad's levels, key 1 first (default: the five levels, 非常满意 first; a
    /// 3-key pad: 满意, 基本满意, 不满意).
    #[serde(default)]
    pub levels: Option<Vec<RatingLevel>>,
    /// Number of rating keys when `levels` is not given (5 or 3).
    #[serde(default)]
    pub keys: Option<u8>,
    /// Vendor screens: how many text lines it has (default 2; a hall board 6). A Modbus
    /// device says so itself.
    #[serde(default)]
    pub lines: Option<u16>,
}
impl WindowBusConfig {
    /// The bus's name.
    pub fn name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("bus{index}"))
    }

    /// The vendor frame settings.
    pub fn vendor_profile(&self) -> VendorProfile {
        let d = VendorProfile::default();
        VendorProfile {
            header: self.frame_header.unwrap_or(d.header),
            end: self.frame_end.unwrap_or(d.end),
        }
    }

    /// Checks against the hall's windows; `(key suffix, message)` on error.
    pub fn check(&self, windows: Option<&[u32]>) -> Result<(), (String, String)> {
        if self.port.trim().is_empty() {
            return Err(("port".into(), "name the serial device".into()));
        }
        if !(1200..=115_200).contains(&self.baud) {
            return Err(("baud".into(), "use 1200 to 115200 (9600 is usual)".into()));
        }
        let vendor = self.protocol == BusProtocol::Vendor;
        if !vendor {
            for (key, set) in [
                ("frame_header", self.frame_header.is_some()),
                ("frame_end", self.frame_end.is_some()),
                ("refresh_secs", self.refresh_secs.is_some()),
            ] {
                if set {
                    return Err((
                        key.into(),
                        "only for protocol = \"vendor\" (write-only screens)".into(),
                    ));
                }
            }
        }
        if vendor {
            if let Err(e) = self.vendor_profile().validate() {
                return Err(("frame_end".into(), e.to_string()));
            }
            if self.frame_header == self.frame_end && self.frame_header.is_some() {
                return Err((
                    "frame_header".into(),
                    "the header and end bytes must differ".into(),
                ));
            }
        }
        let mut seen = Vec::new();
        for (i, d) in self.devices.iter().enumerate() {
            let key = |k: &str| format!("device[{i}].{k}");
            if !vendor && !(1..=247).contains(&d.unit) {
                return Err((key("unit"), "Modbus unit ids are 1 to 247".into()));
            }
            if seen.contains(&d.unit) {
                return Err((
                    key("unit"),
                    format!("unit {} is used twice on this bus", d.unit),
                ));
            }
            seen.push(d.unit);
            check_window(d.kind, d.window, windows).map_err(|(k, m)| (key(&k), m))?;
            if vendor && !matches!(d.kind, DeviceKind::WindowScreen | DeviceKind::HallBoard) {
                return Err((
                    key("kind"),
                    "a vendor-frame bus carries screens only (window_screen or hall_board); \
                     put keypads on a Modbus bus, GPIO or USB"
                        .into(),
                ));
            }
            match (vendor, d.lines) {
                (false, Some(_)) => {
                    return Err((
                        key("lines"),
                        "a Modbus device reports its own lines; only vendor screens need this"
                            .into(),
                    ));
                }
                (true, Some(n)) if !(1..=8).contains(&n) => {
                    return Err((key("lines"), "a screen has 1 to 8 lines".into()));
                }
                _ => {}
            }
            if d.kind == DeviceKind::RatingKeypad {
                rating_key_map(&d.levels, d.keys, &[]).map_err(|m| (key("levels"), m))?;
            } else if d.levels.is_some() || d.keys.is_some() {
                let k = if d.levels.is_some() { "levels" } else { "keys" };
                return Err((key(k), "only a rating_keypad has rating keys".into()));
            }
        }
        Ok(())
    }
}
/// One `[[led_matrix]]`: a chain of MAX7219 8×8 modules on a Linux SPI device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedMatrixConfig {
    /// Device id in fault events; defaults to `led<N>`.
    #[serde(default)]
    pub name: Option<String>,
    /// The SPI device, e.g. `/dev/spidev0.0`.
    pub spi: String,
    /// `window_screen` or `hall_board`.
    pub kind: DeviceKind,
    /// The window it hangs over (not for a hall board).
    #[serde(default)]
    pub window: Option<u32>,
    /// Modules across (8 dots each; a Chinese character is 2 modules wide).
    pub modules_wide: u8,
    /// Modules down (2 per text line).
    pub modules_high: u8,
    /// SPI clock, Hz (MAX7219 takes up to 10 MHz; long wires want less).
    #[serde(default = "default_spi_hz")]
    pub speed_hz: u32,
    /// A GNU Unifont `.hex` font; default: `$HALLQ_BITMAP_FONT`, else the Debian
    /// `unifont` package's file.
    #[serde(default)]
    pub font: Option<PathBuf>,
}

fn default_spi_hz() -> u32 {
    1_000_000
}
impl LedMatrixConfig {
    /// The device id: `name`, else `led<index>`.
    pub fn name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("led{index}"))
    }

    /// The module arrangement.
    pub fn geometry(&self) -> Geometry {
        Geometry {
            modules_wide: self.modules_wide,
            modules_high: self.modules_high,
        }
    }

    /// Checks against the hall's windows; `(key suffix, message)` on error.
    pub fn check(&self, windows: Option<&[u32]>) -> Result<(), (String, String)> {
        if self.spi.trim().is_empty() {
            return Err((
                "spi".into(),
                "name the SPI device, e.g. /dev/spidev0.0".into(),
            ));
        }
        if !matches!(self.kind, DeviceKind::WindowScreen | DeviceKind::HallBoard) {
            return Err((
                "kind".into(),
                "an LED matrix is a window_screen or a hall_board".into(),
            ));
        }
        check_window(self.kind, self.window, windows)?;
        if !(2..=64).contains(&self.modules_wide) {
            return Err((
                "modules_wide".into(),
                "2 to 64 modules (2 per Chinese character)".into(),
            ));
        }
        if self.modules_high == 0 || !self.modules_high.is_multiple_of(2) || self.modules_high > 16
        {
            return Err((
                "modules_high".into(),
                "2, 4, … 16 modules (2 per text line)".into(),
            ));
        }
        if !(10_000..=10_000_000).contains(&self.speed_hz) {
            return Err((
                "speed_hz".into(),
                "10000 to 10000000 (the MAX7219 takes up to 10 MHz)".into(),
            ));
        }
        Ok(())
    }
}

/// Every window device section of the configuration file, and the hall board's
/// fallback notices (`[board]`): what [`super::start`] takes.
#[derive(Debug, Clone, Default)]
pub struct WindowDevicesConfig {
    /// `[[bus]]`.
    pub buses: Vec<WindowBusConfig>,
    /// `[[led_matrix]]`.
    pub led_matrices: Vec<LedMatrixConfig>,
    /// `[[gpio_keypad]]`.
    pub gpio_keypads: Vec<GpioKeypadConfig>,
    /// `[[usb_keypad]]`.
    pub usb_keypads: Vec<UsbKeypadConfig>,
    /// The `[board]` notices, scrolled on a hall board when no bus has a `notice`.
    pub board_notices: Vec<String>,
    /// 亮身份: the window screens' status line names whoever is signed in there.
    pub show_staff: bool,
}

impl WindowDevicesConfig {
    /// The hall board's scrolling line: the first bus `notice`, else the `[board]`
    /// notices joined.
    pub fn notice(&self) -> String {
        self.buses
            .iter()
            .map(|b| b.notice.clone())
            .find(|n| !n.is_empty())
            .unwrap_or_else(|| self.board_notices.join("　"))
    }

    /// The link names of every window device, in the order they are started:
    /// `[[bus]]`, `[[led_matrix]]`, `[[gpio_keypad]]`, `[[usb_keypad]]`.
    pub fn names(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, b) in self.buses.iter().enumerate() {
            out.push((format!("bus[{i}].name"), b.name(i)));
        }
        for (i, m) in self.led_matrices.iter().enumerate() {
            out.push((format!("led_matrix[{i}].name"), m.name(i)));
        }
        for (i, g) in self.gpio_keypads.iter().enumerate() {
            out.push((format!("gpio_keypad[{i}].name"), g.name(i)));
        }
        for (i, u) in self.usb_keypads.iter().enumerate() {
            out.push((format!("usb_keypad[{i}].name"), u.name(i)));
        }
        out
    }

    /// Checks every section against `windows` (see [`check_window`]); `(key, message)`
    /// with the full key path.
    pub fn check(&self, windows: Option<&[u32]>) -> Result<(), (String, String)> {
        for (i, b) in self.buses.iter().enumerate() {
            b.check(windows)
                .map_err(|(k, m)| (format!("bus[{i}].{k}"), m))?;
        }
        for (i, m) in self.led_matrices.iter().enumerate() {
            m.check(windows)
                .map_err(|(k, m)| (format!("led_matrix[{i}].{k}"), m))?;
        }
        for (i, g) in self.gpio_keypads.iter().enumerate() {
            g.check(windows)
                .map_err(|(k, m)| (format!("gpio_keypad[{i}].{k}"), m))?;
        }
        for (i, u) in self.usb_keypads.iter().enumerate() {
            u.check(windows)
                .map_err(|(k, m)| (format!("usb_keypad[{i}].{k}"), m))?;
        }
        let mut seen: Vec<String> = Vec::new();
        for (key, name) in self.names() {
            if name.trim().is_empty() || name.contains('/') {
                return Err((key, "use a short name without /".into()));
            }
            if seen.contains(&name) {
                return Err((
                    key,
                    format!("{name:?} names two devices; device ids must differ"),
                ));
            }
            seen.push(name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus(text: &str) -> WindowBusConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_bus_section_is_checked_against_the_windows() {
        let b = bus(
            "port = \"/dev/ttyUSB0\"\n[[device]]\nunit = 3\nkind = \"window_screen\"\nwindow = 9\n",
        );
        assert_eq!(b.check(Some(&[1, 2, 3])).unwrap_err().0, "device[0].window");
        let b = bus(
            "port = \"/dev/ttyUSB0\"\n[[device]]\nunit = 33\nkind = \"rating_keypad\"\nwindow = 1\nkeys = 4\n",
        );
        assert_eq!(b.check(Some(&[1])).unwrap_err().0, "device[0].levels");
        let b = bus(
            "port = \"/dev/ttyUSB0\"\n[[device]]\nunit = 10\nkind = \"hall_board\"\n[[device]]\nunit = 10\nkind = \"hall_board\"\n",
        );
        assert_eq!(b.check(Some(&[1])).unwrap_err().0, "device[1].unit");
    }

    #[test]
    fn a_vendor_bus_carries_screens_with_their_line_counts_and_a_safe_end_byte() {
        let ok = "port = \"/dev/ttyUSB1\"\nprotocol = \"vendor\"\nframe_header = 0xAA\nframe_end = 0x03\n\
                  [[device]]\nunit = 0\nkind = \"window_screen\"\nwindow = 1\nlines = 1\n\
                  [[device]]\nunit = 200\nkind = \"hall_board\"\n";
        let b = bus(ok);
        b.check(Some(&[1])).unwrap();
        assert_eq!(
            b.vendor_profile(),
            VendorProfile {
                header: 0xAA,
                end: 0x03
            }
        );
        let cases = [
            ("frame_end = 0x03", "frame_end = 0xB0", "frame_end"),
            ("frame_end = 0x03", "frame_end = 0xAA", "frame_end"),
            ("lines = 1", "lines = 9", "device[0].lines"),
            (
                "kind = \"hall_board\"",
                "kind = \"rating_keypad\"\nwindow = 1",
                "device[1].kind",
            ),
        ];
        for (from, to, key) in cases {
            let b = bus(&ok.replacen(from, to, 1));
            assert_eq!(b.check(Some(&[1])).unwrap_err().0, key, "{to}");
        }
        // Modbus devices report their own lines; vendor settings on a Modbus bus are refused.
        let m = bus("port = \"/dev/ttyUSB0\"\nframe_end = 0x0D\n");
        assert_eq!(m.check(Some(&[1])).unwrap_err().0, "frame_end");
        let m = bus(
            "port = \"/dev/ttyUSB0\"\n[[device]]\nunit = 3\nkind = \"window_screen\"\nwindow = 1\nlines = 2\n",
        );
        assert_eq!(m.check(Some(&[1])).unwrap_err().0, "device[0].lines");
    }
}
