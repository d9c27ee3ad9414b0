//! A version moving between stages: model, version, stage before and after, and the manifest's
//! path. The one type `check`'s transitions, their reports and the history's events share.

use serde::{Serialize, Serializer};

/// One version's stage change (`from`/`to` `None`: registered / deleted, or unparsable there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageMove {
    pub model: String,
    pub version: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Repository-relative path of the manifest (head side, or the old side when deleted).
    pub path: String,
}

/// Serialize a flattened [`StageMove`] with its path under `file`: `check`'s JSON contract
/// (docs/cli.md) names the manifest `file`, the history's names it `path`.
pub fn path_as_file<S: Serializer>(m: &StageMove, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct AsFile<'a> {
        model: &'a str,
        version: &'a str,
        from: &'a Option<String>,
        to: &'a Option<String>,
        file: &'a str,
    }
    AsFile {
        model: &m.model,
        version: &m.version,
        from: &m.from,
        to: &m.to,
        file: &m.path,
    }
    .serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Report {
        #[serde(flatten, serialize_with = "path_as_file")]
        moved: StageMove,
        rollback: bool,
    }

    #[derive(Serialize)]
    struct Event {
        #[serde(flatten)]
        moved: StageMove,
    }

    #[test]
    fn a_move_serializes_its_path_as_each_contract_names_it() {
        let moved = StageMove {
            model: "m".into(),
            version: "2".into(),
            from: Some("staging".into()),
            to: None,
            path: "models/m/versions/2.yaml".into(),
        };
        let report = serde_json::to_value(Report {
            moved: moved.clone(),
            rollback: false,
        })
        .unwrap();
        assert_eq!(
            report,
            serde_json::json!({"model": "m", "version": "2", "from": "staging", "to": null,
                "file": "models/m/versions/2.yaml", "rollback": false})
        );
        let event = serde_json::to_value(Event { moved }).unwrap();
        assert_eq!(event["path"], "models/m/versions/2.yaml");
        assert!(event.get("file").is_none());
    }
}
