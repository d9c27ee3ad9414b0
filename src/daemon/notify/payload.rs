//! What each sink is sent for one event (pure): a Slack message, a Teams Adaptive Card, the
//! generic webhook's JSON, a GitHub commit status — all from one [`Notice`].

use crate::daemon::events::{Event, EventKind, Severity};
use serde_json::{json, Value};

/// An event with what a person needs to act on it.
#[derive(Debug, Clone)]
pub struct Notice {
    pub event: Event,
    /// The dashboard page of the model (or the dashboard), when the daemon knows its URL.
    pub link: Option<String>,
    /// A command that resolves it, when there is one (`baton approve …`).
    pub hint: Option<String>,
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

impl Notice {
    /// `blocked · fraud-detector@4 · production`.
    pub fn title(&self) -> String {
        let e = &self.event;
        let mut t = e.kind.as_str().to_owned();
        if let Some(m) = &e.model {
            t.push_str(" · ");
            t.push_str(m);
            if let Some(v) = &e.version {
                t.push('@');
                t.push_str(v);
            }
        }
        if let Some(env) = &e.environment {
            t.push_str(" · ");
            t.push_str(env);
        }
        t
    }

    /// `commit 1a2b3c4d5e6f by Alice <a@x>: Promote fraud-detector 4`.
    pub fn commit_line(&self) -> Option<String> {
        let e = &self.event;
        let c = e.commit.as_deref()?;
        let mut s = format!("commit {}", short(c));
        if let Some(a) = &e.author {
            s.push_str(" by ");
            s.push_str(a);
        }
        if let Some(sub) = &e.subject {
            s.push_str(": ");
            s.push_str(sub);
        }
        Some(s)
    }

