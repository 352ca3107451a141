//! The voice end to end: the real daemon with the files sink, a ticket called over HTTP,
//! and the WAV it produced checked word by word against the shipped voice pack.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hallq_tests::{Hall, client, send};
use serde_json::{Value, json};

fn pack_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/voice/pack/default")
}

fn voice_section(hall_dir: &Path, pack: &Path, extra: &str) -> String {
    format!(
        "\n[voice]\nsink = \"files\"\ndir = {:?}\npace = false\npack = {:?}\n{extra}\n",
        hall_dir.join("announcements").display().to_string(),
        pack.display().to_string(),
    )
}

/// Reads a WAV with hound directly: mono 16-bit samples.
fn read_wav(path: &Path) -> (u32, Vec<i16>) {
    let r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (1, 16), "{spec:?}");
    let samples = r.into_samples::<i16>().map(|s| s.unwrap()).collect();
    (spec.sample_rate, samples)
}

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| (s as f64 / 32768.0).powi(2)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

/// Waits for announcement `n` (its sidecar appears last) and returns it.
fn announcement(dir: &Path, n: u32) -> Value {
    let path = dir.join("announcements").join(format!("{n:06}.json"));
    let t = Instant::now();
    while !path.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn tokens(sidecar: &Value) -> Vec<String> {
    sidecar["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["token"].as_str().unwrap().to_string())
        .collect()
}

fn sign_in_and_call(d: &hallq_tests::Daemon) -> (ureq::Agent, String) {
    let c = client();
    let (s, t) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .send_json(json!({"service": "SB"})),
    );
    assert_eq!(s, 201, "{t}");
    let (s, b) = send(
        c.post(format!("{}/api/v1/sessions", d.url))
            .send_json(json!({"staff_id": "S001", "pin": "135790", "window": 1})),
    );
    assert_eq!(s, 201, "{b}");
    let token = format!("Bearer {}", b["token"].as_str().unwrap());
    let (s, b) = send(
        c.post(format!("{}/api/v1/windows/1/call-next", d.url))
            .header("Authorization", &token)
            .send_json(json!({})),
    );
    assert_eq!(s, 200, "{b}");
    (c, token)
}

#[test]
fn a_called_ticket_is_spoken_word_for_word_from_the_pack_and_a_recall_says_it_again() {
    let hall = Hall::new();
    let mut text = std::fs::read_to_string(&hall.config).unwrap();
    text.push_str(&voice_section(
        hall.dir.path(),
        &pack_dir(),
        "repeat = 2\nenglish = true",
    ));
    std::fs::write(&hall.config, text).unwrap();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let d = hall.start();
    let (c, token) = sign_in_and_call(&d);

    let first = announcement(hall.dir.path(), 1);
    assert_eq!(
        first["message"],
        json!({"kind": "call", "number": "A000001", "window": 1, "recall": false})
    );
    // 请 A000001 号 到 一 号 窗口 办理 / Number A 0 0 0 0 0 1, please go to window one; twice.
    let zh = "zh.qing letter.A zh.0 zh.0 zh.0 zh.0 zh.0 zh.1 zh.hao zh.dao zh.1 zh.hao zh.chuangkou zh.banli";
    let en = "en.number letter.A en.0 en.0 en.0 en.0 en.0 en.1 en.please_go_to_window en.1";
    let expected: Vec<String> = format!("chime {zh} {en} {zh} {en}")
        .split(' ')
        .map(String::from)
        .collect();
    assert_eq!(tokens(&first), expected);

    // The audio is exactly the pack's clips in that order with silence between them.
    let (rate, wav) = read_wav(&hall.dir.path().join("announcements/000001.wav"));
    assert_eq!(rate, 16_000);
    assert_eq!(wav.len() as u64, first["samples"].as_u64().unwrap());
    let mut end = 0usize;
    for seg in first["segments"].as_array().unwrap() {
        assert_eq!(seg["source"], "pack", "{seg}");
        let offset = seg["offset"].as_u64().unwrap() as usize;
        let (clip_rate, clip) =
            read_wav(&pack_dir().join(format!("{}.wav", seg["token"].as_str().unwrap())));
        assert_eq!(clip_rate, rate);
        assert!(offset >= end, "segments overlap at {seg}");
        assert!(
            wav[end..offset].iter().all(|&s| s == 0),
            "silence before {seg}"
        );
        assert_eq!(&wav[offset..offset + clip.len()], &clip[..], "{seg}");
        end = offset + clip.len();
    }
    assert_eq!(end, wav.len());
    // Not silence: the speech after the chime is well above a floor of -34 dBFS.
    let speech_from = first["segments"][1]["offset"].as_u64().unwrap() as usize;
    let level = rms(&wav[speech_from..]);
    assert!(level > 0.02, "speech RMS {level}");

    // A recall says the same words again.
    let (s, b) = send(
        c.post(format!("{}/api/v1/windows/1/recall", d.url))
            .header("Authorization", &token)
            .send_json(json!({})),
    );
    assert_eq!(s, 200, "{b}");
    let second = announcement(hall.dir.path(), 2);
    assert_eq!(second["message"]["recall"], true);
    assert_eq!(tokens(&second), expected);
    assert!(
        first["finished_unix_us"].as_u64() <= second["started_unix_us"].as_u64(),
        "no overlap"
    );

    // The kiosk's elder-mode prompt goes through the same announcer.
    let (s, b) = send(
        c.post(format!("{}/api/v1/voice/prompt", d.url))
            .send_json(json!({"prompt": "welcome"})),
    );
    assert_eq!(s, 202, "{b}");
    let third = announcement(hall.dir.path(), 3);
    assert_eq!(tokens(&third), ["prompt.welcome"]);
    let (s, b) = send(
        c.post(format!("{}/api/v1/voice/prompt", d.url))
            .send_json(json!({"prompt": "sing_a_song"})),
    );
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("prompt")),
        "{b}"
    );
    assert!(b["error"]["message"].as_str().unwrap().contains("welcome"));
    let (s, v) = send(c.get(format!("{}/api/v1/voice", d.url)).call());
    assert_eq!((s, v["enabled"].as_bool()), (200, Some(true)), "{v}");

    let (_, devices) = send(c.get(format!("{}/api/v1/devices", d.url)).call());
    let voice = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "voice")
        .unwrap_or_else(|| panic!("voice reports its health: {devices}"));
    assert_eq!(voice["health"]["state"], "ok");
}

