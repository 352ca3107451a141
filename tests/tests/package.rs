//! The Debian packages, installed for real: install, start as the package's user with
//! the installed configuration, use it (a ticket; a county's server against a real
//! PostgreSQL and mosquitto), remove, purge. They change the machine, so they run only
//! when `HALLQ_DEB` and `HALLQ_SERVER_DEB` name packages (scripts/test builds them and
//! sets both when it runs as root on a CI machine).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use hallq_tests::{client, send};
use serde_json::json;

/// dpkg does one thing at a time: the two tests take turns.
static DPKG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn id_of(name: &str, db: &str) -> u32 {
    let line = run("getent", &[db, name]);
    line.split(':')
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no {db} entry for {name}: {line}"))
}

#[test]
fn the_package_installs_runs_a_hall_and_removes_cleanly() {
    let Some(deb) = std::env::var_os("HALLQ_DEB") else {
        hallq_tests::missing_prerequisite(
            "the_package_installs_runs_a_hall_and_removes_cleanly",
            "HALLQ_DEB (a built .deb; scripts/test builds it when run as root)",
        );
        return;
    };
    assert!(Path::new(&deb).exists(), "{deb:?} does not exist");
    let deb = deb.to_string_lossy().into_owned();
    let _turn = DPKG.lock().unwrap_or_else(|p| p.into_inner());
    run("dpkg", &["-i", &deb]);

    // The system user, the private data directory and the readable-by-group config.
    let uid = id_of("hallq", "passwd");
    let gid = id_of("hallq", "group");
    let data = std::fs::metadata("/var/lib/hallq").expect("data directory");
    assert_eq!((data.uid(), data.gid()), (uid, gid));
    assert_eq!(data.mode() & 0o777, 0o750);
    let conf = std::fs::metadata("/etc/hallq/hallq.toml").expect("config");
    assert_eq!(
        (conf.uid(), conf.gid(), conf.mode() & 0o777),
        (0, gid, 0o640)
    );
    assert!(Path::new("/usr/lib/systemd/system/hallq.service").exists());
    assert!(Path::new("/usr/share/hallq/voice/default/pack.toml").exists());
    run("/usr/bin/hallq", &["check-config", "/etc/hallq/hallq.toml"]);

    // Run the installed binary as the service would: as hallq, with the installed config.
    let mut child = Command::new("setpriv")
        .args(["--reuid=hallq", "--regid=hallq", "--init-groups", "--"])
        .args(["/usr/bin/hallq", "run", "--config", "/etc/hallq/hallq.toml"])
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the installed hallq");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address line");
    let url = line
        .trim()
        .strip_prefix("hallq listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    // The example hall keeps office hours; outside them the refusal is also an answer
    // from a working daemon, inside them a ticket is issued.
    let (status, body) = send(
        client()
            .post(format!("{url}/api/v1/tickets"))
            .header("Idempotency-Key", "package-test")
            .send_json(json!({"service": "SB"})),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        status == 201 || status == 200 || body["error"]["code"] == "closed",
        "{status} {body}"
    );
    let db = std::fs::metadata("/var/lib/hallq/hallq.db").expect("database created");
    assert_eq!(db.uid(), uid, "the database belongs to hallq");

    // Remove keeps the conffile, purge removes it; the data stays (audit log).
    run("dpkg", &["-r", "hallq"]);
    assert!(!Path::new("/usr/bin/hallq").exists());
    assert!(Path::new("/etc/hallq/hallq.toml").exists());
    run("dpkg", &["-P", "hallq"]);
    assert!(!Path::new("/etc/hallq").exists());
    assert!(Path::new("/var/lib/hallq/hallq.db").exists());
    let _ = std::fs::remove_dir_all("/var/lib/hallq");
}

#[test]
fn the_server_package_installs_serves_a_county_and_removes_cleanly() {
    use hallq_tests::mqtt::{Broker, BrokerOptions};
    use hallq_tests::postgres::Postgres;
    let test = "the_server_package_installs_serves_a_county_and_removes_cleanly";
    let Some(deb) = std::env::var_os("HALLQ_SERVER_DEB") else {
        hallq_tests::missing_prerequisite(
            test,
            "HALLQ_SERVER_DEB (a built .deb; scripts/test builds it when run as root)",
        );
        return;
    };
    let Some(pg) = Postgres::start() else {
        hallq_tests::missing_prerequisite(test, "PostgreSQL server (Debian package postgresql)");
        return;
    };
    assert!(Path::new(&deb).exists(), "{deb:?} does not exist");
    let deb = deb.to_string_lossy().into_owned();
    let _turn = DPKG.lock().unwrap_or_else(|p| p.into_inner());
    run("dpkg", &["-i", &deb]);

    let uid = id_of("hallq-server", "passwd");
    let gid = id_of("hallq-server", "group");
    let data = std::fs::metadata("/var/lib/hallq-server").expect("data directory");
    assert_eq!(
        (data.uid(), data.gid(), data.mode() & 0o777),
        (uid, gid, 0o750)
    );
    let conf_path = "/etc/hallq-server/hallq-server.toml";
    let conf = std::fs::metadata(conf_path).expect("config");
    assert_eq!(
        (conf.uid(), conf.gid(), conf.mode() & 0o777),
        (0, gid, 0o640)
    );
    assert!(Path::new("/usr/lib/systemd/system/hallq-server.service").exists());
    assert!(Path::new("/usr/share/doc/hallq-server/hall-server.md").exists());
    run(
        "/usr/bin/hallq-server",
        &["check-config", "--config", conf_path],
    );

    // The installed example pointed at a real broker and database, run as the service
    // would run it: as hallq-server, with the installed configuration.
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = Broker::start(&dir.path().join("broker"), &BrokerOptions::default())
        .expect("mosquitto starts");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let text = std::fs::read_to_string(conf_path).expect("installed config");
    let text = text
        .replace("port = 1883", &format!("port = {}", broker.port))
        .replace(
            "url = \"host=/run/postgresql user=hallq-server dbname=hallq\"",
            &format!("url = \"{}\"", pg.url()),
        )
        .replace("127.0.0.1:8090", &format!("127.0.0.1:{port}"));
    std::fs::write(conf_path, text).expect("config rewritten");
    let mut child = Command::new("setpriv")
        .args([
            "--reuid=hallq-server",
            "--regid=hallq-server",
            "--init-groups",
            "--",
        ])
        .args(["/usr/bin/hallq-server", "run", "--config", conf_path])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the installed hallq-server");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let metrics = loop {
        if client().get(format!("{url}/healthz")).call().is_ok() {
            let m = client()
                .get(format!("{url}/metrics"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .unwrap_or_default();
            if m.contains("hallq_server_broker_up{instance=\"county-1\"} 1") {
                break m;
            }
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the installed hallq-server did not come up with the broker and database");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let (s, page) = send(client().get(format!("{url}/api/v1/halls")).call());
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        metrics.contains("hallq_server_database_up{instance=\"county-1\"} 1"),
        "{metrics}"
    );
    assert_eq!(s, 401, "the API wants a session: {page}");

    // Remove keeps the conffile, purge removes it.
    run("dpkg", &["-r", "hallq-server"]);
    assert!(!Path::new("/usr/bin/hallq-server").exists());
    assert!(Path::new(conf_path).exists());
    run("dpkg", &["-P", "hallq-server"]);
    assert!(!Path::new("/etc/hallq-server").exists());
    let _ = std::fs::remove_dir_all("/var/lib/hallq-server");
}
