//! baton's one HTTP client policy (ureq) for every outgoing request: the `User-Agent`, how long
//! a request may wait, and whether redirects are followed are decided here, once.

use std::time::Duration;

/// `baton/<version>`, sent with every request.
pub const USER_AGENT: &str = concat!("baton/", env!("CARGO_PKG_VERSION"));

/// Connecting never waits longer than this, whatever the request's own timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a client does with a `3xx` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// The `3xx` is the answer (webhooks, notifications, health checks, Prometheus): a
    /// receiver that redirects is misconfigured, and following would resend a signed body.
    Refuse,
    /// Followed, without the `Authorization` header (the GitHub API, presigned downloads).
    FollowWithoutCredentials,
}

/// A client whose every request ends within `timeout` (connecting included).
pub fn agent(timeout: Duration, redirects: Redirects) -> ureq::Agent {
    builder(redirects)
        .timeout_connect(timeout.min(CONNECT_TIMEOUT))
        .timeout(timeout)
        .build()
}

/// A client for transfers that take as long as they take: `stall` bounds connecting and each
/// wait for data, not the whole body (artifact downloads).
pub fn streaming_agent(stall: Duration, redirects: Redirects) -> ureq::Agent {
    builder(redirects)
        .timeout_connect(stall.min(CONNECT_TIMEOUT))
        .timeout_read(stall)
        .timeout_write(stall)
        .build()
}

fn builder(redirects: Redirects) -> ureq::AgentBuilder {
    let b = ureq::AgentBuilder::new().user_agent(USER_AGENT);
    match redirects {
        Redirects::Refuse => b.redirects(0),
        Redirects::FollowWithoutCredentials => {
            b.redirect_auth_headers(ureq::RedirectAuthHeaders::Never)
        }
    }
}

/// Why a request did not get through, as a sentence without the URL (callers name the
/// server once): `Connection Failed: Connect error: Connection refused (os error 111)`.
pub fn transport_text(t: &ureq::Transport) -> String {
    let mut s = t.kind().to_string();
    if let Some(m) = t.message() {
        s.push_str(&format!(": {m}"));
    }
    if let Some(src) = std::error::Error::source(t) {
        s.push_str(&format!(": {src}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A server that answers one request with `answer` and returns what it received.
    fn serve_once(answer: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            s.write_all(answer.as_bytes()).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (url, h)
    }

    #[test]
    fn requests_name_baton_and_a_refused_redirect_is_the_answer() {
        let (url, h) = serve_once(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n",
        );
        let r = agent(Duration::from_secs(5), Redirects::Refuse)
            .get(&url)
            .call();
        match r {
            Err(ureq::Error::Status(302, _)) | Ok(_) => {}
            Err(e) => panic!("a refused redirect is the answer, not {e}"),
        }
        let req = h.join().unwrap();
        assert!(
            req.contains(&format!("user-agent: {USER_AGENT}"))
                || req.contains(&format!("User-Agent: {USER_AGENT}")),
            "{req}"
        );
    }

    #[test]
    fn a_refused_connection_reads_as_a_sentence() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = agent(Duration::from_secs(2), Redirects::Refuse)
            .get(&format!("http://127.0.0.1:{port}/"))
            .call()
            .unwrap_err();
        let ureq::Error::Transport(t) = e else {
            panic!("not a transport error")
        };
        let text = transport_text(&t);
        assert!(text.contains("Connection refused"), "{text}");
        assert!(!text.contains("127.0.0.1"), "{text}");
    }
}