/// A hall whose own pack is the default one without 窗口, with `extra` voice settings.
fn hall_with_a_pack_missing_chuangkou(extra: &str) -> Hall {
    let hall = Hall::new();
    let pack = hall.dir.path().join("pack");
    std::fs::create_dir_all(&pack).unwrap();
    for entry in std::fs::read_dir(pack_dir()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, pack.join(p.file_name().unwrap())).unwrap();
    }
    let manifest = std::fs::read_to_string(pack.join("pack.toml")).unwrap();
    let without: String = manifest
        .lines()
        .filter(|l| !l.starts_with("\"zh.chuangkou\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(manifest, without);
    std::fs::write(pack.join("pack.toml"), without).unwrap();
    let mut text = std::fs::read_to_string(&hall.config).unwrap();
    text.push_str(&voice_section(hall.dir.path(), &pack, extra));
    std::fs::write(&hall.config, text).unwrap();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    hall
}

#[test]
fn a_pack_missing_a_word_is_helped_out_by_espeak_when_it_is_installed() {
    let hall = hall_with_a_pack_missing_chuangkou("repeat = 1\nchime = false");
    let d = hall.start();
    let _ = sign_in_and_call(&d);
    let a = announcement(hall.dir.path(), 1);
    assert_eq!(a["chime_only"], false, "{a} (is espeak-ng installed?)");
    let zh = "zh.qing letter.A zh.0 zh.0 zh.0 zh.0 zh.0 zh.1 zh.hao zh.dao zh.1 zh.hao zh.chuangkou zh.banli";
    assert_eq!(tokens(&a).join(" "), zh);
    let (_, wav) = read_wav(&hall.dir.path().join("announcements/000001.wav"));
    for seg in a["segments"].as_array().unwrap() {
        let (offset, len) = (
            seg["offset"].as_u64().unwrap() as usize,
            seg["len"].as_u64().unwrap() as usize,
        );
        let expected = if seg["token"] == "zh.chuangkou" {
            "espeak"
        } else {
            "pack"
        };
        assert_eq!(seg["source"], expected, "{seg}");
        let level = rms(&wav[offset..offset + len]);
        assert!(level > 0.02, "{seg}: RMS {level}");
    }
    let (_, devices) = send(client().get(format!("{}/api/v1/devices", d.url)).call());
    let pack_health = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "voice/pack")
        .unwrap_or_else(|| panic!("{devices}"));
    assert_eq!(pack_health["health"]["state"], "ok");
}

