//! The announcer with real sinks: files on disk and `aplay` on ALSA's null device.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveTime;
use hallq_voice::announcer::wall_clock;
use hallq_voice::pack::source_tree_pack_dir;
use hallq_voice::{
    AlsaSink, Announcer, Audio, DropReason, Espeak, FileSink, Message, Pack, QuietHours, QuietMode,
    Renderer, Report, Settings, Sink, Style,
};
use serde_json::Value;

fn call(number: &str, window: u32) -> Message {
    Message::Call {
        number: number.into(),
        window,
        recall: false,
    }
}

fn settings(max_queue: usize) -> Settings {
    Settings {
        style: Style {
            chime: false,
            repeat: 1,
            english: false,
        },
        max_queue,
        prompt_max_wait: Duration::from_secs(10),
        quiet: None,
        clock: wall_clock(480),
    }
}

fn start(sink: Box<dyn Sink>, settings: Settings) -> (Announcer, mpsc::Receiver<Report>) {
    let pack = Pack::load(&source_tree_pack_dir()).unwrap();
    let renderer = Renderer::new(pack, Espeak::new(None), 100);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let a = Announcer::start(renderer, sink, settings, move |r| {
        let _ = tx.lock().unwrap().send(r);
    })
    .unwrap();
    (a, rx)
}

fn sidecars(dir: &Path) -> Vec<Value> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

