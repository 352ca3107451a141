//! A Slint platform without a display: the software renderer draws the kiosk into a pixel
//! buffer. Tests drive the real UI through it (taps at the positions of the buttons a
//! citizen sees), the benchmark times frames with it, and screenshots come from it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slint::Rgb8Pixel;
use slint::platform::software_renderer::{MinimalSoftwareWindow, RepaintBufferType};
use slint::platform::{EventLoopProxy, Platform, PointerEventButton, WindowAdapter, WindowEvent};
use slint::{EventLoopError, LogicalPosition, PhysicalSize, PlatformError};

type Task = Box<dyn FnOnce() + Send>;

/// The headless platform: a window per UI created, a clock that tests may move forward,
/// and a queue of closures sent from other threads with `slint::invoke_from_event_loop`.
pub struct Headless {
    shared: Screen,
    start: Instant,
}

struct Proxy(Arc<Mutex<VecDeque<Task>>>);

impl EventLoopProxy for Proxy {
    fn quit_event_loop(&self) -> Result<(), EventLoopError> {
        Ok(())
    }
    fn invoke_from_event_loop(&self, event: Task) -> Result<(), EventLoopError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(event);
        Ok(())
    }
}

impl Platform for Headless {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, PlatformError> {
        let window = MinimalSoftwareWindow::new(RepaintBufferType::NewBuffer);
        window.set_size(self.shared.size.get());
        *self.shared.window.borrow_mut() = window.clone();
        Ok(window)
    }
    fn duration_since_start(&self) -> Duration {
        self.start.elapsed() + self.shared.skipped.get()
    }
    fn new_event_loop_proxy(&self) -> Option<Box<dyn EventLoopProxy>> {
        Some(Box::new(Proxy(self.shared.tasks.clone())))
    }
}

/// The handle a test or benchmark keeps to the headless platform it installed.
#[derive(Clone)]
pub struct Screen {
    window: Rc<RefCell<Rc<MinimalSoftwareWindow>>>,
    size: Rc<Cell<PhysicalSize>>,
    skipped: Rc<Cell<Duration>>,
    tasks: Arc<Mutex<VecDeque<Task>>>,
}

thread_local! {
    static INSTALLED: RefCell<Option<Screen>> = const { RefCell::new(None) };
}

impl Screen {
    /// Installs the headless platform (once per process, from the thread that will run the
    /// UI) with a `width`×`height` screen; later calls on that thread reuse it, resized,
    /// and the next UI created gets a fresh window.
    pub fn install(width: u32, height: u32) -> Result<Screen, PlatformError> {
        if let Some(s) = INSTALLED.with(|i| i.borrow().clone()) {
            s.size.set(PhysicalSize::new(width, height));
            return Ok(s);
        }
        let screen = Screen {
            window: Rc::new(RefCell::new(MinimalSoftwareWindow::new(
                RepaintBufferType::NewBuffer,
            ))),
            size: Rc::new(Cell::new(PhysicalSize::new(width, height))),
            skipped: Rc::new(Cell::new(Duration::ZERO)),
            tasks: Arc::new(Mutex::new(VecDeque::new())),
        };
        slint::platform::set_platform(Box::new(Headless {
            shared: screen.clone(),
            start: Instant::now(),
        }))
        .map_err(|e| PlatformError::Other(e.to_string()))?;
        INSTALLED.with(|i| *i.borrow_mut() = Some(screen.clone()));
        Ok(screen)
    }

    fn window(&self) -> Rc<MinimalSoftwareWindow> {
        self.window.borrow().clone()
    }

    /// Turns the screen (portrait 1080×1920 or landscape 1920×1080).
    pub fn resize(&self, width: u32, height: u32) {
        self.size.set(PhysicalSize::new(width, height));
        let w = self.window();
        w.set_size(PhysicalSize::new(width, height));
        w.request_redraw();
    }

    /// The screen size in pixels.
    pub fn size(&self) -> (u32, u32) {
        let s = self.size.get();
        (s.width, s.height)
    }