#[test]
fn a_pack_missing_a_word_without_espeak_gives_the_chime_alone_and_a_device_warning() {
    // espeak-ng turned off in the configuration (as on a board without it installed).
    let hall = hall_with_a_pack_missing_chuangkou("repeat = 1\nespeak = \"\"");
    let d = hall.start();
    let _ = sign_in_and_call(&d);

    let a = announcement(hall.dir.path(), 1);
    assert_eq!(a["chime_only"], true);
    assert_eq!(tokens(&a), ["chime"]);
    assert_eq!(a["missing"][0]["token"], "zh.chuangkou");
    let (_, wav) = read_wav(&hall.dir.path().join("announcements/000001.wav"));
    let (_, chime) = read_wav(&pack_dir().join("chime.wav"));
    assert_eq!(wav, chime);
    assert!(rms(&wav) > 0.02);

    let (_, devices) = send(client().get(format!("{}/api/v1/devices", d.url)).call());
    let pack_health = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "voice/pack")
        .unwrap_or_else(|| panic!("{devices}"));
    assert_eq!(pack_health["health"]["code"], "voice_clips_missing");
    let faults = hall.events_of("device_fault");
    assert!(
        faults.iter().any(|f| f["device"] == "voice/pack"),
        "{faults:?}"
    );
}

#[test]
fn a_pack_clip_in_the_wrong_format_stops_the_daemon_at_start_naming_the_clip() {
    let hall = Hall::new();
    let pack = hall.dir.path().join("pack");
    std::fs::create_dir_all(&pack).unwrap();
    let mut w = hound::WavWriter::create(
        pack.join("qing.wav"),
        hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        },
    )
    .unwrap();
    for _ in 0..100 {
        w.write_sample(1000i16).unwrap();
    }
    w.finalize().unwrap();
    std::fs::write(
        pack.join("pack.toml"),
        "name = \"ours\"\n[clips]\n\"zh.qing\" = \"qing.wav\"\n",
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&hall.config).unwrap();
    text.push_str(&voice_section(hall.dir.path(), &pack, ""));
    std::fs::write(&hall.config, text).unwrap();
    let out = std::process::Command::new(hallq_tests::hallq_bin())
        .args(["check-config"])
        .arg(&hall.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zh.qing (qing.wav): is stereo 16-bit PCM at 44100 Hz"),
        "{err}"
    );
    let started = hallq_tests::Daemon::start(&hallq_tests::hallq_bin(), &hall.config);
    assert!(started.is_err(), "the daemon refuses the pack");
}

