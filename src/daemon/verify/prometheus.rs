//! The Prometheus provider: `GET <address>/api/v1/query?query=…` (the HTTP API), one number
//! from a one-series vector or a scalar; an empty result is the error "no data".

use super::ProviderError;
use crate::http_client::{self, Redirects};
use std::time::Duration;

/// A Prometheus HTTP API at `address`.
pub struct Prometheus {
    base: String,
    agent: ureq::Agent,
}

impl Prometheus {
    pub fn new(address: &str, timeout: Duration) -> Self {
        let agent = http_client::agent(timeout, Redirects::Refuse);
        Prometheus {
            base: address.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    /// The value of an instant query.
    pub fn query(&self, query: &str) -> Result<f64, ProviderError> {
        let url = format!("{}/api/v1/query", self.base);
        let resp = self.agent.get(&url).query("query", query).call();
        let body = match resp {
            Ok(r) => r.into_string(),
            // Prometheus answers 400/422 with a JSON error body worth quoting.
            Err(ureq::Error::Status(_, r)) => r.into_string(),
            Err(ureq::Error::Transport(t)) => {
                return Err(ProviderError::Unreachable(format!(
                    "{}: {}",
                    self.base,
                    http_client::transport_text(&t)
                )))
            }
        }
        .map_err(|e| ProviderError::Unreachable(format!("{}: {e}", self.base)))?;
        parse_answer(&body)
    }
}

/// One number out of an API answer (pure).
pub fn parse_answer(body: &str) -> Result<f64, ProviderError> {
    let v: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| ProviderError::Invalid(format!("not a Prometheus API answer: {e}")))?;
    if v["status"] != "success" {
        let why = v["error"].as_str().unwrap_or("status is not success");
        return Err(ProviderError::Invalid(format!("query refused: {why}")));
    }
    let data = &v["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => {
            let series = data["result"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            match series {
                [] => return Err(ProviderError::NoData),
                [one] => &one["value"],
                many => {
                    return Err(ProviderError::Invalid(format!(
                        "the query returned {} series; aggregate it to one (sum(...), max(...))",
                        many.len()
                    )))
                }
            }
        }
        other => {
            return Err(ProviderError::Invalid(format!(
                "result type {} is not a vector or scalar",
                other.unwrap_or("(none)")
            )))
        }
    };
    let text = sample[1]
        .as_str()
        .ok_or_else(|| ProviderError::Invalid("a sample without a value".into()))?;
    number(text)
}

/// A sample's text as a finite number; NaN (0/0, a rate without traffic) is "no data".
pub fn number(text: &str) -> Result<f64, ProviderError> {
    let x: f64 = text
        .trim()
        .parse()
        .map_err(|_| ProviderError::Invalid(format!("`{}` is not a number", text.trim())))?;
    if x.is_nan() {
        return Err(ProviderError::NoData);
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_address_is_named_once_without_the_query() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(); // bound, then dropped: nothing listens there
        let p = Prometheus::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(1));
        let e = p.query("sum(rate(x[5m]))").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("no provider reachable: http://127.0.0.1:{port}: ")),
            "{e}"
        );
        assert!(!e.contains("/api/v1/query") && !e.contains("rate"), "{e}");
    }

    #[test]
    fn reads_a_vector_and_a_scalar() {
        let v = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"0.25"]}]}}"#;
        assert_eq!(parse_answer(v).unwrap(), 0.25);
        let s = r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"3"]}}"#;
        assert_eq!(parse_answer(s).unwrap(), 3.0);
    }

    #[test]
    fn empty_nan_many_and_errors() {
        let e = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(matches!(parse_answer(e), Err(ProviderError::NoData)));
        assert_eq!(ProviderError::NoData.to_string(), "no data");
        let nan = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
        assert!(matches!(parse_answer(nan), Err(ProviderError::NoData)));
        let two = r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#;
        assert!(parse_answer(two)
            .unwrap_err()
            .to_string()
            .contains("2 series"));
        let bad = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        assert!(parse_answer(bad)
            .unwrap_err()
            .to_string()
            .contains("parse error"));
        assert!(parse_answer("<html>").is_err());
        assert_eq!(parse_answer(r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"+Inf"]}]}}"#).unwrap(), f64::INFINITY);
    }

    #[test]
    fn an_unreachable_server_is_reported_as_such() {
        // A port nobody listens on: bind, take the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = Prometheus::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(1));
        let e = p.query("up").unwrap_err();
        assert!(matches!(e, ProviderError::Unreachable(_)), "{e}");
        assert!(e.to_string().starts_with("no provider reachable"), "{e}");
    }
}
