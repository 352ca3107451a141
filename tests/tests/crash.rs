//! Power cuts: tickets are issued over HTTP in a loop while the daemon is killed with
//! SIGKILL at random moments, then restarted. Every acknowledged ticket must survive,
//! no number may repeat, a retry of the request in flight must not make a second
//! ticket, and the queue must still call in issue order. `HALLQ_CRASH_CYCLES` sets the
//! number of cycles (default 50).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hallq_tests::{Hall, client, send};
use serde_json::json;

/// xorshift, seeded from the clock; the seed is printed so a failure can be replayed.
struct Dice(u64);
impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn acknowledged_tickets_survive_sigkill_and_numbers_never_repeat() {
    let cycles: usize = std::env::var("HALLQ_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed = std::env::var("HALLQ_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("crash test: {cycles} cycles, HALLQ_CRASH_SEED={seed}");
    let mut dice = Dice(seed);
    let hall = Hall::new();
    hall.add_staff("S100", "112233", &["--window", "1"]);
    // key -> (id, number) for every acknowledged ticket
    let acked: Arc<Mutex<BTreeMap<String, (u64, String)>>> = Arc::default();
    let mut in_flight_keys: Vec<String> = Vec::new();
    let mut next_key = 0usize;
    for cycle in 0..cycles {
        let d = hall.start();
        let url = d.url.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let start_key = next_key;
        let worker = {
            let (acked, stop, url) = (acked.clone(), stop.clone(), url.clone());
            std::thread::spawn(move || {
                let c = client();
                let mut k = start_key;
                let mut last_sent = None;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("crash-{k}");
                    last_sent = Some(key.clone());
                    match c
                        .post(format!("{url}/api/v1/tickets"))
                        .header("Idempotency-Key", &key)
                        .send_json(json!({"service": "SB"}))
                    {
                        Ok(mut r) if r.status().as_u16() == 201 => {
                            if let Ok(v) = r.body_mut().read_json::<serde_json::Value>() {
                                let id = v["ticket"]["id"].as_u64().unwrap_or(0);
                                let number =
                                    v["ticket"]["number"].as_str().unwrap_or("").to_string();
                                acked.lock().unwrap().insert(key.clone(), (id, number));
                                last_sent = None;
                            }
                        }
                        _ => break,
                    }
                    k += 1;
                }
                (k, last_sent)
            })
        };
        std::thread::sleep(Duration::from_millis(20 + dice.below(300)));
        // Power cut.
        drop(d);
        stop.store(true, Ordering::Relaxed);
        let (k, in_flight) = worker.join().unwrap();
        next_key = k + 1;
        in_flight_keys.extend(in_flight);
        if cycle % 5 == 0 {
            eprintln!(
                "cycle {cycle}: {} tickets acknowledged so far",
                acked.lock().unwrap().len()
            );
        }
    }

    let d = hall.start();
    let c = client();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > cycles,
        "too few tickets were issued to mean anything: {}",
        acked.len()
    );
    // Every acknowledged ticket is there, and a retry of its key returns it.
    for (key, (id, number)) in &acked {
        let (s, b) = send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("Idempotency-Key", key)
                .send_json(json!({"service": "SB"})),
        );
        assert_eq!(
            s, 200,
            "retry of acknowledged {key} made something new: {b}"
        );
        assert_eq!(
            (b["ticket"]["id"].as_u64(), b["ticket"]["number"].as_str()),
            (Some(*id), Some(number.as_str())),
            "{key}"
        );
    }
    // The request in flight at each cut: a retry gives one ticket, and a second retry the same one.
    for key in &in_flight_keys {
        let (_, a) = send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("Idempotency-Key", key)
                .send_json(json!({"service": "SB"})),
        );
        let (s, b) = send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("Idempotency-Key", key)
                .send_json(json!({"service": "SB"})),
        );
        assert_eq!(s, 200);
        assert_eq!(
            a["ticket"]["id"], b["ticket"]["id"],
            "retries of {key} disagree"
        );
    }
    // Numbers never repeat and the queue calls them back in issue order.
    let (_, b) = send(
        c.post(format!("{}/api/v1/sessions", d.url))
            .send_json(json!({"staff_id": "S100", "pin": "112233", "window": 1})),
    );
    let token = format!("Bearer {}", b["token"].as_str().expect("signed in"));
    let mut called = Vec::new();
    loop {
        let (s, b) = send(
            c.post(format!("{}/api/v1/windows/1/call-next", d.url))
                .header("Authorization", &token)
                .send_json(json!({})),
        );
        if s != 200 {
            assert_eq!(b["error"]["code"], "queue_empty", "{b}");
            break;
        }
        called.push(
            b["events"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["type"] == "ticket_called")
                .unwrap()["number"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        send(
            c.post(format!("{}/api/v1/windows/1/finish", d.url))
                .header("Authorization", &token)
                .send_json(json!({})),
        );
    }
    let unique: HashSet<&String> = called.iter().collect();
    assert_eq!(unique.len(), called.len(), "a number was called twice");
    let mut sorted = called.clone();
    sorted.sort();
    assert_eq!(called, sorted, "the queue lost its order");
    let numbers: HashSet<&str> = called.iter().map(String::as_str).collect();
    for (key, (_, number)) in &acked {
        assert!(
            numbers.contains(number.as_str()),
            "acknowledged {key} ({number}) was not in the queue"
        );
    }
    eprintln!(
        "crash test: {} acknowledged, {} called in order after {cycles} power cuts",
        acked.len(),
        called.len()
    );
}
