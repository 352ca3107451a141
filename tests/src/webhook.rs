//! A local HTTP receiver for SMS webhooks (`hallq receive --sms-webhook`, the hall
//! server's `[sms] webhook_url`): a thread on 127.0.0.1 with a free port that keeps the
//! JSON body and the `Authorization` header of every POST it accepts and refuses the
//! first `refuse` with `status` (an SMS relay that is down for a moment).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// One POST, accepted.
#[derive(Debug, Clone)]
pub struct Post {
    /// Its JSON body.
    pub body: Value,
    /// Its `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// The receiver; it runs until the test process ends.
pub struct Webhook {
    /// `http://127.0.0.1:PORT/sms`.
    pub url: String,
    posts: Arc<Mutex<Vec<Post>>>,
    refused: Arc<Mutex<usize>>,
}

impl Webhook {
    /// Starts it: the first `refuse` POSTs get `status` (e.g. `"503 Service
    /// Unavailable"`), every later one 200.
    pub fn start(refuse: usize, status: &'static str) -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/sms", listener.local_addr().expect("addr"));
        let posts = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(0));
        let (kept, count) = (posts.clone(), refused.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut length = 0;
                let mut authorization = None;
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("authorization:") {
                        authorization = Some(line["authorization:".len()..].trim().to_string());
                    }
                    line.clear();
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let mut n = count.lock().expect("count");
                let answer = if *n < refuse {
                    *n += 1;
                    status
                } else {
                    kept.lock().expect("posts").push(Post {
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        authorization,
                    });
                    "200 OK"
                };
                drop(n);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {answer}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Webhook {
            url,
            posts,
            refused,
        }
    }

    /// The accepted POSTs' bodies, in order.
    pub fn posts(&self) -> Vec<Value> {
        self.accepted().into_iter().map(|p| p.body).collect()
    }

    /// The accepted POSTs.
    pub fn accepted(&self) -> Vec<Post> {
        self.posts.lock().expect("posts").clone()
    }

    /// How many were refused.
    pub fn refused(&self) -> usize {
        *self.refused.lock().expect("count")
    }
}