    /// The message as plain text, one fact per line.
    pub fn text(&self) -> String {
        let mut lines = vec![format!("{}: {}", self.title(), self.event.message)];
        lines.extend(self.event.reasons.iter().map(|r| format!("• {r}")));
        lines.extend(self.commit_line());
        if let Some(h) = &self.hint {
            lines.push(format!("→ {h}"));
        }
        if let Some(l) = &self.link {
            lines.push(l.clone());
        }
        lines.join("\n")
    }
}

/// Slack incoming-webhook body: `text` (notifications, fallback) and Block Kit blocks.
pub fn slack(n: &Notice) -> Value {
    let icon = match n.event.kind.severity() {
        Severity::Warning => ":warning:",
        Severity::Normal => ":white_check_mark:",
    };
    let mut body = format!(
        "{icon} *{}*\n{}",
        esc_slack(&n.title()),
        esc_slack(&n.event.message)
    );
    for r in &n.event.reasons {
        body.push_str("\n• ");
        body.push_str(&esc_slack(r));
    }
    if let Some(h) = &n.hint {
        body.push_str(&format!("\n→ `{}`", esc_slack(h)));
    }
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": body}})];
    let mut context: Vec<Value> = Vec::new();
    if let Some(c) = n.commit_line() {
        context.push(json!({"type": "mrkdwn", "text": esc_slack(&c)}));
    }
    if let Some(l) = &n.link {
        context.push(json!({"type": "mrkdwn", "text": format!("<{l}|Open in baton>")}));
    }
    if !context.is_empty() {
        blocks.push(json!({"type": "context", "elements": context}));
    }
    json!({"text": n.text(), "blocks": blocks})
}

/// Slack's three control characters in mrkdwn.
fn esc_slack(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Microsoft Teams Workflows webhook body: a message with one Adaptive Card.
pub fn msteams(n: &Notice) -> Value {
    let e = &n.event;
    let color = match e.kind.severity() {
        Severity::Warning => "Attention",
        Severity::Normal => "Good",
    };
    let mut facts: Vec<Value> = Vec::new();
    let mut fact = |t: &str, v: &Option<String>| {
        if let Some(v) = v {
            facts.push(json!({"title": t, "value": v}));
        }
    };
    fact("Model", &e.model);
    fact("Version", &e.version);
    fact("Environment", &e.environment);
    fact("Commit", &n.commit_line());
    let mut body = vec![
        json!({"type": "TextBlock", "size": "Medium", "weight": "Bolder", "color": color,
               "text": n.title(), "wrap": true}),
        json!({"type": "TextBlock", "text": e.message, "wrap": true}),
    ];
    for r in &e.reasons {
        body.push(
            json!({"type": "TextBlock", "text": format!("• {r}"), "wrap": true, "spacing": "None"}),
        );
    }
    if !facts.is_empty() {
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    if let Some(h) = &n.hint {
        body.push(json!({"type": "TextBlock", "text": format!("→ {h}"), "wrap": true, "fontType": "Monospace"}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some(l) = &n.link {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open in baton", "url": l}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// The generic webhook's body: the event's fields plus severity, link and hint.
pub fn webhook(n: &Notice) -> Value {
    let mut v = serde_json::to_value(&n.event).unwrap_or_else(|_| json!({}));
    v["severity"] = json!(match n.event.kind.severity() {
        Severity::Warning => "warning",
        Severity::Normal => "normal",
    });
    if let Some(l) = &n.link {
        v["link"] = json!(l);
    }
    if let Some(h) = &n.hint {
        v["hint"] = json!(h);
    }
    v
}

/// The GitHub commit status an event sets on its commit, context `baton/<environment>`:
/// `None` for kinds that say nothing about a commit's deployment.
pub fn github_state(kind: EventKind) -> Option<&'static str> {
    match kind {
        EventKind::Head | EventKind::Waiting => Some("pending"),
        EventKind::Deployed | EventKind::Repaired => Some("success"),
        EventKind::Blocked
        | EventKind::Degraded
        | EventKind::RolledBack
        | EventKind::VerificationFailed
        | EventKind::Failed
        | EventKind::BadHead => Some("failure"),
        _ => None,
    }
}

/// Body of `POST /repos/{owner}/{repo}/statuses/{sha}`; the description is cut to GitHub's
/// 140 characters on a character boundary.
pub fn github_status(n: &Notice, state: &str, environment: &str) -> Value {
    let mut desc = format!("{}: {}", n.event.kind.as_str(), n.event.message);
    if desc.chars().count() > 140 {
        desc = desc.chars().take(139).collect::<String>() + "…";
    }
    let mut v = json!({
        "state": state,
        "description": desc,
        "context": format!("baton/{environment}"),
    });
    if let Some(l) = &n.link {
        v["target_url"] = json!(l);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> Notice {
        Notice {
            event: Event::new(EventKind::Blocked, "fraud-detector blocked by 1a2b3c")
                .model("fraud-detector")
                .version("4")
                .commit("1a2b3c4d5e6f7a8b9c0d")
                .author(Some("Mallory <m@x>"))
                .subject(Some("push <straight> to prod"))
                .reasons(&["approvals: 0 of 2 from group:ml-leads".into()]),
            link: Some("http://127.0.0.1:8750/models/fraud-detector".into()),
            hint: Some("baton approve fraud-detector 4 --stage production".into()),
        }
    }

    #[test]
    fn slack_message_says_what_who_why_and_what_to_do() {
        let v = slack(&notice());
        let text = v["text"].as_str().unwrap();
        assert!(text.starts_with("blocked · fraud-detector@4: fraud-detector blocked"));
        assert!(text.contains("• approvals: 0 of 2 from group:ml-leads"));
        assert!(text.contains("commit 1a2b3c4d5e6f by Mallory <m@x>"));
        assert!(text.contains("→ baton approve fraud-detector 4 --stage production"));
        let section = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(section.contains(":warning: *blocked · fraud-detector@4*"));
        let ctx = v["blocks"][1]["elements"][0]["text"].as_str().unwrap();
        assert!(ctx.contains("push &lt;straight&gt; to prod"), "{ctx}");
    }

    #[test]
    fn teams_card_is_an_adaptive_card_with_a_link() {
        let v = msteams(&notice());
        let a = &v["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        assert_eq!(a["content"]["body"][0]["color"], "Attention");
        assert_eq!(a["content"]["actions"][0]["type"], "Action.OpenUrl");
    }

    #[test]
    fn github_status_is_cut_to_140_characters() {
        let mut n = notice();
        n.event.message = "é".repeat(300);
        let v = github_status(&n, "failure", "production");
        assert_eq!(v["context"], "baton/production");
        assert_eq!(v["description"].as_str().unwrap().chars().count(), 140);
        assert_eq!(github_state(EventKind::Deployed), Some("success"));
        assert_eq!(github_state(EventKind::Started), None);
    }

    #[test]
    fn webhook_body_carries_the_event_fields() {
        let v = webhook(&notice());
        assert_eq!(v["kind"], "blocked");
        assert_eq!(v["severity"], "warning");
        assert_eq!(v["author"], "Mallory <m@x>");
        assert_eq!(v["reasons"][0], "approvals: 0 of 2 from group:ml-leads");
        assert_eq!(
            v["hint"],
            "baton approve fraud-detector 4 --stage production"
        );
    }
}
