//! Faults a hall meets over years: the disk fills up. The daemon must refuse new tickets
//! with a clear message rather than corrupt anything, and work again once space is
//! freed — without a restart, and without losing what it had acknowledged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hallq_tests::{Hall, client, send};
use serde_json::{Value, json};

/// A small tmpfs, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the disk with one file until the kernel says no; returns the file.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    path
}

#[test]
fn a_full_disk_refuses_tickets_clearly_and_loses_nothing() {
    let Some(disk) = SmallDisk::mount("8m") else {
        hallq_tests::missing_prerequisite(
            "a_full_disk_refuses_tickets_clearly_and_loses_nothing",
            "a mountable tmpfs (`mount -t tmpfs` failed: needs root)",
        );
        return;
    };
    let hall = Hall::new();
    let text = std::fs::read_to_string(&hall.config).unwrap();
    let data = hall.dir.path().join("data");
    let text = text.replace(
        &format!("data_dir = {:?}", data.display().to_string()),
        &format!("data_dir = {:?}", disk.path().display().to_string()),
    );
    std::fs::write(&hall.config, text).unwrap();

    let d = hall.start();
    let c = client();
    let issue = |d: &hallq_tests::Daemon, key: &str| -> (u16, Value) {
        send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("Idempotency-Key", key)
                .send_json(json!({"service": "SB"})),
        )
    };
    let mut acked: Vec<(u64, String)> = Vec::new();
    for i in 0..5 {
        let (s, b) = issue(&d, &format!("before-{i}"));
        assert_eq!(s, 201, "{b}");
        acked.push((
            b["ticket"]["id"].as_u64().unwrap(),
            b["ticket"]["number"].as_str().unwrap().into(),
        ));
    }

    let filler = fill(disk.path());
    let mut refused = None;
    for i in 0..5000 {
        let (s, b) = issue(&d, &format!("full-{i}"));
        match s {
            201 => acked.push((
                b["ticket"]["id"].as_u64().unwrap(),
                b["ticket"]["number"].as_str().unwrap().into(),
            )),
            _ => {
                refused = Some((s, b));
                break;
            }
        }
    }
    let (s, b) = refused.expect("a full disk must refuse a ticket at some point");
    assert_eq!(s, 507, "{b}");
    assert_eq!(b["error"]["code"], "storage_full");
    assert!(b["error"]["message"].as_str().unwrap().contains("磁盘已满"));
    // Still refused, still clear, while the disk stays full; reads keep working.
    let (s, _) = issue(&d, "full-again");
    assert_eq!(s, 507);
    let (s, _) = send(c.get(format!("{}/api/v1/overview", d.url)).call());
    assert_eq!(s, 200);

    // Space freed: the very next ticket succeeds, no restart needed.
    std::fs::remove_file(filler).unwrap();
    let (s, b) = issue(&d, "after");
    assert_eq!(s, 201, "{b}");
    acked.push((
        b["ticket"]["id"].as_u64().unwrap(),
        b["ticket"]["number"].as_str().unwrap().into(),
    ));

    // A power cut now, and everything acknowledged is there, numbers unique.
    drop(d); // SIGKILL: a power cut
    let d = hall.start();
    let mut numbers = std::collections::BTreeSet::new();
    for (id, number) in &acked {
        let (s, b) = send(c.get(format!("{}/api/v1/tickets/{id}", d.url)).call());
        assert_eq!(s, 200, "ticket {id} lost: {b}");
        assert_eq!(b["ticket"]["number"].as_str(), Some(number.as_str()));
        assert!(numbers.insert(number.clone()), "{number} repeated");
    }
    drop(d);
    let db = rusqlite::Connection::open(disk.path().join("hallq.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn the_clock_jumping_back_or_ahead_never_repeats_a_number() {
    let hall = Hall::new();
    let offset = hall.dir.path().join("faketime");
    let Some(d) = hallq_tests::Daemon::start_faked_clock(
        &hallq_tests::hallq_bin(),
        &hall.config,
        &offset,
        "the_clock_jumping_back_or_ahead_never_repeats_a_number",
    ) else {
        return;
    };
    let c = client();
    let issue = |key: &str| -> Value {
        let (s, b) = send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("Idempotency-Key", key)
                .send_json(json!({"service": "SB"})),
        );
        assert_eq!(s, 201, "{b}");
        b["ticket"].clone()
    };
    let before: Vec<Value> = (0..3).map(|i| issue(&format!("t-{i}"))).collect();

    // An NTP step or a flat RTC battery: the clock goes back an hour.
    std::fs::write(&offset, "-1h\n").unwrap();
    let after: Vec<Value> = (0..3).map(|i| issue(&format!("b-{i}"))).collect();
    let all: Vec<&Value> = before.iter().chain(&after).collect();
    let numbers: Vec<&str> = all.iter().map(|t| t["number"].as_str().unwrap()).collect();
    assert_eq!(
        numbers,
        [
            "A000001", "A000002", "A000003", "A000004", "A000005", "A000006"
        ]
    );
    let times: Vec<i64> = all
        .iter()
        .map(|t| t["issued_at"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "issue times went backwards: {times:?}"
    );
    assert!(all.iter().all(|t| t["day"] == before[0]["day"]));
    let (_, first) = send(
        c.get(format!("{}/api/v1/tickets/{}", d.url, before[0]["id"]))
            .call(),
    );
    assert_eq!(first["ticket"]["ahead"], 0, "first-come-first-served kept");

    // A jump a day ahead is a new service day: numbering restarts, yesterday's queue
    // is closed, and no number of the new day repeats.
    std::fs::write(&offset, "+1d\n").unwrap();
    let next = issue("next-day");
    assert_ne!(next["day"], before[0]["day"]);
    assert_eq!(next["number"], "A000001");
    let (_, old) = send(
        c.get(format!("{}/api/v1/tickets/{}", d.url, before[0]["id"]))
            .call(),
    );
    assert_eq!(old["ticket"]["state"], "cancelled");
    let again = issue("next-day-2");
    assert_eq!(again["number"], "A000002");
}
