//! A small WebDriver client for the browser tests: it starts Debian's `chromedriver` on
//! a free loopback port and drives headless Chromium over plain HTTP/JSON (the W3C
//! WebDriver protocol), which is all the tests need and keeps an async runtime and a
//! large client crate out of the test build.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use serde_json::{Value, json};

/// The key W3C WebDriver uses for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Flags every test browser runs with: headless, no sandbox (tests run as root in CI),
/// nothing fetched from the network, sound allowed without a click (the board chimes).
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--autoplay-policy=no-user-gesture-required",
    "--lang=zh-CN",
];

/// A running chromedriver; killed on drop.
pub struct Driver {
    child: Child,
    url: String,
    agent: ureq::Agent,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Driver {
    /// Starts `chromedriver` and waits until it answers `/status`.
    pub fn start() -> Result<Driver> {
        for bin in ["/usr/bin/chromedriver", "/usr/bin/chromium"] {
            if !Path::new(bin).exists() {
                bail!("{bin} is missing: install chromium and chromium-driver (scripts/test does)");
            }
        }
        let port = free_port()?;
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            agent,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut r) = driver.agent.get(format!("{}/status", driver.url)).call()
                && r.body_mut()
                    .read_json::<Value>()
                    .is_ok_and(|v| v["value"]["ready"] == true)
            {
                return Ok(driver);
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not become ready");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Opens a browser with a fresh profile and a window of `width`×`height`.
    pub fn browser(&self, width: u32, height: u32) -> Result<Browser> {
        let profile = tempfile::tempdir()?;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={width},{height}"));
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        }}});
        let v = call(
            &self.agent,
            "POST",
            &format!("{}/session", self.url),
            Some(caps),
        )?;
        let id = v["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id in {v}"))?
            .to_string();
        let browser = Browser {
            base: format!("{}/session/{id}", self.url),
            agent: self.agent.clone(),
            _profile: profile,
        };
        // The window size includes the browser's frame: fix the page's viewport itself,
        // so that a 1920×1080 board is laid out (and photographed) at exactly that size.
        browser.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(
                json!({ "cmd": "Emulation.setDeviceMetricsOverride", "params": {
                    "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false,
                }}),
            ),
        )?;
        Ok(browser)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<Value>) -> Result<Value> {
    let resp = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        (_, Some(b)) => agent.post(url).send_json(b),
        (_, None) => agent.post(url).send_json(json!({})),
    };
    let mut resp = resp.with_context(|| format!("{method} {url}"))?;
    let status = resp.status().as_u16();
    let v: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
    if status >= 400 {
        bail!("{method} {url}: {status} {}", v["value"]);
    }
    Ok(v)
}

