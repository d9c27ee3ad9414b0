//! A local HTTP server speaking the parts of GitHub's REST API baton reads (pull requests,
//! reviews with `Link` pagination, commit → pull requests, signing keys), logging requests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// (path with query, extra response header lines, JSON body).
pub type Route = (String, String, String);

/// A running fake API on `127.0.0.1`; unknown paths answer 404.
pub struct Server {
    /// Base URL, e.g. `http://127.0.0.1:PORT` (use as `GITHUB_API_URL`).
    pub url: String,
    /// The head (request line and headers) of each request received.
    pub requests: Arc<Mutex<Vec<String>>>,
    routes: Arc<Mutex<Vec<Route>>>,
}

impl Server {
    /// Add or replace the answer for `path` (`{URL}` in headers becomes the server's URL).
    pub fn route(&self, path: &str, headers: &str, body: &str) {
        let mut routes = self.routes.lock().unwrap();
        routes.retain(|r| r.0 != path);
        routes.push((
            path.to_owned(),
            headers.replace("{URL}", &self.url),
            body.to_owned(),
        ));
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Start a server with `routes`, replacing `{URL}` in headers with its own base URL.
pub fn serve_with_self_url(routes: Vec<Route>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = Server {
        url,
        requests: Arc::new(Mutex::new(Vec::new())),
        routes: Arc::new(Mutex::new(Vec::new())),
    };
    for (p, h, b) in routes {
        server.route(&p, &h, &b);
    }
    let (log, table) = (server.requests.clone(), server.routes.clone());
    std::thread::spawn(move || serve_loop(listener, table, log));
    server
}

fn serve_loop(listener: TcpListener, routes: Arc<Mutex<Vec<Route>>>, log: Arc<Mutex<Vec<String>>>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
        log.lock().unwrap().push(head.clone());
        let found = routes.lock().unwrap().iter().find(|r| r.0 == path).cloned();
        let (status, headers, body) = match found {
            Some((_, h, b)) => ("200 OK", h, b),
            None => (
                "404 Not Found",
                String::new(),
                "{\"message\":\"Not Found\"}".into(),
            ),
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
            body.len()
        );
    }
}

/// A pull-request review as `GET /repos/{o}/{r}/pulls/{n}/reviews` lists it.
pub fn review(id: u64, login: &str, state: &str, sha: &str) -> String {
    format!(
        r#"{{"id":{id},"node_id":"PRR_{id}","user":{{"login":"{login}","id":{id},"type":"User"}},"body":"","state":"{state}","html_url":"https://github.com/acme/registry/pull/7#pullrequestreview-{id}","pull_request_url":"https://api.github.com/repos/acme/registry/pulls/7","author_association":"MEMBER","submitted_at":"2026-11-23T10:00:00Z","commit_id":"{sha}"}}"#
    )
}

/// A pull request as `GET /repos/{o}/{r}/pulls/{n}` (and `.../commits/{sha}/pulls`) shows it:
/// `merged` gives its `merge_commit_sha` and `merged_at`.
pub fn pull(number: u64, author: &str, head: &str, merged: Option<&str>) -> String {
    let (state, merged_at, merge_sha) = match merged {
        Some(sha) => (
            "closed",
            r#""2026-11-23T10:00:00Z""#.to_owned(),
            format!("\"{sha}\""),
        ),
        None => ("open", "null".to_owned(), "null".to_owned()),
    };
    format!(
        r#"{{"number":{number},"state":"{state}","user":{{"login":"{author}"}},"head":{{"ref":"pr","sha":"{head}"}},"base":{{"ref":"main","sha":"0000"}},"merged_at":{merged_at},"merge_commit_sha":{merge_sha}}}"#
    )
}
