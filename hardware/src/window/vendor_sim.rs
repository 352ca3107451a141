//! A simulated RS-485 line of write-only vendor screens on a pseudo-terminal: it parses
//! the frames arriving (corrupt ones counted and skipped, as a real screen would) and
//! keeps what each address shows, so tests read the GB2312 text the daemon sent. It can
//! be unplugged and plugged back like a USB adaptor; the screens then lose their text,
//! as they would lose power.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::io::AsyncReadExt;

use super::text::Gb2312Text;
use super::vendor_frame::{CMD_BRIGHTNESS, CMD_CLEAR, CMD_TEXT, VendorProfile, parse_frames};

/// What one simulated screen holds.
#[derive(Debug, Clone, Default)]
pub struct VendorScreen {
    /// Text per line, with its attribute byte.
    pub lines: BTreeMap<u8, (String, u8)>,
    /// Last brightness set.
    pub brightness: Option<u8>,
    /// Frames received.
    pub frames: u64,
    /// When the last frame's end byte arrived.
    pub last_frame: Option<Instant>,
}

impl VendorScreen {
    /// Lines 0..=highest written, blank where nothing was written.
    pub fn texts(&self) -> Vec<String> {
        let Some(max) = self.lines.keys().max() else {
            return Vec::new();
        };
        (0..=*max)
            .map(|n| self.lines.get(&n).map(|l| l.0.clone()).unwrap_or_default())
            .collect()
    }
}

#[derive(Default)]
struct State {
    screens: BTreeMap<u8, VendorScreen>,
    bad_frames: usize,
    skipped: usize,
}

struct Plug {
    link: PathBuf,
    task: tokio::task::JoinHandle<()>,
    _slave: std::fs::File,
}

struct Shared {
    profile: VendorProfile,
    state: Mutex<State>,
    plug: Mutex<Option<Plug>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A line of vendor screens; cheap to clone.
#[derive(Clone)]
pub struct VendorSim {
    shared: Arc<Shared>,
}

impl VendorSim {
    /// Screens speaking `profile`'s frames.
    pub fn new(profile: VendorProfile) -> VendorSim {
        VendorSim {
            shared: Arc::new(Shared {
                profile,
                state: Mutex::new(State::default()),
                plug: Mutex::new(None),
            }),
        }
    }

    /// Plug the line in: a new pseudo-terminal reachable at `link` (a symlink). Must be
    /// called inside a tokio runtime.
    pub fn plug(&self, link: &Path) -> std::io::Result<()> {
        self.unplug();
        let (mut master, holder, _name) = super::pty::plug_at(link)?;
        let shared = Arc::downgrade(&self.shared);
        let task = tokio::spawn(async move {
            let mut pending: Vec<u8> = Vec::new();
            let mut buf = [0u8; 512];
            loop {
                let n = match master.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                pending.extend_from_slice(&buf[..n]);
                let (frames, used, stats) = parse_frames(shared.profile, &pending);
                pending.drain(..used);
                let now = Instant::now();
                let mut st = lock(&shared.state);
                st.bad_frames += stats.bad_frames;
                st.skipped += stats.skipped;
                for f in frames {
                    let screen = st.screens.entry(f.addr).or_default();
                    screen.frames += 1;
                    screen.last_frame = Some(now);
                    match f.cmd {
                        CMD_TEXT => {
                            let text = Gb2312Text::from_bytes(&f.text)
                                .map(|t| t.as_str().to_string())
                                .unwrap_or_default();
                            screen.lines.insert(f.line, (text, f.attr));
                        }
                        CMD_CLEAR => screen.lines.clear(),
                        CMD_BRIGHTNESS => screen.brightness = Some(f.line),
                        _ => {}
                    }
                }
            }
        });
        *lock(&self.shared.plug) = Some(Plug {
            link: link.to_path_buf(),
            task,
            _slave: holder,
        });
        Ok(())
    }

    /// Pull the adaptor: the terminal hangs up, the link disappears, and the screens
    /// lose what they showed (they lose power with it in most halls).
    pub fn unplug(&self) {
        if let Some(p) = lock(&self.shared.plug).take() {
            p.task.abort();
            let _ = std::fs::remove_file(&p.link);
        }
        for s in lock(&self.shared.state).screens.values_mut() {
            s.lines.clear();
            s.brightness = None;
        }
    }

    /// What screen `addr` holds.
    pub fn screen(&self, addr: u8) -> VendorScreen {
        lock(&self.shared.state)
            .screens
            .get(&addr)
            .cloned()
            .unwrap_or_default()
    }

    /// The text lines of screen `addr`.
    pub fn texts(&self, addr: u8) -> Vec<String> {
        self.screen(addr).texts()
    }

    /// Frames dropped as corrupt, and stray bytes skipped.
    pub fn errors(&self) -> (usize, usize) {
        let st = lock(&self.shared.state);
        (st.bad_frames, st.skipped)
    }
}

impl Drop for Plug {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::text::DisplayContent;
    use crate::window::vendor_frame::VendorDisplay;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::Duration;

    #[tokio::test]
    async fn frames_written_to_the_link_become_screen_text() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("ttyVendor");
        let sim = VendorSim::new(VendorProfile::default());
        sim.plug(&link).unwrap();
        let port = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&link)
            .unwrap();
        // Raw mode, or the terminal would turn 0x0D into 0x0A.
        // SAFETY: termios calls on a descriptor we own, with a local struct.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            libc::tcgetattr(port.as_raw_fd(), &mut t);
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(port.as_raw_fd(), libc::TCSANOW, &t);
        }
        let mut d = VendorDisplay::new(port, 7, 2, VendorProfile::default());
        crate::window::CounterDisplay::show(
            &mut d,
            &DisplayContent::from_lines(&["A001", "请到3号窗口"]).unwrap(),
        )
        .unwrap();
        d.release().write_all(&[0xFF, 0x00]).unwrap();
        let t = Instant::now();
        while sim.texts(7) != ["A001", "请到3号窗口"] {
            assert!(t.elapsed() < Duration::from_secs(3), "{:?}", sim.texts(7));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(sim.screen(7).brightness, Some(8));
        sim.unplug();
        assert!(sim.texts(7).is_empty());
        assert!(!link.exists());
    }
}