#[test]
fn a_burst_of_calls_plays_one_at_a_time_in_call_order_and_drops_the_stale_ones() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::new(dir.path(), true).unwrap();
    let (a, rx) = start(Box::new(sink), settings(2));
    let now = Instant::now();
    a.announce(call("A1", 1), now);
    let t = Instant::now();
    while !(a.waiting() == 0 && a.backlog() == 1) {
        assert!(t.elapsed() < Duration::from_secs(10), "A1 never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    for i in 2..=5 {
        a.announce(call(&format!("A{i}"), 1), now);
    }
    assert!(a.wait_idle(Duration::from_secs(60)));
    drop(a);
    let reports: Vec<Report> = rx.try_iter().collect();
    let mut played = Vec::new();
    let mut dropped = Vec::new();
    for r in &reports {
        match r {
            Report::Played {
                message, result, ..
            } => played.push((message.clone(), *result.as_ref().unwrap())),
            Report::Dropped { message, reason } => {
                assert_eq!(*reason, DropReason::QueueFull);
                dropped.push(message.clone());
            }
        }
    }
    // A1 was playing when the rest arrived; two may wait, so A2 and A3 fell out.
    let numbers: Vec<String> = played
        .iter()
        .map(|(m, _)| match m {
            Message::Call { number, .. } => number.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(numbers, ["A1", "A4", "A5"]);
    assert_eq!(dropped, [call("A2", 1), call("A3", 1)]);
    // Never overlapping, each held for its playing time.
    let files = sidecars(dir.path());
    assert_eq!(files.len(), 3);
    for pair in played.windows(2) {
        assert!(pair[0].1.finished <= pair[1].1.first_sample);
    }
    for pair in files.windows(2) {
        let end = pair[0]["finished_unix_us"].as_u64().unwrap();
        let start = pair[1]["started_unix_us"].as_u64().unwrap();
        assert!(end <= start, "{end} > {start}");
    }
    for f in &files {
        let secs = f["samples"].as_u64().unwrap() as f64 / f["rate"].as_u64().unwrap() as f64;
        let held = (f["finished_unix_us"].as_u64().unwrap()
            - f["started_unix_us"].as_u64().unwrap()) as f64
            / 1e6;
        assert!(held + 0.005 >= secs, "held {held}s for {secs}s of audio");
    }
}

#[test]
fn when_the_queue_is_full_a_kiosk_prompt_gives_way_to_calls() {
    let dir = tempfile::tempdir().unwrap();
    let (a, rx) = start(
        Box::new(FileSink::new(dir.path(), true).unwrap()),
        settings(2),
    );
    let now = Instant::now();
    a.announce(call("A1", 1), now);
    let t = Instant::now();
    while !(a.waiting() == 0 && a.backlog() == 1) {
        assert!(t.elapsed() < Duration::from_secs(10), "A1 never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    let prompt = Message::Prompt {
        id: "welcome".into(),
    };
    assert!(a.announce(prompt.clone(), now).queued);
    assert!(a.announce(call("A2", 1), now).queued);
    // Full: the waiting prompt is dropped, not A2.
    let a3 = a.announce(call("A3", 1), now);
    assert!(a3.queued);
    assert_eq!(a3.ahead, 2);
    // Full of calls: a new prompt is refused at once.
    assert!(!a.announce(prompt.clone(), now).queued);
    assert!(a.wait_idle(Duration::from_secs(60)));
    drop(a);
    let dropped: Vec<Message> = rx
        .try_iter()
        .filter_map(|r| match r {
            Report::Dropped { message, reason } => {
                assert_eq!(reason, DropReason::QueueFull);
                Some(message)
            }
            _ => None,
        })
        .collect();
    assert_eq!(dropped, [prompt.clone(), prompt]);
    let played: Vec<Value> = sidecars(dir.path());
    let numbers: Vec<&str> = played
        .iter()
        .map(|s| s["message"]["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["A1", "A2", "A3"]);
}

#[test]
fn twenty_calls_through_aplay_all_play_in_order_without_overlap() {
    if std::process::Command::new("aplay")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("aplay is not installed: scripts/test installs alsa-utils");
    }
    let (a, rx) = start(
        Box::new(AlsaSink::new("aplay", Some("null".into()))),
        settings(100),
    );
    let now = Instant::now();
    for i in 1..=20 {
        a.announce(call(&format!("B{i:03}"), i), now);
    }
    assert!(a.wait_idle(Duration::from_secs(60)));
    drop(a);
    let mut last_end: Option<Instant> = None;
    let mut n = 0;
    for r in rx.try_iter() {
        let Report::Played {
            seq,
            message,
            result,
            ..
        } = r
        else {
            panic!("nothing may be dropped: {r:?}")
        };
        n += 1;
        assert_eq!(seq, n);
        assert_eq!(message, call(&format!("B{n:03}"), n as u32));
        let played = result.unwrap();
        if let Some(end) = last_end {
            assert!(end <= played.first_sample);
        }
        assert!(played.first_sample <= played.finished);
        last_end = Some(played.finished);
    }
    assert_eq!(n, 20);
}

#[test]
fn a_player_that_fails_is_reported_and_the_next_call_still_plays() {
    let (a, rx) = start(
        Box::new(AlsaSink::new("aplay", Some("no_such_alsa_device".into()))),
        settings(5),
    );
    a.announce(call("A1", 1), Instant::now());
    assert!(a.wait_idle(Duration::from_secs(30)));
    let Report::Played { result, .. } = rx.recv().unwrap() else {
        panic!()
    };
    let err = result.unwrap_err().to_string();
    assert!(err.starts_with("aplay failed"), "{err}");
    drop(a);
    let (a, rx) = start(
        Box::new(AlsaSink::new("/nonexistent/aplay", None)),
        settings(5),
    );
    a.announce(call("A1", 1), Instant::now());
    assert!(a.wait_idle(Duration::from_secs(30)));
    let Report::Played { result, .. } = rx.recv().unwrap() else {
        panic!()
    };
    assert!(
        result
            .unwrap_err()
            .to_string()
            .contains("cannot run /nonexistent/aplay")
    );
}

#[test]
fn a_recall_while_its_call_still_waits_is_one_announcement() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _rx) = start(
        Box::new(FileSink::new(dir.path(), true).unwrap()),
        settings(5),
    );
    let now = Instant::now();
    assert!(!a.announce(call("A1", 1), now).merged);
    assert!(!a.announce(call("A2", 2), now).merged);
    let again = a.announce(
        Message::Call {
            number: "A2".into(),
            window: 2,
            recall: true,
        },
        now,
    );
    assert!(again.merged);
    assert_eq!(again.ahead, 1);
    assert!(a.wait_idle(Duration::from_secs(30)));
    assert_eq!(sidecars(dir.path()).len(), 2);
}

fn quiet_settings(mode: QuietMode) -> Settings {
    let noon = NaiveTime::from_hms_opt(12, 30, 0).unwrap();
    Settings {
        quiet: Some(QuietHours {
            from: NaiveTime::from_hms_opt(12, 0, 0).unwrap(),
            to: NaiveTime::from_hms_opt(13, 30, 0).unwrap(),
            mode,
        }),
        clock: Arc::new(move || noon),
        ..settings(5)
    }
}

#[test]
fn quiet_hours_in_chime_mode_play_the_chime_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _rx) = start(
        Box::new(FileSink::new(dir.path(), false).unwrap()),
        quiet_settings(QuietMode::Chime),
    );
    a.announce(call("A1", 1), Instant::now());
    a.announce(
        Message::Prompt {
            id: "welcome".into(),
        },
        Instant::now(),
    );
    assert!(a.wait_idle(Duration::from_secs(30)));
    let files = sidecars(dir.path());
    assert_eq!(files.len(), 1, "the prompt is not replaced by a chime");
    assert_eq!(files[0]["quiet"], true);
    assert_eq!(files[0]["chime_only"], true);
    let tokens: Vec<&str> = files[0]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, ["chime"]);
    let wav = Audio::read_exact(
        std::fs::File::open(dir.path().join("000001.wav")).unwrap(),
        16_000,
    )
    .unwrap();
    let chime = Pack::load(&source_tree_pack_dir()).unwrap();
    assert_eq!(wav.samples, chime.clip("chime").unwrap().samples);
}

