//! Helpers for the uplink tests: a real mosquitto on a free port, the reference receiver
//! (`hallq receive`) as a process, a hall server stand-in that sends configuration and
//! commands, certificates made with the openssl command, and the event JSON Schema.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use hallq::uplink::broker::{Broker, BrokerOptions, BrokerTls};
use hallq::uplink::receive::{self, Summary};
use serde_json::Value;

use crate::hallq_bin;

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The `[uplink]` keys of a controller publishing to a local broker as `hall_id`,
/// reconnecting within a second.
pub fn uplink_section(port: u16, hall_id: &str) -> String {
    format!("host = \"127.0.0.1\"\nport = {port}\nhall_id = \"{hall_id}\"\nmax_backoff_secs = 1")
}

/// Adds an `[uplink]` section to a hall's configuration file.
pub fn add_uplink(config: &Path, section: &str) {
    let mut text = std::fs::read_to_string(config).expect("config readable");
    text.push_str("\n[uplink]\n");
    text.push_str(section);
    text.push('\n');
    std::fs::write(config, text).expect("config writable");
}

/// The controller id of the test halls (from the example configuration).
pub const CONTROLLER: &str = "qingshan-main";

/// `hallq receive` running against a broker.
pub struct Receiver {
    child: Option<Child>,
    /// Its database.
    pub db: PathBuf,
    args: Vec<String>,
}

impl Receiver {
    /// Starts the receiver and waits until it has subscribed.
    pub fn start(dir: &Path, port: u16, extra: &[&str]) -> Receiver {
        let db = dir.join("received.db");
        let mut args: Vec<String> = vec![
            "receive".into(),
            "--broker".into(),
            format!("127.0.0.1:{port}"),
            "--db".into(),
            db.display().to_string(),
            "--client-id".into(),
            format!("receiver-{}", std::process::id()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut r = Receiver {
            child: None,
            db,
            args,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let mut child = Command::new(hallq_bin())
            .args(&self.args)
            .env("HALLQ_BROKER_PASSWORD", "receiver-secret")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("hallq receive starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("receiver output");
        assert!(line.starts_with("receiving"), "receiver said {line:?}");
        self.child = Some(child);
    }

    /// What has been stored so far.
    pub fn summary(&self) -> Summary {
        let conn = receive::open_db(&self.db).expect("receiver db");
        receive::summarize(&conn).expect("summary")
    }

    /// This controller's events as stored, in the order they arrived.
    pub fn events(&self) -> Vec<Value> {
        let conn = receive::open_db(&self.db).expect("receiver db");
        let mut stmt = conn
            .prepare("SELECT body FROM received WHERE controller_id = ?1 ORDER BY rowid")
            .expect("query");
        stmt.query_map([CONTROLLER], |r| r.get::<_, String>(0))
            .expect("rows")
            .map(|b| serde_json::from_str(&b.expect("row")).expect("stored JSON"))
            .collect()
    }

    /// Distinct events of the test controller stored so far.
    pub fn count(&self) -> i64 {
        let conn = receive::open_db(&self.db).expect("receiver db");
        conn.query_row(
            "SELECT COUNT(*) FROM received WHERE controller_id = ?1",
            [CONTROLLER],
            |r| r.get(0),
        )
        .expect("count")
    }

    /// Waits until the receiver holds `n` distinct events of the test controller.
    pub fn wait_for_count(&self, n: i64, timeout: Duration) {
        let mut last = 0;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            last = self.count();
            if last >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the receiver has {last} of {n} events: {:?}",
            self.summary()
        );
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A stand-in for the hall server: publishes configuration and commands, reads acks.
pub struct HallServer {
    client: rumqttc::Client,
    acks: std::sync::mpsc::Receiver<(String, Value)>,
    base: String,
}

impl HallServer {
    /// Connects and subscribes to the controller's ack topics.
    pub fn connect(port: u16, hall_id: &str) -> HallServer {
        let mut o = rumqttc::MqttOptions::new(
            format!("hall-server-{}", std::process::id()),
            "127.0.0.1",
            port,
        );
        o.set_keep_alive(Duration::from_secs(10));
        // A whole hall's setup with its guides is larger than rumqttc's 10 KiB default.
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = rumqttc::Client::new(o, 64);
        let base = format!("hallq/{hall_id}/{CONTROLLER}");
        client
            .subscribe(format!("{base}/+/ack"), rumqttc::QoS::AtLeastOnce)
            .expect("subscribe");
        client
            .subscribe(format!("{base}/state"), rumqttc::QoS::AtLeastOnce)
            .expect("subscribe");
        let (tx, acks) = std::sync::mpsc::channel();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut subacks = 0;
            for ev in conn.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::SubAck(_))) => {
                        subacks += 1;
                        if subacks == 2 {
                            let _ = ready_tx.send(());
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p))) => {
                        let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        if tx.send((p.topic.clone(), v)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("hall server subscribed");
        HallServer { client, acks, base }
    }

    /// Publishes on `<base>/<suffix>` and waits for the reply on `<base>/<suffix>/ack`
    /// whose `key` field equals `id`.
    pub fn request(&self, suffix: &str, body: &Value, key: &str, id: &Value) -> Value {
        self.client
            .publish(
                format!("{}/{suffix}", self.base),
                rumqttc::QoS::AtLeastOnce,
                false,
                body.to_string(),
            )
            .expect("publish");
        let reply = if suffix == "config/set" {
            "config"
        } else {
            suffix
        };
        let topic = format!("{}/{reply}/ack", self.base);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok((t, v)) = self.acks.recv_timeout(Duration::from_millis(100))
                && t == topic
                && &v[key] == id
            {
                return v;
            }
        }
        panic!("no reply on {topic} for {key} = {id}");
    }

    /// Waits for a retained or fresh state document matching `f`.
    pub fn state_where(&self, f: impl Fn(&Value) -> bool) -> Value {
        let topic = format!("{}/state", self.base);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = Value::Null;
        while Instant::now() < deadline {
            if let Ok((t, v)) = self.acks.recv_timeout(Duration::from_millis(100))
                && t == topic
            {
                if f(&v) {
                    return v;
                }
                last = v;
            }
        }
        panic!("no matching state document on {topic}; the last was {last}");
    }
}

/// Certificates for a TLS test, made with the openssl command.
pub struct Certs {
    /// CA certificate.
    pub ca: PathBuf,
    /// Broker certificate (for 127.0.0.1) and key.
    pub server: (PathBuf, PathBuf),
    /// Client certificate and key.
    pub client: (PathBuf, PathBuf),
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Certs {
    /// A fresh CA, a broker certificate for 127.0.0.1 and a client certificate.
    pub fn generate(dir: &Path) -> Certs {
        std::fs::create_dir_all(dir).expect("cert dir");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=hallq test CA",
            ],
        );
        for (name, cn, ext) in [
            (
                "server",
                "127.0.0.1",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ),
            ("client", "qingshan-main", "extendedKeyUsage=clientAuth"),
        ] {
            openssl(
                dir,
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN={cn}"),
                ],
            );
            std::fs::write(dir.join(format!("{name}.ext")), format!("{ext}\n")).expect("ext");
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.crt"),
                    "-days",
                    "2",
                    "-extfile",
                    &format!("{name}.ext"),
                ],
            );
        }
        Certs {
            ca: dir.join("ca.crt"),
            server: (dir.join("server.crt"), dir.join("server.key")),
            client: (dir.join("client.crt"), dir.join("client.key")),
        }
    }
}

