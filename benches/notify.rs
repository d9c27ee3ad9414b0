//! Notifications through a real `baton serve` (issue 11 goals in brackets), toward webhook
//! sinks served here on loopback:
//! * `latency`: commit-to-deployed (benches/support/serve.rs's loop) without a route, and with
//!   a route of every event to a webhook whose server accepts and never answers [no
//!   measurable difference];
//! * `burst`: 1,000 models deployed in one commit (1,000 `deployed` events) toward a slow
//!   sink (answers after 50 ms) and a never-answering one: `baton_notifications_total` by
//!   result, and the daemon's peak RSS (VmHWM) against the same burst without a route
//!   [delivered or dropped, bounded memory: 256 queued per sink].
//!
//! `cargo bench --bench notify` runs both (`-- latency`, `-- burst`, plus `quick`); under
//! `cargo test` a smoke run: two latency rounds each way and a burst of 300 toward the
//! never-answering sink.

#[path = "support/serve.rs"]
mod serve;

use git2::{build::TreeUpdateBuilder, FileMode, Repository, Signature};
use serve::{manifest, percentile, sha, start_daemon};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a sink's server behaves.
#[derive(Clone, Copy, PartialEq)]
enum Sink {
    /// Reads the request and never writes a byte (the connection stays open).
    Silent,
    /// Answers 200 after this long.
    Slow(Duration),
}

/// A webhook server on loopback; returns its URL and the count of requests it answered.
fn sink_server(kind: Sink) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let answered = Arc::new(AtomicUsize::new(0));
    let a = answered.clone();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            let a = a.clone();
            std::thread::spawn(move || serve_one(s, kind, &a));
        }
    });
    (url, answered)
}

