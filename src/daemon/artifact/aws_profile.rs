//! AWS shared profiles: `~/.aws/credentials` and `~/.aws/config` (or `AWS_SHARED_CREDENTIALS_FILE`,
//! `AWS_CONFIG_FILE`), profile `AWS_PROFILE` or `default`, as settings beneath the environment's.

use std::collections::HashMap;
use std::path::PathBuf;

/// The `[name]` sections of an INI file: section -> key -> value (keys lower-cased).
pub fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut section: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(name.clone()).or_default();
            section = Some(name);
            continue;
        }
        let (Some(s), Some((k, v))) = (&section, line.split_once('=')) else {
            continue;
        };
        out.entry(s.clone())
            .or_default()
            .insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    out
}

/// The variables profile `profile` of the two files' texts sets, as `AWS_*` names: keys and
/// session token from the credentials file, region and endpoint from the config file (whose
/// sections are `[profile NAME]`, and `[default]`).
pub fn profile_vars(credentials: &str, config: &str, profile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let creds = parse_ini(credentials);
    if let Some(s) = creds.get(profile) {
        for (key, var) in [
            ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
            ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
            ("aws_session_token", "AWS_SESSION_TOKEN"),
        ] {
            if let Some(v) = s.get(key) {
                out.push((var.to_owned(), v.clone()));
            }
        }
    }
    let conf = parse_ini(config);
    let section = if profile == "default" {
        conf.get("default").or_else(|| conf.get("profile default"))
    } else {
        conf.get(&format!("profile {profile}"))
    };
    if let Some(s) = section {
        for (key, var) in [
            ("region", "AWS_REGION"),
            ("endpoint_url", "AWS_ENDPOINT_URL"),
        ] {
            if let Some(v) = s.get(key) {
                out.push((var.to_owned(), v.clone()));
            }
        }
    }
    out
}

/// `env` with the shared profile's settings added beneath it (a variable set in `env` wins),
/// read from the files `env` (or `HOME`) names. Missing files add nothing.
pub fn with_profile(env: &[(String, String)]) -> Vec<(String, String)> {
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let home = get("HOME").map(PathBuf::from);
    let file = |var: &str, name: &str| -> String {
        let path = get(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)));
        path.and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    let profile = get("AWS_PROFILE")
        .or_else(|| get("AWS_DEFAULT_PROFILE"))
        .unwrap_or_else(|| "default".into());
    let mut out = env.to_vec();
    let from_profile = profile_vars(
        &file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        &file("AWS_CONFIG_FILE", "config"),
        &profile,
    );
    // Keys come as a pair: a key id in the environment keeps the profile's secret out.
    let env_has_keys = get("AWS_ACCESS_KEY_ID").is_some();
    for (k, v) in from_profile {
        let is_key = k.starts_with("AWS_ACCESS_KEY_ID")
            || k == "AWS_SECRET_ACCESS_KEY"
            || k == "AWS_SESSION_TOKEN";
        if get(&k).is_none() && !(is_key && env_has_keys) {
            out.push((k, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDENTIALS: &str = "# comment
[default]
aws_access_key_id = AKIDEFAULT
aws_secret_access_key = secret-default

[ci]
aws_access_key_id=AKICI
aws_secret_access_key=secret-ci
aws_session_token = token-ci
";
    const CONFIG: &str = "[default]
region = eu-west-1
[profile ci]
region = us-east-2
endpoint_url = http://127.0.0.1:9000
";

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn profiles_give_keys_region_and_endpoint() {
        assert_eq!(
            profile_vars(CREDENTIALS, CONFIG, "default"),
            vars(&[
                ("AWS_ACCESS_KEY_ID", "AKIDEFAULT"),
                ("AWS_SECRET_ACCESS_KEY", "secret-default"),
                ("AWS_REGION", "eu-west-1"),
            ])
        );
        assert_eq!(
            profile_vars(CREDENTIALS, CONFIG, "ci"),
            vars(&[
                ("AWS_ACCESS_KEY_ID", "AKICI"),
                ("AWS_SECRET_ACCESS_KEY", "secret-ci"),
                ("AWS_SESSION_TOKEN", "token-ci"),
                ("AWS_REGION", "us-east-2"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ])
        );
        assert!(profile_vars(CREDENTIALS, CONFIG, "nope").is_empty());
    }

    #[test]
    fn the_environment_wins_over_the_profile() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join(".aws")).unwrap();
        std::fs::write(d.path().join(".aws/credentials"), CREDENTIALS).unwrap();
        std::fs::write(d.path().join(".aws/config"), CONFIG).unwrap();
        let home = d.path().to_str().unwrap();
        let env = vars(&[
            ("HOME", home),
            ("AWS_PROFILE", "ci"),
            ("AWS_REGION", "ap-south-1"),
        ]);
        let got = with_profile(&env);
        let get = |k: &str| got.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("AWS_ACCESS_KEY_ID"), Some("AKICI"));
        assert_eq!(get("AWS_REGION"), Some("ap-south-1"));
        assert_eq!(get("AWS_ENDPOINT_URL"), Some("http://127.0.0.1:9000"));
        // Keys in the environment: none of the profile's are mixed in.
        let env = vars(&[("HOME", home), ("AWS_ACCESS_KEY_ID", "AKIENV")]);
        let got = with_profile(&env);
        let keys: Vec<&str> = got
            .iter()
            .filter(|(k, _)| k.starts_with("AWS_SECRET") || k.starts_with("AWS_ACCESS"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(keys, vec!["AKIENV"]);
        // No files: nothing added.
        let env = vars(&[("HOME", "/nonexistent")]);
        assert_eq!(with_profile(&env), env);
    }
}