    /// Runs what other threads sent to the UI thread, then due timers and animations.
    /// Returns how many closures ran.
    pub fn pump(&self) -> usize {
        let mut ran = 0;
        loop {
            let task = self
                .tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front();
            match task {
                Some(t) => {
                    t();
                    ran += 1;
                }
                None => break,
            }
        }
        slint::platform::update_timers_and_animations();
        ran
    }

    /// Pumps until `done` holds or `timeout` (real time) passes; answers whether it held.
    pub fn pump_until(&self, timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
        let until = Instant::now() + timeout;
        loop {
            self.pump();
            if done() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Moves the UI clock forward, as if `by` had passed untouched, and fires due timers.
    pub fn advance(&self, by: Duration) {
        self.skipped.set(self.skipped.get() + by);
        self.pump();
    }

    /// A finger pressing and lifting at `(x, y)` logical pixels.
    pub fn tap(&self, x: f32, y: f32) {
        let position = LogicalPosition::new(x, y);
        let window = self.window();
        let w = slint::platform::WindowAdapter::window(&*window);
        w.dispatch_event(WindowEvent::PointerMoved { position });
        w.dispatch_event(WindowEvent::PointerPressed {
            position,
            button: PointerEventButton::Left,
        });
        w.dispatch_event(WindowEvent::PointerReleased {
            position,
            button: PointerEventButton::Left,
        });
        w.dispatch_event(WindowEvent::PointerExited);
        self.pump();
    }

    /// Renders the whole screen into a new frame.
    pub fn render(&self) -> Frame {
        let (width, height) = self.size();
        let mut pixels = vec![Rgb8Pixel::new(0, 0, 0); (width * height) as usize];
        let window = self.window();
        window.request_redraw();
        window.draw_if_needed(|renderer| {
            renderer.render(&mut pixels, width as usize);
        });
        Frame {
            width,
            height,
            pixels,
        }
    }

    /// Renders into `buffer` (reused between frames); used by the benchmark.
    pub fn render_into(&self, buffer: &mut [Rgb8Pixel]) {
        let (width, _) = self.size();
        let window = self.window();
        window.request_redraw();
        window.draw_if_needed(|renderer| {
            renderer.render(buffer, width as usize);
        });
    }
}

/// One rendered screen.
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major RGB pixels.
    pub pixels: Vec<Rgb8Pixel>,
}

/// A rectangle in pixels.
#[derive(Debug, Clone, Copy)]
pub struct Area {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

impl Frame {
    /// The pixel at `(x, y)`.
    pub fn at(&self, x: u32, y: u32) -> Rgb8Pixel {
        self.pixels[(y * self.width + x) as usize]
    }

    /// How many distinct colours appear in `area`: a blank area has one, text on a plain
    /// background many (anti-aliased edges).
    pub fn colours_in(&self, area: Area) -> usize {
        let mut seen = std::collections::HashSet::new();
        for y in area.y..(area.y + area.h).min(self.height) {
            for x in area.x..(area.x + area.w).min(self.width) {
                let p = self.at(x, y);
                seen.insert((p.r, p.g, p.b));
            }
        }
        seen.len()
    }

    /// Pixels in `area` that differ from the area's most common colour (the background):
    /// the ink of whatever is drawn there.
    pub fn ink_in(&self, area: Area) -> usize {
        let mut counts = std::collections::HashMap::new();
        for y in area.y..(area.y + area.h).min(self.height) {
            for x in area.x..(area.x + area.w).min(self.width) {
                let p = self.at(x, y);
                *counts.entry((p.r, p.g, p.b)).or_insert(0usize) += 1;
            }
        }
        let total: usize = counts.values().sum();
        let background = counts.values().copied().max().unwrap_or(0);
        total - background
    }

    /// Writes the frame as a PNG.
    pub fn save_png(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut enc = png::Encoder::new(file, self.width, self.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(std::io::Error::other)?;
        let bytes: Vec<u8> = self.pixels.iter().flat_map(|p| [p.r, p.g, p.b]).collect();
        w.write_image_data(&bytes).map_err(std::io::Error::other)?;
        w.finish().map_err(std::io::Error::other)
    }
}
