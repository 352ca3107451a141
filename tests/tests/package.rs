//! The Debian package, installed for real: install, start as the `hallq` user with the
//! installed configuration, issue a ticket, remove, purge. It changes the machine, so
//! it runs only when `HALLQ_DEB` names a package (scripts/test builds one and sets it
//! when it runs as root on a CI machine).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use hallq_tests::{client, send};
use serde_json::json;

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
