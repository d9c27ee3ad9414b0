//! A local HTTP receiver standing in for Slack, Teams, a webhook consumer or GitHub's status
//! API: it records each request (path, headers, body) and answers from a script.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// How the receiver answers.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// A status and a JSON body.
    Json(u16, String),
    /// Read the request, then never answer (until the test ends).
    Hang,
}

pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    /// Answer with `script` in order, then with `then` for every later request.
    pub fn start(script: Vec<Answer>, then: Answer) -> Receiver {
        let mut script = script.into_iter();
        Receiver::start_with(move |_| script.next().unwrap_or_else(|| then.clone()))
    }

    /// Answer each request with what `answer` says of it.
    pub fn start_with(mut answer: impl FnMut(&Request) -> Answer + Send + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received: Arc<Mutex<Vec<Request>>> = Arc::default();
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(req) = read_request(&mut stream) else {
                    continue;
                };
                let answer = answer(&req);
                log.lock().unwrap().push(req);
                match answer {
                    Answer::Hang => {
                        // Keep the connection open and unanswered.
                        std::thread::spawn(move || {
                            std::thread::sleep(Duration::from_secs(600));
                            drop(stream);
                        });
                    }
                    Answer::Status(code) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                        );
                    }
                    Answer::Json(code, body) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                }
            }
        });
        Receiver { url, received }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.received.lock().unwrap().clone()
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