#[test]
fn quiet_hours_in_silent_mode_play_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, rx) = start(
        Box::new(FileSink::new(dir.path(), false).unwrap()),
        quiet_settings(QuietMode::Silent),
    );
    a.announce(call("A1", 1), Instant::now());
    assert!(a.wait_idle(Duration::from_secs(30)));
    assert!(matches!(
        rx.recv().unwrap(),
        Report::Dropped {
            reason: DropReason::Quiet,
            ..
        }
    ));
    assert!(sidecars(dir.path()).is_empty());
}

#[test]
fn quiet_hours_may_cross_midnight() {
    let q = QuietHours {
        from: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
        to: NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
        mode: QuietMode::Silent,
    };
    assert!(q.contains(NaiveTime::from_hms_opt(23, 0, 0).unwrap()));
    assert!(q.contains(NaiveTime::from_hms_opt(6, 59, 0).unwrap()));
    assert!(!q.contains(NaiveTime::from_hms_opt(7, 0, 0).unwrap()));
    assert!(!q.contains(NaiveTime::from_hms_opt(12, 0, 0).unwrap()));
}

#[test]
fn a_kiosk_prompt_that_waited_too_long_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (a, rx) = start(
        Box::new(FileSink::new(dir.path(), false).unwrap()),
        settings(5),
    );
    let long_ago = Instant::now() - Duration::from_secs(30);
    a.announce(
        Message::Prompt {
            id: "welcome".into(),
        },
        long_ago,
    );
    a.announce(
        Message::Prompt {
            id: "take_ticket".into(),
        },
        Instant::now(),
    );
    assert!(a.wait_idle(Duration::from_secs(30)));
    let first = rx.recv().unwrap();
    assert!(
        matches!(
            first,
            Report::Dropped {
                reason: DropReason::Expired,
                ..
            }
        ),
        "{first:?}"
    );
    let files = sidecars(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["segments"][0]["token"], "prompt.take_ticket");
}

#[test]
fn file_numbering_continues_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let (a, _rx) = start(
            Box::new(FileSink::new(dir.path(), false).unwrap()),
            settings(5),
        );
        a.announce(call("A1", 1), Instant::now());
        assert!(a.wait_idle(Duration::from_secs(30)));
    }
    assert!(dir.path().join("000001.wav").exists());
    assert!(dir.path().join("000002.wav").exists());
}
