//! `baton schema` (docs/cli.md#schema): the committed docs/schema/ files are what it prints,
//! they accept every manifest of the bundled registries and refuse what the parser refuses.
//!
//! `BATON_BLESS=1 cargo test --test it schema::` rewrites docs/schema/ from `baton schema`.

use crate::common;

use common::{code, stderr, stdout, TestRepo};
use serde_json::Value;
use std::path::{Path, PathBuf};

const KINDS: [(&str, &str); 3] = [
    ("policy", "baton.schema.json"),
    ("model", "model.schema.json"),
    ("version", "version.schema.json"),
];

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `baton schema ARGS` run outside any repository; its stdout.
fn schema(args: &[&str]) -> String {
    let mut full = vec!["schema"];
    full.extend_from_slice(args);
    let o = common::baton(&full, repo_root());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    stdout(&o)
}

fn validator(kind: &str) -> jsonschema::Validator {
    let v: Value = serde_json::from_str(&schema(&[kind])).unwrap();
    jsonschema::draft7::new(&v).unwrap_or_else(|e| panic!("{kind}: not a schema: {e}"))
}

/// Every manifest under `dir`, with the kind of file it is.
fn manifests(dir: &Path, out: &mut Vec<(PathBuf, &'static str)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            manifests(&p, out);
            continue;
        }
        let name = p.file_name().unwrap().to_str().unwrap();
        let in_versions = p.parent().unwrap().ends_with("versions");
        let kind = match name {
            "baton.yaml" => "policy",
            "model.yaml" => "model",
            n if n.ends_with(".yaml") && in_versions => "version",
            _ => continue,
        };
        out.push((p, kind));
    }
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

#[test]
fn docs_schema_holds_what_baton_schema_prints() {
    let bless = std::env::var_os("BATON_BLESS").is_some();
    let all: Value = serde_json::from_str(&schema(&[])).unwrap();
    assert_eq!(all.as_object().unwrap().len(), KINDS.len());
    for (kind, file) in KINDS {
        let printed = schema(&[kind]);
        assert_eq!(
            serde_json::from_str::<Value>(&printed).unwrap(),
            all[kind],
            "`baton schema` and `baton schema {kind}` differ"
        );
        let p = repo_root().join("docs/schema").join(file);
        if bless {
            std::fs::write(&p, &printed).unwrap();
        }
        let committed = std::fs::read_to_string(&p)
            .unwrap_or_else(|_| panic!("{} is missing (BATON_BLESS=1 writes it)", p.display()));
        assert!(
            committed == printed,
            "{} differs from `baton schema {kind}` (BATON_BLESS=1 rewrites it)",
            p.display()
        );
    }
}

#[test]
fn out_writes_the_three_files_and_bad_kinds_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("schemas");
    let o = common::baton(&["schema", "--out", out.to_str().unwrap()], dir.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for (kind, file) in KINDS {
        let written = std::fs::read_to_string(out.join(file)).unwrap();
        assert_eq!(written, schema(&[kind]), "{file}");
        assert!(stdout(&o).contains(file), "{}", stdout(&o));
    }
    let o = common::baton(&["schema", "manifest"], dir.path());
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let o = common::baton(&["schema", "--format", "markdown"], dir.path());
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

#[test]
fn every_bundled_manifest_validates_and_points_at_its_schema() {
    let mut files = Vec::new();
    manifests(&repo_root().join("registry-example"), &mut files);
    manifests(&repo_root().join("examples/kserve"), &mut files);
    assert!(files.len() >= 20, "{files:?}");
    let validators: Vec<(&str, jsonschema::Validator)> =
        KINDS.iter().map(|(k, _)| (*k, validator(k))).collect();
    for (path, kind) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let v = &validators.iter().find(|(k, _)| k == kind).unwrap().1;
        let errors: Vec<String> = v.iter_errors(&yaml(&text)).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        // The first line is the modeline, and it resolves to the committed schema.
        let first = text.lines().next().unwrap();
        let target = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{}: first line {first:?}", path.display()));
        let file = KINDS.iter().find(|(k, _)| k == kind).unwrap().1;
        assert!(target.ends_with(file), "{}: {target}", path.display());
        let resolved = path.parent().unwrap().join(target).canonicalize().unwrap();
        assert_eq!(
            resolved,
            repo_root()
                .join("docs/schema")
                .join(file)
                .canonicalize()
                .unwrap()
        );
    }
}

/// The schema and the parser both refuse `text` (a `kind` file).
fn both_refuse(kind: &str, text: &str) {
    let v = validator(kind);
    assert!(!v.is_valid(&yaml(text)), "{kind} schema accepted:\n{text}");
    let parsed = match kind {
        "policy" => baton::manifest::parse_policy(text.as_bytes()).is_ok(),
        "model" => baton::manifest::parse_model(text.as_bytes()).is_ok(),
        _ => baton::manifest::parse_version(text.as_bytes()).is_ok(),
    };
    assert!(!parsed, "the parser accepted:\n{text}");
}

