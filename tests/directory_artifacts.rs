//! Directory artifacts end to end (docs/registry-format.md#directory-artifacts): `register`
//! of a folder, `validate` of its listing, `check` of its files, and the `local` target
//! deploying it under `current/` (with `reload`), through the `baton` binary.

use crate::common;
use crate::world;

use common::{code, stderr, stdout, TestRepo};
use serde_json::Value;
use std::path::Path;
use world::{rule, World, T0, T1};

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o))
        .unwrap_or_else(|e| panic!("not JSON ({e}): stdout={} stderr={}", stdout(o), stderr(o)))
}

/// Write the files of a model folder into the working tree under `dir`.
fn write_folder(r: &TestRepo, dir: &str, files: &[(&str, &[u8])]) {
    for (p, b) in files {
        let path = r.path().join(dir).join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b).unwrap();
    }
}

/// The expected listing digest of `files` (path, bytes), computed here independently.
fn listing(files: &[(&str, &[u8])]) -> String {
    let mut lines: Vec<(String, String)> = files
        .iter()
        .map(|(p, b)| ((*p).to_owned(), sha(b)))
        .collect();
    lines.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let text: String = lines.iter().map(|(p, s)| format!("{s}  {p}\n")).collect();
    sha(text.as_bytes())
}

fn total(files: &[(&str, &[u8])]) -> u64 {
    files.iter().map(|(_, b)| b.len() as u64).sum()
}

const MLFLOW: &[(&str, &[u8])] = &[
    ("MLmodel", b"flavors:\n  sklearn: {}\n"),
    ("model.pkl", b"pickled weights"),
    ("data/vocab.txt", b"a\nb\n"),
];

// ---------------------------------------------------------------- register + validate

