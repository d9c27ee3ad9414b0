//! What the daemon starts without, and why: one log line per optional feature that is off
//! or open (docs/daemon.md#logs), decided from the configuration alone.

use super::run::ServeConfig;

/// How loudly a start-up line is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Off by choice; the daemon works without it.
    Info,
    /// Open to anyone who can reach the address.
    Warn,
}

/// One line per feature that is off (or unauthenticated), with what turns it on. `loopback`:
/// whether `--listen` is a loopback address.
pub fn report(cfg: &ServeConfig, loopback: bool) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    if cfg.webhook_secret.is_none() {
        out.push((
            Level::Info,
            "push webhook off: BATON_WEBHOOK_SECRET is not set, so POST /hooks/git answers 401 \
             (the branch is still watched and polled every --interval)"
                .to_owned(),
        ));
    }
    if cfg.api_token.is_none() && !loopback {
        out.push((
            Level::Warn,
            format!(
                "--insecure-listen: serving {} WITHOUT AUTHENTICATION on a non-loopback address; \
                 anyone who can reach it reads status and events. Set BATON_API_TOKEN to require a token.",
                cfg.listen
            ),
        ));
    }
    if cfg.alertmanager_token.is_none() && cfg.api_token.is_none() && !loopback {
        out.push((
            Level::Warn,
            "POST /hooks/alertmanager takes alerts without a token: set BATON_ALERTMANAGER_TOKEN \
             (or BATON_API_TOKEN)"
                .to_owned(),
        ));
    }
    if let Some(g) = &cfg.controller.github {
        if g.token.is_none() {
            out.push((
                Level::Info,
                format!(
                    "GitHub reviews of {} are read without a token: GITHUB_TOKEN is not set \
                     (private repositories and rate limits need one)",
                    g.repo
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::ControllerConfig;

    fn cfg(listen: &str) -> ServeConfig {
        ServeConfig {
            controller: ControllerConfig {
                repo: "r".into(),
                branch: "main".into(),
                path: None,
                interval: std::time::Duration::from_secs(30),
                trust: None,
                fetch_timeout: std::time::Duration::from_secs(60),
                github: None,
                artifacts: crate::daemon::artifact::ArtifactLimits::new(1 << 20, &[]).unwrap(),
                public_url: None,
                rollback: crate::daemon::verify::rollback::RollbackConfig {
                    signing_key: None,
                    url: None,
                },
            },
            url: None,
            state_dir: "s".into(),
            listen: listen.into(),
            once: false,
            webhook_secret: None,
            api_token: None,
            alertmanager_token: None,
            insecure_listen: true,
        }
    }

    #[test]
    fn each_missing_secret_is_one_line() {
        let lines = report(&cfg("127.0.0.1:8750"), true);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].1.contains("BATON_WEBHOOK_SECRET"));
        let open = report(&cfg("0.0.0.0:8750"), false);
        assert_eq!(
            open.iter().filter(|l| l.0 == Level::Warn).count(),
            2,
            "{open:?}"
        );
        let mut c = cfg("0.0.0.0:8750");
        c.webhook_secret = Some("s".into());
        c.api_token = Some("t".into());
        assert!(report(&c, false).is_empty());
    }
}
