//! `https://` and `http://` artifacts through ureq: a blocking GET whose URL is used exactly as
//! written (presigned query strings, redirects), bounded by a connect and a per-read timeout.

use crate::http_client::{self, Redirects};
use std::io::Read;
use std::time::Duration;

/// An HTTP(S) response body and the size it announced (`Content-Length`), if any.
pub struct HttpObject {
    pub size: Option<u64>,
    pub reader: Box<dyn Read + Send>,
}

/// GET `uri`. `timeout` bounds connecting and each wait for data, not the whole transfer:
/// a large artifact takes as long as it takes, a stalled one fails.
pub fn open(uri: &str, timeout: Duration) -> Result<HttpObject, String> {
    let agent = http_client::streaming_agent(timeout, Redirects::FollowWithoutCredentials);
    let resp = agent.get(uri).call().map_err(|e| match e {
        // The status and the URL; never the body (a server may echo anything there).
        ureq::Error::Status(code, r) => format!("HTTP {code} {}", r.status_text()),
        other => other.to_string(),
    })?;
    let size = resp
        .header("content-length")
        .and_then(|l| l.trim().parse::<u64>().ok());
    Ok(HttpObject {
        size,
        reader: Box::new(resp.into_reader()),
    })
}