#[test]
fn register_a_folder_writes_a_directory_artifact_that_validates() {
    let r = TestRepo::with_example();
    write_folder(&r, "artifacts/fraud-detector/6", MLFLOW);
    let o = r.baton(&[
        "--format",
        "json",
        "register",
        "fraud-detector",
        "--artifact",
        "artifacts/fraud-detector/6",
        "--artifact-format",
        "mlflow",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["artifact"]["uri"], "artifacts/fraud-detector/6/");
    assert_eq!(v["artifact"]["sha256"], listing(MLFLOW));
    assert_eq!(v["artifact"]["size"], total(MLFLOW));
    assert_eq!(v["artifact"]["format"], "mlflow");
    let paths: Vec<&str> = v["artifact"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["MLmodel", "data/vocab.txt", "model.pkl"]);
    let text = r.read("models/fraud-detector/versions/6.yaml");
    assert!(
        text.contains(&format!(
            "artifact:\n  uri: artifacts/fraud-detector/6/\n  sha256: {}\n  size: {}\n  format: mlflow\n  files:\n    - {{path: MLmodel, sha256: {}, size: {}}}\n",
            listing(MLFLOW),
            total(MLFLOW),
            sha(MLFLOW[0].1),
            MLFLOW[0].1.len()
        )),
        "{text}"
    );
    r.commit_all("register fraud-detector 6 (a folder)");
    let o = r.baton(&["validate"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));

    // A single file takes a format too; a folder outside the registry is a file:// URI.
    r.write("outside.bin", "bytes");
    let o = r.baton(&[
        "--format",
        "json",
        "register",
        "fraud-detector",
        "--artifact",
        "outside.bin",
        "--artifact-format",
        "onnx",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["artifact"]["format"], "onnx");
    assert_eq!(json(&o)["artifact"]["files"], Value::Null);
    r.remove("models/fraud-detector/versions/7.yaml");
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("w.bin"), b"w").unwrap();
    let o = r.baton(&[
        "--format",
        "json",
        "register",
        "fraud-detector",
        "--artifact",
        elsewhere.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let uri = json(&o)["artifact"]["uri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("file:///") && uri.ends_with('/'), "{uri}");
}

#[test]
fn register_refuses_links_and_special_files_in_a_folder() {
    let r = TestRepo::with_example();
    write_folder(&r, "artifacts/fraud-detector/6", MLFLOW);
    std::os::unix::fs::symlink(
        "../../../../etc/hostname",
        r.path().join("artifacts/fraud-detector/6/data/escape"),
    )
    .unwrap();
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "artifacts/fraud-detector/6",
    ]);
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    assert!(
        stderr(&o).contains(
            "data/escape is a symbolic link; a directory artifact holds regular files only"
        ),
        "{}",
        stderr(&o)
    );
    assert!(!r
        .path()
        .join("models/fraud-detector/versions/6.yaml")
        .exists());
    // An empty folder, and a folder URI that does not end in `/`.
    std::fs::create_dir_all(r.path().join("empty/sub")).unwrap();
    let o = r.baton(&["register", "fraud-detector", "--artifact", "empty"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("the folder holds no files"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_file(r.path().join("artifacts/fraud-detector/6/data/escape")).unwrap();
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "artifacts/fraud-detector/6",
        "--uri",
        "s3://models/fd/6",
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("must end in `/`"), "{}", stderr(&o));
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "artifacts/fraud-detector/6",
        "--artifact-format",
        "not a format",
    ]);
    assert_eq!(code(&o), 2);
}

/// A registry-example repository with fraud-detector 6 registered as a folder and committed;
/// returns the repository and the manifest's path.
fn with_folder_version() -> (TestRepo, String) {
    let r = TestRepo::with_example();
    write_folder(&r, "artifacts/fraud-detector/6", MLFLOW);
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "artifacts/fraud-detector/6",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    r.commit_all("register 6");
    (r, "models/fraud-detector/versions/6.yaml".to_owned())
}

/// `validate --format json` fails with an error in `file` containing `needle`, located at
/// the line of `key_line` (a line of the manifest, e.g. `  files:`).
fn expect_invalid_at(r: &TestRepo, file: &str, needle: &str, key_line: &str) {
    let o = r.baton(&["--format", "json", "validate"]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let v = json(&o);
    let errors = v["errors"].as_array().unwrap();
    let e = errors
        .iter()
        .find(|e| e["file"] == file && e["message"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no error containing {needle:?}: {errors:#?}"));
    let text = r.read(file);
    let want = text.lines().position(|l| l == key_line).expect("key line") + 1;
    assert_eq!(e["line"].as_u64(), Some(want as u64), "{e}");
}

#[test]
fn validate_refuses_a_wrong_listing_a_missing_file_and_unsafe_paths() {
    // The listing digest no longer matches `sha256` (a file's digest edited).
    let (r, m) = with_folder_version();
    let text = r.read(&m);
    r.edit(&m, &sha(MLFLOW[1].1), &"0".repeat(64));
    r.commit_all("edit a listed digest");
    expect_invalid_at(
        &r,
        &m,
        "but the listing of artifact.files hashes to",
        "  files:",
    );

    // A listed file missing from the folder at the revision.
    r.write(&m, &text);
    r.remove("artifacts/fraud-detector/6/model.pkl");
    r.commit_all("lose a file");
    expect_invalid_at(
        &r,
        &m,
        "`artifacts/fraud-detector/6/model.pkl` does not exist in the registry",
        "  files:",
    );

    // A file whose bytes differ from its listed digest (same size).
    write_folder(
        &r,
        "artifacts/fraud-detector/6",
        &[("model.pkl", b"PICKLED WEIGHTS")],
    );
    r.commit_all("other bytes");
    expect_invalid_at(
        &r,
        &m,
        &format!(
            "`artifacts/fraud-detector/6/model.pkl` has sha256 {} but the listing says {}",
            sha(b"PICKLED WEIGHTS"),
            sha(MLFLOW[1].1)
        ),
        "  files:",
    );

    // A `..` path, and a uri without the trailing `/`.
    write_folder(&r, "artifacts/fraud-detector/6", MLFLOW);
    r.write(
        &m,
        &text
            .replace("{path: model.pkl,", "{path: ../model.pkl,")
            .replace(
                "uri: artifacts/fraud-detector/6/",
                "uri: artifacts/fraud-detector/6",
            ),
    );
    r.commit_all("unsafe path");
    expect_invalid_at(
        &r,
        &m,
        "artifact.files: file path `../model.pkl` must not have empty, `.` or `..` components",
        "  files:",
    );
    expect_invalid_at(
        &r,
        &m,
        "names a directory artifact (it lists `files`), so it must end in `/`",
        "  uri: artifacts/fraud-detector/6",
    );

    // A size that is not the sum; a path listed twice.
    let size_line = format!("  size: {}", total(MLFLOW));
    let wrong_size = format!("  size: {}", total(MLFLOW) + 1);
    let mlmodel = text
        .lines()
        .find(|l| l.starts_with("    - {path: MLmodel,"))
        .unwrap()
        .to_owned();
    r.write(
        &m,
        &text
            .replace(&size_line, &wrong_size)
            .replace(&mlmodel, &format!("{mlmodel}\n{mlmodel}")),
    );
    r.commit_all("size and a duplicate");
    expect_invalid_at(&r, &m, "but the listed files sum to", &wrong_size);
    expect_invalid_at(&r, &m, "file `MLmodel` is listed twice", "  files:");
}

// ---------------------------------------------------------------- check

#[test]
fn check_judges_a_change_to_any_file_of_an_in_registry_folder() {
    let add = |r: &TestRepo| {
        write_folder(r, "artifacts/churn-predictor/3", MLFLOW);
        let files: String = {
            let mut l: Vec<(&str, &[u8])> = MLFLOW.to_vec();
            l.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            l.iter()
                .map(|(p, b)| {
                    format!(
                        "    - {{path: {p}, sha256: {}, size: {}}}\n",
                        sha(b),
                        b.len()
                    )
                })
                .collect()
        };
        r.write(
            "models/churn-predictor/versions/3.yaml",
            &format!(
                "model: churn-predictor\nversion: \"3\"\nstage: development\nartifact:\n  uri: artifacts/churn-predictor/3/\n  sha256: {}\n  format: mlflow\n  files:\n{files}created: {T0}\n",
                listing(MLFLOW)
            ),
        );
    };
    // A folder version in development (deployed by no environment of the example) is free
    // to change; move it to staging in the baseline so `staging` deploys it.
    let w = World::with(|r| {
        add(r);
        let p = "models/churn-predictor/versions/3.yaml";
        let t = r.read(p).replace("stage: development", "stage: staging");
        r.write(p, &t);
        // staging holds one version per model: archive the one there.
        let p2 = "models/churn-predictor/versions/2.yaml";
        let t = r.read(p2).replace("stage: staging", "stage: archived");
        r.write(p2, &t);
    });
    let o = w.repo.baton(&["validate"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));

    // One file of the folder changes, no manifest does: the version is judged and fails.
    write_folder(
        &w.repo,
        "artifacts/churn-predictor/3",
        &[("data/vocab.txt", b"c\n")],
    );
    w.commit("retrain the vocabulary in place", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1, "{j:#}");
    let (ok, reason) = rule(&j, "churn-predictor@3", "artifact");
    assert!(
        !ok && reason.contains("`artifacts/churn-predictor/3/data/vocab.txt` has sha256 ")
            && reason.contains("but the listing says"),
        "{reason}"
    );

    // A listed file deleted.
    w.repo.git(&["reset", "-q", "--hard", "main"]);
    w.repo.remove("artifacts/churn-predictor/3/MLmodel");
    w.commit("drop MLmodel", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1, "{j:#}");
    let (ok, reason) = rule(&j, "churn-predictor@3", "artifact");
    assert!(
        !ok && reason.contains("MLmodel` is missing at head"),
        "{reason}"
    );

    // A file the listing does not name may come and go.
    w.repo.git(&["reset", "-q", "--hard", "main"]);
    write_folder(
        &w.repo,
        "artifacts/churn-predictor/3",
        &[("README", b"notes")],
    );
    w.commit("add notes", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
}

// ---------------------------------------------------------------- the local target

const POLICY: &str = r#"version: 1
stages:
  - name: staging
  - name: archived
    terminal: true
environments:
  staging:
    stage: staging
    target:
      kind: local
      path: staging
      reload: {command: 'echo "$BATON_VERSION $BATON_ARTIFACT" >> reloads.log; test "$BATON_VERSION" != 3'}
    health: {command: 'test -s "$BATON_ARTIFACT/MLmodel"'}
"#;

/// A repository with `POLICY`, model `m` and nothing registered yet.
fn serving_repo() -> TestRepo {
    let r = TestRepo::new();
    r.write("baton.yaml", POLICY);
    r.write(
        "models/m/model.yaml",
        "name: m\ndescription: a folder model\nowners: []\n",
    );
    r
}

/// Register `artifacts/m/<v>/` (holding `files`) as version `v` in staging.
fn register(r: &TestRepo, v: &str, files: &[(&str, &[u8])]) {
    write_folder(r, &format!("artifacts/m/{v}"), files);
    let o = r.baton(&[
        "register",
        "m",
        "--artifact",
        &format!("artifacts/m/{v}"),
        "--version",
        v,
        "--artifact-format",
        "mlflow",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

fn archive(r: &TestRepo, v: &str) {
    r.edit(
        &format!("models/m/versions/{v}.yaml"),
        "stage: staging",
        "stage: archived",
    );
}

#[test]
fn the_local_target_deploys_a_folder_under_current_and_reloads() {
    let r = serving_repo();
    register(&r, "1", MLFLOW);
    r.commit_all("m 1");
    let once = || r.baton(&["serve", "--once"]);
    let o = once();
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let state = r.path().join(".git/baton");
    let dir = state.join("deploy/staging/m");
    let d1 = listing(MLFLOW);
    assert_eq!(
        std::fs::read_link(dir.join("current")).unwrap(),
        Path::new("releases").join(&d1)
    );
    for (p, b) in MLFLOW {
        assert_eq!(
            std::fs::read(dir.join("current").join(p)).unwrap(),
            *b,
            "{p}"
        );
    }
    let routing: Value =
        serde_json::from_slice(&std::fs::read(dir.join("routing.json")).unwrap()).unwrap();
    assert_eq!(
        routing["versions"][0]["artifact"],
        format!("releases/{d1}/")
    );
    let log = || std::fs::read_to_string(state.join("reloads.log")).unwrap_or_default();
    assert_eq!(log(), format!("1 {}/\n", dir.join("current").display()));

    // Version 2: another folder; current switches, the reload runs again.
    let two: &[(&str, &[u8])] = &[("MLmodel", b"v2"), ("model.pkl", b"two")];
    register(&r, "2", two);
    archive(&r, "1");
    r.commit_all("m 2");
    let o = once();
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        std::fs::read_link(dir.join("current")).unwrap(),
        Path::new("releases").join(listing(two))
    );
    assert_eq!(
        std::fs::read(dir.join("current/model.pkl")).unwrap(),
        b"two"
    );
    assert!(!dir.join("current/data").exists(), "one build, not a mix");
    assert_eq!(log().lines().count(), 2);

    // Version 3's reload fails: 2 stays current, status says why.
    register(&r, "3", &[("MLmodel", b"v3")]);
    archive(&r, "2");
    r.commit_all("m 3");
    let o = once();
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        std::fs::read_link(dir.join("current")).unwrap(),
        Path::new("releases").join(listing(two))
    );
    let rec: Value =
        serde_json::from_slice(&std::fs::read(dir.join("deployment.json")).unwrap()).unwrap();
    assert_eq!(rec["version"], "2");
    let st = r.baton(&[
        "--format",
        "json",
        "status",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(
        stdout(&st).contains("reload: exited with 1"),
        "{}",
        stdout(&st)
    );
    // The builds of 1, 2 and 3 are all kept (the last three).
    assert_eq!(std::fs::read_dir(dir.join("releases")).unwrap().count(), 3);
}

#[test]
fn a_v1_deploy_folder_is_migrated_by_the_next_pass() {
    let r = serving_repo();
    // Version 1 as a single file.
    r.write("artifacts/m/1/model.bin", "weights v1");
    let o = r.baton(&["register", "m", "--artifact", "artifacts/m/1/model.bin"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    r.edit(
        "baton.yaml",
        "    health: {command: 'test -s \"$BATON_ARTIFACT/MLmodel\"'}\n",
        "    health: {command: 'test -s \"$BATON_ARTIFACT\"'}\n",
    );
    r.commit_all("m 1");
    let o = r.baton(&["serve", "--once"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let dir = r.path().join(".git/baton/deploy/staging/m");
    let digest = sha(b"weights v1");
    assert_eq!(
        std::fs::read(dir.join("current/model.bin")).unwrap(),
        b"weights v1"
    );

    // Rewrite it the way a v1 daemon left it.
    let v1 = dir.join("artifacts");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(v1.join(&digest), b"weights v1").unwrap();
    common_remove_tree(&dir.join("releases"));
    std::fs::remove_file(dir.join("current")).unwrap();
    std::os::unix::fs::symlink(Path::new("artifacts").join(&digest), dir.join("current")).unwrap();
    let o = r.baton(&["serve", "--once"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        std::fs::read_link(dir.join("current")).unwrap(),
        Path::new("releases").join(&digest)
    );
    assert!(!v1.exists(), "the v1 store is removed");
    let events = std::fs::read_to_string(r.path().join(".git/baton/events.jsonl")).unwrap();
    assert!(events.contains("v1 layout"), "{events}");
}

/// Remove a folder of read-only builds (as a user would: make it writable first).
fn common_remove_tree(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for e in walk(p) {
        if e.is_dir() {
            std::fs::set_permissions(&e, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    std::fs::remove_dir_all(p).unwrap();
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![p.to_path_buf()];
    if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        for e in std::fs::read_dir(p).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}