/// One browser session; closed on drop.
pub struct Browser {
    base: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        Ok(call(&self.agent, method, &format!("{}{path}", self.base), body)?["value"].take())
    }

    /// Loads a page.
    pub fn go(&self, url: &str) -> Result<()> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .map(drop)
    }

    /// Lets the page's downloads (a link with `download`, a CSV made in the page) go to
    /// `dir`, as a person's browser saves them.
    pub fn downloads_to(&self, dir: &Path) -> Result<()> {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({ "cmd": "Browser.setDownloadBehavior", "params": {
                "behavior": "allow", "downloadPath": dir.display().to_string(),
            }})),
        )
        .map(drop)
    }

    /// Runs JavaScript in the page and returns its result.
    pub fn js(&self, script: &str, args: Value) -> Result<Value> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    fn find(&self, css: &str) -> Result<String> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        v[ELEMENT]
            .as_str()
            .map(String::from)
            .ok_or_else(|| anyhow!("no element {css}"))
    }

    /// Clicks the element matching `css`.
    pub fn click(&self, css: &str) -> Result<()> {
        let id = self.find(css)?;
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})))
            .map(drop)
    }

    /// Types into the element matching `css`.
    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let id = self.find(css)?;
        self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})))?;
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    /// Presses and releases one key on whatever has the focus (a keyboard shortcut).
    pub fn press(&self, key: &str) -> Result<()> {
        self.cmd(
            "POST",
            "/actions",
            Some(
                json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": [
                    { "type": "keyDown", "value": key }, { "type": "keyUp", "value": key },
                ]}]}),
            ),
        )
        .map(drop)
    }

    /// The visible text of the element matching `css` ("" when there is none).
    pub fn text(&self, css: &str) -> String {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
            json!([css]),
        )
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
    }

    /// Whether `css` matches an element that is rendered (not `hidden`, not display:none).
    pub fn visible(&self, css: &str) -> bool {
        self.js(
            "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0;",
            json!([css]),
        )
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
    }

    /// Characters of the text in `css` that the page draws blank or as the missing-glyph
    /// box, found by drawing each in the element's font on a canvas and comparing it with
    /// a code point no font has. Empty when every glyph is really there.
    pub fn blank_glyphs(&self, css: &str) -> Result<Vec<String>> {
        let v = self.js(
            r#"
            const e = document.querySelector(arguments[0]);
            if (!e) return null;
            const font = getComputedStyle(e).fontFamily;
            const draw = (ch) => {
              const c = document.createElement('canvas');
              c.width = 64; c.height = 64;
              const x = c.getContext('2d');
              x.font = '48px ' + font;
              x.fillText(ch, 4, 52);
              return Array.from(x.getImageData(0, 0, 64, 64).data).join(',');
            };
            const tofu = draw('\u{10FFFD}');
            const chars = [...new Set([...e.innerText].filter((c) => c.trim()))];
            return chars.filter((c) => { const d = draw(c); return d === tofu || !/[1-9]/.test(d); });
            "#,
            json!([css]),
        )?;
        let list = v
            .as_array()
            .ok_or_else(|| anyhow!("no element {css}"))?
            .iter()
            .filter_map(|c| c.as_str().map(String::from))
            .collect();
        Ok(list)
    }

    /// Polls `check` until it holds or `secs` pass; the error names what was awaited and
    /// what the page last showed.
    pub fn wait_for(&self, what: &str, secs: u64, check: impl Fn(&Browser) -> bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if check(self) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let body = self.text("body");
                bail!("timed out waiting for {what}; the page shows:\n{body}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG screenshot of the viewport.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let v = self.cmd("GET", "/screenshot", None)?;
        let b64 = v.as_str().ok_or_else(|| anyhow!("no screenshot data"))?;
        let png = base64::engine::general_purpose::STANDARD.decode(b64)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// A PNG screenshot of the element matching `css`, decoded. The element is scrolled
    /// to the middle of the viewport first: WebDriver's own scrolling stops as soon as a
    /// part of it shows, and the picture would be cut at the viewport's edge.
    pub fn element_picture(&self, css: &str) -> Result<Picture> {
        let id = self.find(css)?;
        self.js(
            "document.querySelector(arguments[0]).scrollIntoView({ block: 'center' });",
            json!([css]),
        )?;
        let v = self.cmd("GET", &format!("/element/{id}/screenshot"), None)?;
        let b64 = v.as_str().ok_or_else(|| anyhow!("no screenshot data"))?;
        Picture::decode(&base64::engine::general_purpose::STANDARD.decode(b64)?)
    }

    /// The page printed to PDF on A4 portrait (WebDriver's Print Page), as the PDF's bytes.
    pub fn print_a4(&self) -> Result<Vec<u8>> {
        let v = self.cmd(
            "POST",
            "/print",
            Some(json!({
                "pageRanges": [], "orientation": "portrait", "background": true,
                "page": { "width": 21.0, "height": 29.7 },
            })),
        )?;
        let b64 = v.as_str().ok_or_else(|| anyhow!("no PDF data"))?;
        Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
    }
}

/// A decoded screenshot: 8-bit RGB pixels, row by row from the top left.
pub struct Picture {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    rgb: Vec<[u8; 3]>,
}

impl Picture {
    /// Decodes a PNG (RGB or RGBA, 8 or 16 bits; alpha dropped).
    pub fn decode(bytes: &[u8]) -> Result<Picture> {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info()?;
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| anyhow!("PNG too large"))?;
        let mut buf = vec![0; size];
        let info = reader.next_frame(&mut buf)?;
        let step = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => bail!("unexpected PNG colour type {other:?}"),
        };
        let (width, height) = (info.width as usize, info.height as usize);
        let mut rgb = Vec::with_capacity(width * height);
        for row in buf.chunks(info.line_size).take(height) {
            rgb.extend(row.chunks(step).take(width).map(|p| [p[0], p[1], p[2]]));
        }
        Ok(Picture { width, height, rgb })
    }

    /// The pixel at (`x`, `y`).
    pub fn at(&self, x: usize, y: usize) -> [u8; 3] {
        self.rgb[y * self.width + x]
    }

    /// Whether the pixel at (`x`, `y`) is `colour`, give or take 6 in each channel.
    pub fn is(&self, x: usize, y: usize, colour: [u8; 3]) -> bool {
        x < self.width
            && y < self.height
            && self
                .at(x, y)
                .iter()
                .zip(colour)
                .all(|(a, b)| a.abs_diff(b) <= 6)
    }

    /// How many pixels are `colour`.
    pub fn count(&self, colour: [u8; 3]) -> usize {
        (0..self.height)
            .flat_map(|y| (0..self.width).map(move |x| (x, y)))
            .filter(|&(x, y)| self.is(x, y, colour))
            .count()
    }
}

/// `#rrggbb` as RGB.
pub fn rgb(hex: &str) -> [u8; 3] {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0);
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call(&self.agent, "DELETE", &self.base, None);
    }
}
