//! HTML of the dashboard's pages from their view-models: askama templates compiled into the
//! binary (`templates/`, autoescaped), and the stylesheet and script it serves.

use super::view::{EventsPage, ModelPage, PipelinePage, SYNC_WORDS};
use askama::Template;
use std::sync::OnceLock;

/// The stylesheet and the script, embedded in the binary.
pub const CSS: &str = include_str!("static/dashboard.css");
pub const JS: &str = include_str!("static/dashboard.js");

/// Versioned URLs of the static files (a changed file gets a new URL, so they can be cached).
pub struct Assets {
    pub css: String,
    pub js: String,
    /// Short content digests (ETags).
    pub css_tag: String,
    pub js_tag: String,
}

fn digest(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(s.as_bytes())[..6])
}

pub fn assets() -> &'static Assets {
    static A: OnceLock<Assets> = OnceLock::new();
    A.get_or_init(|| {
        let (css_tag, js_tag) = (digest(CSS), digest(JS));
        Assets {
            css: format!("/static/dashboard.css?v={css_tag}"),
            js: format!("/static/dashboard.js?v={js_tag}"),
            css_tag,
            js_tag,
        }
    })
}

#[derive(Template)]
#[template(path = "pipeline.html")]
struct PipelineHtml<'a> {
    a: &'a Assets,
    nav: &'a str,
    p: &'a PipelinePage,
    sync_words: &'a [&'a str],
}

#[derive(Template)]
#[template(path = "pipeline_rows.html")]
struct PipelineRowsHtml<'a> {
    p: &'a PipelinePage,
}

#[derive(Template)]
#[template(path = "model.html")]
struct ModelHtml<'a> {
    a: &'a Assets,
    nav: &'a str,
    m: &'a ModelPage,
}

#[derive(Template)]
#[template(path = "model_runs.html")]
struct ModelRunsHtml<'a> {
    m: &'a ModelPage,
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsHtml<'a> {
    a: &'a Assets,
    nav: &'a str,
    e: &'a EventsPage,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessageHtml<'a> {
    a: &'a Assets,
    nav: &'a str,
    title: &'a str,
    lines: &'a [String],
}

pub fn pipeline(p: &PipelinePage) -> Result<String, askama::Error> {
    PipelineHtml {
        a: assets(),
        nav: "pipeline",
        p,
        sync_words: &SYNC_WORDS,
    }
    .render()
}

/// The part of the pipeline page that live updates replace.
pub fn pipeline_rows(p: &PipelinePage) -> Result<String, askama::Error> {
    PipelineRowsHtml { p }.render()
}

pub fn model(m: &ModelPage) -> Result<String, askama::Error> {
    ModelHtml {
        a: assets(),
        nav: "model",
        m,
    }
    .render()
}

/// The part of the model page that live updates replace (what each environment runs).
pub fn model_runs(m: &ModelPage) -> Result<String, askama::Error> {
    ModelRunsHtml { m }.render()
}

pub fn events(e: &EventsPage) -> Result<String, askama::Error> {
    EventsHtml {
        a: assets(),
        nav: "events",
        e,
    }
    .render()
}

/// A page that only says something (not found, an error).
pub fn message(title: &str, lines: &[String]) -> Result<String, askama::Error> {
    MessageHtml {
        a: assets(),
        nav: "",
        title,
        lines,
    }
    .render()
}