#[test]
fn calls_from_several_windows_at_once_are_spoken_one_after_another() {
    let hall = Hall::new();
    let mut text = std::fs::read_to_string(&hall.config).unwrap();
    // Paced: each file is held for its playing time, as a speaker would be.
    text.push_str(
        &voice_section(hall.dir.path(), &pack_dir(), "repeat = 1\nchime = false")
            .replace("pace = false", "pace = true"),
    );
    std::fs::write(&hall.config, text).unwrap();
    for w in 1..=3 {
        hall.add_staff(&format!("S00{w}"), "135790", &["--window", &w.to_string()]);
    }
    let d = hall.start();
    let c = client();
    let mut tokens_by_window = Vec::new();
    for (w, service) in [(1, "SB"), (2, "SB"), (3, "MZ")] {
        let (s, t) = send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .send_json(json!({"service": service})),
        );
        assert_eq!(s, 201, "{t}");
        let (s, b) = send(
            c.post(format!("{}/api/v1/sessions", d.url))
                .send_json(json!({"staff_id": format!("S00{w}"), "pin": "135790", "window": w})),
        );
        assert_eq!(s, 201, "{b}");
        tokens_by_window.push((w, format!("Bearer {}", b["token"].as_str().unwrap())));
    }
    // Three windows press "call next" at the same moment.
    let url = d.url.clone();
    let threads: Vec<_> = tokens_by_window
        .into_iter()
        .map(|(w, token)| {
            let url = url.clone();
            std::thread::spawn(move || {
                let (s, b) = send(
                    client()
                        .post(format!("{url}/api/v1/windows/{w}/call-next"))
                        .header("Authorization", &token)
                        .send_json(json!({})),
                );
                assert_eq!(s, 200, "{b}");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let played: Vec<Value> = (1..=3).map(|n| announcement(hall.dir.path(), n)).collect();
    let mut windows: Vec<u64> = played
        .iter()
        .map(|a| a["message"]["window"].as_u64().unwrap())
        .collect();
    windows.sort();
    assert_eq!(windows, [1, 2, 3], "every call spoken once");
    for pair in played.windows(2) {
        let end = pair[0]["finished_unix_us"].as_u64().unwrap();
        let start = pair[1]["started_unix_us"].as_u64().unwrap();
        assert!(end <= start, "announcements overlap: {end} > {start}");
    }
    for a in &played {
        let secs = a["samples"].as_f64().unwrap() / a["rate"].as_f64().unwrap();
        let held = (a["finished_unix_us"].as_u64().unwrap()
            - a["started_unix_us"].as_u64().unwrap()) as f64
            / 1e6;
        assert!(held + 0.005 >= secs, "held {held}s for {secs}s of audio");
    }
}

#[test]
fn elder_mode_prompts_during_a_call_wait_for_it_and_never_delay_the_next_call() {
    let hall = Hall::new();
    let mut text = std::fs::read_to_string(&hall.config).unwrap();
    // Paced, so that the first call is still playing when the prompts arrive.
    text.push_str(
        &voice_section(
            hall.dir.path(),
            &pack_dir(),
            "repeat = 1\nchime = true\nprompt_max_wait_secs = 120",
        )
        .replace("pace = false", "pace = true"),
    );
    std::fs::write(&hall.config, text).unwrap();
    hall.add_staff("S001", "135790", &["--window", "1"]);
    let d = hall.start();
    let (s, t) = send(
        client()
            .post(format!("{}/api/v1/tickets", d.url))
            .send_json(json!({"service": "SB"})),
    );
    assert_eq!(s, 201, "{t}");
    let (c, token) = sign_in_and_call(&d);
    // The first call is playing: wait until its WAV is being held (its sidecar is not
    // yet written), then a kiosk in elder mode speaks its steps.
    let playing = hall.dir.path().join("announcements");
    let t0 = Instant::now();
    while std::fs::read_dir(&playing).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the call never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let prompt = |body: Value| {
        send(
            c.post(format!("{}/api/v1/voice/prompt", d.url))
                .send_json(body),
        )
    };
    let (s, b) = prompt(json!({"prompt": "choose_service"}));
    assert_eq!(s, 202, "{b}");
    let (s, b) = prompt(json!({"prompt": "your_number", "number": "A000009"}));
    assert_eq!(s, 202, "{b}");
    // Bad input names the field.
    let (s, b) = prompt(json!({"prompt": "your_number"}));
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("number")),
        "{b}"
    );
    let (s, b) = prompt(json!({"prompt": "welcome", "number": "A1"}));
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("number")),
        "{b}"
    );
    let (s, b) = prompt(json!({"prompt": "your_number", "number": "A-1"}));
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("number")),
        "{b}"
    );
    // A second call while the prompts wait goes ahead of them.
    for action in ["start", "finish", "call-next"] {
        let (s, b) = send(
            c.post(format!("{}/api/v1/windows/1/{action}", d.url))
                .header("Authorization", &token)
                .send_json(json!({})),
        );
        assert_eq!(s, 200, "{action}: {b}");
    }

    let played: Vec<Value> = (1..=4).map(|n| announcement(hall.dir.path(), n)).collect();
    let kinds: Vec<String> = played
        .iter()
        .map(|a| {
            let m = &a["message"];
            match m["kind"].as_str().unwrap() {
                "call" => format!("call {}", m["number"].as_str().unwrap()),
                _ => m["id"].as_str().unwrap().to_string(),
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "call A000001",
            "call A000002",
            "choose_service",
            "your_number"
        ]
    );
    assert_eq!(
        tokens(&played[3]),
        "prompt.your_number letter.A zh.0 zh.0 zh.0 zh.0 zh.0 zh.9"
            .split(' ')
            .collect::<Vec<_>>()
    );
    assert_eq!(tokens(&played[2]), ["prompt.choose_service"]);
    for pair in played.windows(2) {
        let end = pair[0]["finished_unix_us"].as_u64().unwrap();
        let start = pair[1]["started_unix_us"].as_u64().unwrap();
        assert!(end <= start, "a prompt spoke over a call: {end} > {start}");
    }
    // The help bell speaks help_coming through the same voice; a second press while the
    // request is open says nothing more.
    for _ in 0..2 {
        let (s, b) = send(
            c.post(format!("{}/api/v1/help", d.url))
                .header("X-Kiosk-Id", "lobby")
                .send_json(json!({"screen": "ticket"})),
        );
        assert!(s == 201 || s == 200, "{b}");
    }
    let help = announcement(hall.dir.path(), 5);
    assert_eq!(tokens(&help), ["prompt.help_coming"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !hall.dir.path().join("announcements/000006.json").exists(),
        "a second press spoke again"
    );
}