/// Writes a mosquitto password file with `users` (name, password).
pub fn password_file(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("passwords");
    std::fs::write(&path, "").expect("password file");
    for (u, p) in users {
        let out = Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(&path)
            .args([u, p])
            .output()
            .expect("mosquitto_passwd runs");
        assert!(out.status.success(), "mosquitto_passwd failed");
    }
    path
}

/// Validates every event against `docs/events.schema.json`; returns the types seen.
pub fn assert_events_match_schema(events: &[Value]) -> std::collections::BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/events.schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema file")).expect("JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let mut types = std::collections::BTreeSet::new();
    for e in events {
        let errors: Vec<String> = validator
            .iter_errors(e)
            .map(|err| format!("{} at {}", err, err.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "event does not match the schema: {errors:?}\n{e}"
        );
        types.insert(e["type"].as_str().unwrap_or_default().to_string());
    }
    types
}

/// Takes `n` tickets for service SB at the controller `d`.
pub fn issue(d: &crate::Daemon, n: usize) {
    let c = crate::client();
    for _ in 0..n {
        let (s, b) = crate::send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .send_json(serde_json::json!({"service": "SB"})),
        );
        assert_eq!(s, 201, "{b}");
    }
}

/// `hallq uplink status --json` of a running controller.
pub fn uplink_status(hall: &crate::Hall, d: &crate::Daemon) -> Value {
    let out = hall.cli(&["uplink", "status", "--json", "--api", &d.url]);
    serde_json::from_str(&out).expect("status JSON")
}

/// The controller's newest sequence number, from `hallq uplink status --json`.
pub fn last_seq(hall: &crate::Hall, d: &crate::Daemon) -> i64 {
    uplink_status(hall, d)["backlog"]["last_seq"]
        .as_i64()
        .expect("last_seq")
}