fn serve_one(s: TcpStream, kind: Sink, answered: &AtomicUsize) {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        // One request: headers, then Content-Length bytes of body.
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        match kind {
            Sink::Silent => {
                // Hold the connection until the client gives up.
                let mut sink = Vec::new();
                let _ = r.read_to_end(&mut sink);
                return;
            }
            Sink::Slow(d) => {
                std::thread::sleep(d);
                if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .is_err()
                {
                    return;
                }
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn route(url: &str, on: &str) -> String {
    format!("notifications:\n  - on: [{on}]\n    sink: {{webhook: {{url: \"{url}\"}}}}\n")
}

fn median(mut v: Vec<f64>) -> f64 {
    percentile(&mut v, 0.5)
}

/// Commit-to-deployed medians (ms): without a route, with a never-answering sink.
fn latency(rounds: usize) -> (f64, f64) {
    let bare = median(serve::latency(rounds, "", &[]));
    let (url, _) = sink_server(Sink::Silent);
    let silent = median(serve::latency(rounds, &route(&url, "\"*\""), &[]));
    (bare, silent)
}

struct Burst {
    delivered: f64,
    failed: f64,
    dropped: f64,
    hwm_mb: f64,
    deploy_s: f64,
}

/// `baton_notifications_total{sink="webhook",result=...}`.
fn notified(text: &str, result: &str) -> f64 {
    serve::sample(
        text,
        &format!("baton_notifications_total{{sink=\"webhook\",result=\"{result}\"}}"),
    )
    .unwrap_or(0.0)
}

/// 1,000 models in `development` (no environment) moved to `staging` in one commit; with
/// `sink`, every `deployed` event goes to it.
fn burst(models: usize, sink: Option<Sink>) -> Burst {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    let repo = Repository::init(&dir).unwrap();
    let sig = Signature::now("Bench", "bench@acme.com").unwrap();
    let server = sink.map(sink_server);
    let tail = server
        .as_ref()
        .map(|(u, _)| route(u, "deployed"))
        .unwrap_or_default();
    let policy = format!("version: 1\nstages:\n  - name: development\n  - name: staging\n  - name: archived\n    terminal: true\nenvironments:\n  staging:\n    stage: staging\n    target: {{kind: local, path: staging}}\n{tail}");
    let commit = |files: &[(String, Vec<u8>)], msg: &str| {
        let parent = repo
            .refname_to_id("refs/heads/main")
            .ok()
            .map(|h| repo.find_commit(h).unwrap());
        let base = match &parent {
            Some(p) => p.tree().unwrap(),
            None => repo
                .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
                .unwrap(),
        };
        let mut b = TreeUpdateBuilder::new();
        for (p, bytes) in files {
            b.upsert(p, repo.blob(bytes).unwrap(), FileMode::Blob);
        }
        let tree = repo
            .find_tree(b.create_updated(&repo, &base).unwrap())
            .unwrap();
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let c = repo.commit(None, &sig, &sig, msg, &tree, &parents).unwrap();
        repo.reference("refs/heads/main", c, true, "bench").unwrap();
        c
    };
    let version = |m: usize, stage: &str| -> Vec<(String, Vec<u8>)> {
        let name = format!("model-{m:04}");
        let bytes = format!("{name} build 1\n").into_bytes();
        let uri = format!("artifacts/{name}/1.bin");
        let man = manifest(&name, 1, stage, &uri, &sha(&bytes));
        vec![
            (uri, bytes),
            (format!("models/{name}/versions/1.yaml"), man.into_bytes()),
        ]
    };
    let mut files = vec![("baton.yaml".to_owned(), policy.into_bytes())];
    for m in 0..models {
        let name = format!("model-{m:04}");
        files.push((
            format!("models/{name}/model.yaml"),
            format!("name: {name}\ndescription: bench\nowners: [a@acme.com]\n").into_bytes(),
        ));
        files.extend(version(m, "development"));
    }
    commit(&files, "registry");
    repo.set_head("refs/heads/main").unwrap();
    let state = tmp.path().join("state");
    let (mut child, addr) = start_daemon(&dir, &state, "30s", &[]);
    let files: Vec<_> = (0..models).flat_map(|m| version(m, "staging")).collect();
    let t0 = Instant::now();
    commit(&files, "deploy every model");
    let status = |addr: &str| -> serde_json::Value {
        ureq::get(&format!("http://{addr}/api/v1/status"))
            .call()
            .ok()
            .and_then(|r| r.into_json().ok())
            .unwrap_or_default()
    };
    loop {
        let s = status(&addr);
        let ms = s["environments"][0]["models"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let deployed = |m: &serde_json::Value| {
            m["sync"] == "synced" && m["deployed"].as_array().is_some_and(|a| !a.is_empty())
        };
        if ms.len() == models && ms.iter().all(deployed) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "burst never deployed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let deploy_s = t0.elapsed().as_secs_f64();
    // A slow sink drains its queue; a silent one holds it (nothing more will happen).
    if let Some(Sink::Slow(_)) = sink {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let t = serve::metrics_text(&addr);
            let done = notified(&t, "delivered") + notified(&t, "failed") + notified(&t, "dropped");
            if done >= models as f64 || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    } else {
        std::thread::sleep(Duration::from_millis(500));
    }
    let t = serve::metrics_text(&addr);
    let hwm_mb = serve::proc_mb(child.id(), "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    if let Some((_, answered)) = &server {
        let got = answered.load(Ordering::Relaxed) as f64;
        assert!(
            got >= notified(&t, "delivered"),
            "delivered more than the sink answered"
        );
    }
    Burst {
        delivered: notified(&t, "delivered"),
        failed: notified(&t, "failed"),
        dropped: notified(&t, "dropped"),
        hwm_mb,
        deploy_s,
    }
}

fn report_latency(rounds: usize) {
    let (bare, silent) = latency(rounds);
    println!(
        "commit-to-deployed ({rounds} rounds): no route median {bare:.1} ms, route to a never-answering webhook median {silent:.1} ms, ratio {:.2}  [goal: no measurable difference]",
        silent / bare
    );
}

fn report_burst(models: usize, label: &str, sink: Option<Sink>, base: f64) {
    let b = burst(models, sink);
    println!(
        "burst of {models} deployed events, {label}: delivered {}, failed {}, dropped {} (queue 256), deployed in {:.1} s, peak RSS {:.1} MB ({:+.1} MB over no route)",
        b.delivered, b.failed, b.dropped, b.deploy_s, b.hwm_mb, b.hwm_mb - base
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let none = |m: usize| {
        let b = burst(m, None);
        println!(
            "burst of {m} deployed events, no route: deployed in {:.1} s, peak RSS {:.1} MB",
            b.deploy_s, b.hwm_mb
        );
        b.hwm_mb
    };
    // `cargo test --all-targets` runs this binary without `--bench`: a smoke run only.
    if !args.iter().any(|a| a == "--bench") {
        report_latency(2);
        let base = none(300);
        report_burst(300, "never-answering sink", Some(Sink::Silent), base);
        println!("smoke run (run `cargo bench --bench notify` to measure)");
        return;
    }
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let quick = words.contains(&"quick");
    let want = |p: &str| {
        let parts: Vec<&&str> = words.iter().filter(|w| **w != "quick").collect();
        parts.is_empty() || parts.iter().any(|w| **w == p)
    };
    if want("latency") {
        report_latency(if quick { 20 } else { 100 });
    }
    if want("burst") {
        let base = none(1000);
        let slow = Sink::Slow(Duration::from_millis(50));
        report_burst(1000, "slow sink (50 ms an answer)", Some(slow), base);
        report_burst(1000, "never-answering sink", Some(Sink::Silent), base);
    }
}