#[test]
fn unknown_fields_and_wrong_types_are_refused_like_the_parser_does() {
    let ex = repo_root().join("registry-example");
    let version =
        std::fs::read_to_string(ex.join("models/fraud-detector/versions/4.yaml")).unwrap();
    let model = std::fs::read_to_string(ex.join("models/fraud-detector/model.yaml")).unwrap();
    let policy = std::fs::read_to_string(ex.join("baton.yaml")).unwrap();
    // Unknown fields, top level and nested.
    both_refuse("version", &format!("{version}surprise: 1\n"));
    both_refuse("version", &version.replace("  sha256:", "  sha265:"));
    both_refuse("model", &format!("{model}owner: someone\n"));
    both_refuse(
        "policy",
        &policy.replace("    canary: true", "    canery: true"),
    );
    // Wrong types.
    both_refuse("version", &version.replace("stage: ", "stage: [x]\nx: "));
    both_refuse("version", &format!("{version}traffic: half\n"));
    both_refuse("policy", &policy.replace("version: 1", "version: one"));
    both_refuse("policy", &policy.replace("version: 1", "version: 2"));
    both_refuse(
        "policy",
        "version: 1\nstages:\n  - name: a\n    gates:\n      - soak: {stage: a, for: soon}\n",
    );
    both_refuse(
        "policy",
        "version: 1\nstages:\n  - name: a\n    gates:\n      - window: {days: [someday]}\n",
    );
    both_refuse(
        "policy",
        "version: 1\nstages:\n  - name: a\n    gates:\n      - nap: {for: 1h}\n",
    );
    // A decimal version label must be quoted.
    both_refuse(
        "version",
        &version.replace("version: \"4\"", "version: 4.5"),
    );
}

#[test]
fn written_by_hand_forms_the_parser_takes_are_accepted() {
    let v = validator("policy");
    let p = "version: 1\nstages:\n  - name: a\n    gates:\n      - soak: {stage: a, for: 1d 12h}\n      - window: {days: [Mon, friday], from: '9:00', to: '17:30', tz: Europe/Berlin}\n      - evidence: bias-review\n";
    assert!(baton::manifest::parse_policy(p.as_bytes()).is_ok());
    let errors: Vec<String> = v.iter_errors(&yaml(p)).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn register_follows_the_registry_modeline() {
    let r = TestRepo::with_example();
    std::fs::write(r.path().join("m.onnx"), b"weights").unwrap();
    let o = r.baton(&["register", "new-model", "--artifact", "m.onnx"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let version = r.read("models/new-model/versions/1.yaml");
    assert!(
        version.starts_with(
            "# yaml-language-server: $schema=../../../../docs/schema/version.schema.json\nmodel: new-model\n"
        ),
        "{version}"
    );
    let model = r.read("models/new-model/model.yaml");
    assert!(
        model.starts_with(
            "# yaml-language-server: $schema=../../../docs/schema/model.schema.json\n"
        ),
        "{model}"
    );
    r.commit_all("register new-model 1");
    let o = r.baton(&["validate"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));

    // A registry whose baton.yaml has no modeline gets none.
    let r = TestRepo::with_example();
    let policy = r.read("baton.yaml");
    r.write("baton.yaml", policy.split_once('\n').unwrap().1);
    r.commit_all("no modeline");
    std::fs::write(r.path().join("m.onnx"), b"weights").unwrap();
    let o = r.baton(&["register", "fraud-detector", "--artifact", "m.onnx"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(r
        .read("models/fraud-detector/versions/6.yaml")
        .starts_with("model: "));
}

#[test]
fn init_writes_the_schemas_and_points_every_manifest_at_them() {
    let home = tempfile::tempdir().unwrap();
    let key = common::SshKey::generate(home.path(), "id_ed25519", "me@acme.com");
    let dir = home.path().join("registry");
    let public = format!("{}.pub", key.private.display());
    let o = common::baton(
        &[
            "init",
            dir.to_str().unwrap(),
            "--key",
            &public,
            "--email",
            "me@acme.com",
        ],
        home.path(),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for (rel, kind) in [
        ("baton.yaml", "policy"),
        ("models/example/model.yaml", "model"),
        ("models/example/versions/1.yaml", "version"),
    ] {
        let path = dir.join(rel);
        let text = std::fs::read_to_string(&path).unwrap();
        let target = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# yaml-language-server: $schema="))
            .unwrap_or_else(|| panic!("{rel}: no modeline first:\n{text}"));
        let schema_file = path.parent().unwrap().join(target).canonicalize().unwrap();
        let file = KINDS.iter().find(|(k, _)| *k == kind).unwrap().1;
        let expected = dir.join(".baton/schema").join(file);
        assert_eq!(
            schema_file,
            expected.canonicalize().unwrap(),
            "{rel}: {target}"
        );
        let written = std::fs::read_to_string(&schema_file)
            .unwrap_or_else(|e| panic!("{rel}: {target}: {e}"));
        assert_eq!(written, schema(&[kind]), "{rel}: {target}");
        let v = validator(kind);
        let errors: Vec<String> = v.iter_errors(&yaml(&text)).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{rel}: {errors:?}");
    }
}
