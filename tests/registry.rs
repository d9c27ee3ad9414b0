//! The registry read from git, end to end through the `baton` binary: `validate` (every
//! invariant), `status`, `history` and `register`, on real repositories in temp dirs.

use crate::common;

use common::{code, stderr, stdout, TestRepo};
use serde_json::Value;

const FD: &str = "models/fraud-detector/versions";

fn json(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o))
        .unwrap_or_else(|e| panic!("not JSON ({e}): stdout={} stderr={}", stdout(o), stderr(o)))
}

/// `validate --format json` must fail (exit 1) and report an error in `file` whose message
/// contains `needle`; returns that error.
fn expect_invalid(r: &TestRepo, file: &str, needle: &str) -> Value {
    let o = r.baton(&["--format", "json", "validate"]);
    assert_eq!(code(&o), 1, "stdout={} stderr={}", stdout(&o), stderr(&o));
    let v = json(&o);
    assert_eq!(v["valid"], false);
    let errors = v["errors"].as_array().unwrap();
    errors
        .iter()
        .find(|e| e["file"] == file && e["message"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no error in {file} containing {needle:?}: {errors:#?}"))
        .clone()
}

/// Commit an edit to the example registry, then expect exactly that problem.
fn violate(file: &str, from: &str, to: &str, needle: &str) -> Value {
    let r = TestRepo::with_example();
    r.edit(file, from, to);
    r.commit_all("break it");
    expect_invalid(&r, file, needle)
}

// ---------------------------------------------------------------- validate: valid registry

#[test]
fn example_registry_is_valid_text_and_json() {
    let r = TestRepo::with_example();
    let o = r.baton(&["validate"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).starts_with("ok: registry . at "),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("3 models, 10 versions, 2 environments"));

    let v = json(&r.baton(&["--format", "json", "validate"]));
    assert_eq!(v["valid"], true);
    assert_eq!(v["models"], 3);
    assert_eq!(v["versions"], 10);
    assert_eq!(v["environments"], 2);
    assert_eq!(v["registry"], "");
    assert_eq!(v["revision"], r.head());
    assert_eq!(v["errors"], serde_json::json!([]));
}

#[test]
fn bundled_registry_example_validates_in_place() {
    // The README's registry, in this very repository, discovered through --path.
    let root = env!("CARGO_MANIFEST_DIR");
    let o = common::baton(
        &["--repo", root, "--path", "registry-example", "validate"],
        std::path::Path::new(root),
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
}

// ---------------------------------------------------------------- validate: each invariant

#[test]
fn unknown_stage() {
    let e = violate(
        &format!("{FD}/5.yaml"),
        "stage: development",
        "stage: qa",
        "unknown stage `qa`",
    );
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(4), Some(1))
    );
}

#[test]
fn two_versions_in_an_exclusive_stage() {
    violate(
        &format!("{FD}/5.yaml"),
        "stage: development",
        "stage: staging",
        "stage `staging` holds at most one version of each model; `fraud-detector` has 2 (4, 5)",
    );
}

#[test]
fn canary_needs_exactly_one_version_without_traffic() {
    // Two versions in the canary stage, neither carrying traffic.
    violate(
        &format!("{FD}/4.yaml"),
        "stage: staging",
        "stage: production",
        "exactly one version of `fraud-detector` must carry no `traffic`",
    );
}

#[test]
fn canary_traffic_must_sum_below_100() {
    let r = TestRepo::with_example();
    r.edit(
        &format!("{FD}/4.yaml"),
        "stage: staging",
        "stage: production\ntraffic: 60",
    );
    r.edit(
        &format!("{FD}/5.yaml"),
        "stage: development",
        "stage: production\ntraffic: 40",
    );
    r.commit_all("over-split");
    expect_invalid(
        &r,
        &format!("{FD}/5.yaml"),
        "sums to 100; it must be below 100",
    );
}

#[test]
fn canary_traffic_is_a_percent_from_1_to_99() {
    let r = TestRepo::with_example();
    r.edit(
        &format!("{FD}/4.yaml"),
        "stage: staging",
        "stage: production\ntraffic: 0",
    );
    r.commit_all("zero traffic");
    let e = expect_invalid(&r, &format!("{FD}/4.yaml"), "traffic 0 must be 1..99");
    assert_eq!(e["line"], 5);
}

#[test]
fn traffic_outside_a_canary_stage() {
    violate(
        &format!("{FD}/4.yaml"),
        "stage: staging",
        "stage: staging\ntraffic: 10",
        "traffic is only allowed in a canary stage; `staging` is not one",
    );
}

#[test]
fn requires_a_missing_version() {
    violate(
        &format!("{FD}/5.yaml"),
        "feature-encoder: \"8\"",
        "feature-encoder: \"99\"",
        "requires `feature-encoder` version `99`, which is not registered",
    );
}

#[test]
fn environment_names_a_missing_stage() {
    let e = violate(
        "baton.yaml",
        "  staging:\n    stage: staging",
        "  staging:\n    stage: qa",
        "environment `staging` deploys unknown stage `qa`",
    );
    assert!(e["line"].as_u64().is_some(), "{e}");
}

#[test]
fn duplicate_target_paths() {
    violate(
        "baton.yaml",
        "target: {kind: local, path: production}",
        "target: {kind: local, path: ./staging/}",
        "share the target path `staging`",
    );
}

#[test]
fn nested_target_paths() {
    violate(
        "baton.yaml",
        "target: {kind: local, path: production}",
        "target: {kind: local, path: staging/eu}",
        "target path `staging/eu` is inside `staging`, the target path of environment `staging`",
    );
}

#[test]
fn unknown_group() {
    let e = violate(
        "models/fraud-detector/model.yaml",
        "group:fraud-team",
        "group:fraud-squad",
        "unknown group `fraud-squad`",
    );
    assert_eq!(e["line"], 4);
}

#[test]
fn missing_signers_file() {
    let r = TestRepo::with_example();
    r.remove(".baton/allowed_signers");
    r.commit_all("drop signers");
    let e = expect_invalid(
        &r,
        "baton.yaml",
        "signers file `.baton/allowed_signers` does not exist",
    );
    assert!(e["line"].as_u64().is_some());
}

#[test]
fn bad_sha256() {
    let e = violate(
        &format!("{FD}/4.yaml"),
        "sha256: fe1750217e0ae90c169b285dabd00f420670b8b1554f9a988659b020352e136d",
        "sha256: FE1750217E",
        "artifact.sha256 must be 64 lower-case hex characters",
    );
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(7), Some(3))
    );
}

#[test]
fn artifact_path_with_dotdot() {
    violate(
        &format!("{FD}/4.yaml"),
        "uri: artifacts/fraud-detector/4/model.onnx",
        "uri: artifacts/../../outside/model.onnx",
        "must not contain `..`",
    );
}

#[test]
fn absolute_artifact_path() {
    violate(
        &format!("{FD}/4.yaml"),
        "uri: artifacts/fraud-detector/4/model.onnx",
        "uri: /etc/passwd",
        "must be a relative path inside the registry folder",
    );
}

#[test]
fn missing_artifact() {
    let r = TestRepo::with_example();
    r.remove("artifacts/fraud-detector/4/model.onnx");
    r.commit_all("lose the artifact");
    let e = expect_invalid(
        &r,
        &format!("{FD}/4.yaml"),
        "artifact `artifacts/fraud-detector/4/model.onnx` does not exist in the registry",
    );
    assert_eq!(e["line"], 6);
}

#[test]
fn wrong_digest_or_size_of_an_in_registry_artifact() {
    // Same length, other bytes: only the digest can tell.
    let r = TestRepo::with_example();
    let art = "artifacts/fraud-detector/4/model.onnx";
    let len = std::fs::metadata(r.path().join(art)).unwrap().len() as usize;
    r.write(art, &"x".repeat(len));
    r.commit_all("swap the artifact's bytes");
    let e = expect_invalid(
        &r,
        &format!("{FD}/4.yaml"),
        "artifact.sha256 is fe1750217e0ae90c169b285dabd00f420670b8b1554f9a988659b020352e136d but `artifacts/fraud-detector/4/model.onnx` has sha256 ",
    );
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(7), Some(3)),
        "located at `sha256`"
    );
    let o = r.baton(&["validate"]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains(&format!("{FD}/4.yaml:7:3: artifact.sha256 is fe17")),
        "{}",
        stdout(&o)
    );

    // A wrong size is reported at `size`.
    let e = violate(
        &format!("{FD}/4.yaml"),
        "size: 4916",
        "size: 4917",
        "artifact.size is 4917 but `artifacts/fraud-detector/4/model.onnx` is 4916 bytes",
    );
    assert_eq!(e["line"], 8);
}

#[test]
fn names_that_are_not_utf8_are_layout_errors() {
    let r = TestRepo::with_example();
    let fd5 = r.read(&format!("{FD}/5.yaml"));
    // A model folder, a version file and an artifact folder named by a byte that is not UTF-8.
    r.stage_raw(b"models/\xff/model.yaml", b"name: x\n");
    r.stage_raw(b"models/\xff/versions/5.yaml", fd5.as_bytes());
    r.stage_raw(b"models/fraud-detector/versions/\xfe.yaml", fd5.as_bytes());
    r.stage_raw(b"artifacts/\xfd/model.onnx", b"weights");
    r.git(&["commit", "-q", "-m", "names that are not UTF-8"]);
    for (file, shown) in [
        ("models/\\xff", "\\xff"),
        (&format!("{FD}/\\xfe.yaml"), "\\xfe.yaml"),
        ("artifacts/\\xfd", "\\xfd"),
    ] {
        expect_invalid(&r, file, &format!("the name `{shown}` is not UTF-8"));
    }
    // Never a model named "" (or by a lossy name) in what environments run.
    let v = json(&r.baton(&["--format", "json", "status"]));
    for env in v["environments"].as_array().unwrap() {
        for m in env["models"].as_array().unwrap() {
            let name = m["model"].as_str().unwrap();
            assert!(
                ["churn-predictor", "feature-encoder", "fraud-detector"].contains(&name),
                "{name:?}"
            );
        }
    }
}

#[test]
fn file_name_must_equal_version_field() {
    let r = TestRepo::with_example();
    r.git(&["mv", &format!("{FD}/5.yaml"), &format!("{FD}/6.yaml")]);
    r.commit_all("rename");
    expect_invalid(
        &r,
        &format!("{FD}/6.yaml"),
        "version `5` does not match the file name `6.yaml`",
    );
}

#[test]
fn symlink_in_the_registry_is_an_error() {
    let r = TestRepo::with_example();
    std::os::unix::fs::symlink(
        "../../artifacts/fraud-detector/4/model.onnx",
        r.path().join("models/fraud-detector/link.onnx"),
    )
    .unwrap();
    r.commit_all("add a symlink");
    expect_invalid(
        &r,
        "models/fraud-detector/link.onnx",
        "symbolic links are not allowed",
    );
}

#[test]
fn requires_a_two_digit_version_is_found() {
    // Version labels sort naturally ("9" < "10"); lookups must not use string order.
    let r = TestRepo::with_example();
    let fe = "models/feature-encoder/versions";
    for v in ["9", "10"] {
        let text = r
            .read(&format!("{fe}/8.yaml"))
            .replace("version: \"8\"", &format!("version: \"{v}\""))
            .replace("stage: staging", "stage: development");
        r.write(&format!("{fe}/{v}.yaml"), &text);
    }
    r.edit(
        &format!("{FD}/5.yaml"),
        "feature-encoder: \"8\"",
        "feature-encoder: \"10\"",
    );
    r.commit_all("encoder 9 and 10");
    let o = r.baton(&["validate"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}

#[test]
fn a_broken_required_manifest_is_reported_once() {
    let r = TestRepo::with_example();
    r.edit(
        "models/feature-encoder/versions/8.yaml",
        "stage: staging",
        "stage: staging\nsurprise: 1",
    );
    r.commit_all("break encoder 8");
    let v = json(&r.baton(&["--format", "json", "validate"]));
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["file"], "models/feature-encoder/versions/8.yaml");
    assert_eq!(errors[0]["line"], 5);
}

#[test]
fn metric_must_be_finite() {
    let e = violate(
        &format!("{FD}/4.yaml"),
        "  auc: 0.941",
        "  auc: .nan",
        "metric `auc` must be a finite number",
    );
    assert_eq!(e["line"], 11);
}

#[test]
fn decimal_looking_version_label_must_be_quoted() {
    let r = TestRepo::with_example();
    let text = r
        .read(&format!("{FD}/5.yaml"))
        .replace("version: \"5\"", "version: 5.10");
    r.write(&format!("{FD}/5.10.yaml"), &text);
    r.remove(&format!("{FD}/5.yaml"));
    r.commit_all("5.10");
    let e = expect_invalid(&r, &format!("{FD}/5.10.yaml"), "quote it");
    assert_eq!(e["line"], 3);
}

#[test]
fn stage_problems_point_at_the_stage() {
    let r = TestRepo::with_example();
    r.edit(
        "baton.yaml",
        "  - name: archived\n    terminal: true",
        "  - name: archived\n    terminal: true\n    gates:\n      - evidence: sign-off",
    );
    r.edit(
        "baton.yaml",
        "group:ml-leads, owners",
        "group:ml-heads, owners",
    );
    r.commit_all("bad stages");
    let text = r.read("baton.yaml");
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let e = expect_invalid(
        &r,
        "baton.yaml",
        "terminal stage `archived` cannot have gates",
    );
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(line_of("- name: archived") as u64), Some(5))
    );
    let e = expect_invalid(&r, "baton.yaml", "unknown group `ml-heads`");
    assert_eq!(
        e["line"].as_u64(),
        Some(line_of("- name: production") as u64)
    );
}

#[test]
fn model_folder_rules() {
    let r = TestRepo::with_example();
    r.remove("models/churn-predictor/model.yaml");
    r.write("models/Bad_Model/model.yaml", "name: Bad_Model\n");
    r.write(&format!("{FD}/.hidden.yaml"), "model: fraud-detector\n");
    r.commit_all("layout problems");
    expect_invalid(
        &r,
        "models/churn-predictor/model.yaml",
        "every model folder needs a model.yaml",
    );
    expect_invalid(&r, "models/Bad_Model", "must be a DNS label");
    expect_invalid(&r, &format!("{FD}/.hidden.yaml"), "version label `.hidden`");
}

#[test]
fn manifest_over_64_kib() {
    let r = TestRepo::with_example();
    let pad = format!("# {}\n", "x".repeat(70 * 1024));
    let f = format!("{FD}/5.yaml");
    let text = r.read(&f) + &pad;
    r.write(&f, &text);
    r.commit_all("huge");
    expect_invalid(&r, &f, "the limit is 65536 (64 KiB)");
}

#[test]
fn submodule_in_the_registry_is_an_error() {
    let r = TestRepo::with_example();
    let head = r.head();
    r.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{head},models/fraud-detector/vendored"),
    ]);
    r.git(&["commit", "-q", "-m", "gitlink"]);
    expect_invalid(
        &r,
        "models/fraud-detector/vendored",
        "submodules are not allowed",
    );
}

#[test]
fn registry_in_a_subfolder_is_discovered_or_named() {
    let r = TestRepo::new();
    common::copy_dir(&common::example_dir(), &r.path().join("ml/registry"));
    r.write("README.md", "app code lives here\n");
    r.commit_all("registry in a sub-folder");
    let v = json(&r.baton(&["--format", "json", "validate"]));
    assert_eq!(v["registry"], "ml/registry");
    assert_eq!(v["valid"], true);
    let o = r.baton(&["--path", "./ml/registry/", "validate"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("ok: registry ml/registry at"));
    let o = r.baton(&["--path", "ml", "validate"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("--path `ml`: no baton.yaml"),
        "{}",
        stderr(&o)
    );
    // Errors name repository-relative paths.
    r.edit(
        "ml/registry/models/fraud-detector/versions/5.yaml",
        "stage: development",
        "stage: qa",
    );
    r.commit_all("break");
    expect_invalid(
        &r,
        "ml/registry/models/fraud-detector/versions/5.yaml",
        "unknown stage `qa`",
    );
}

#[test]
fn status_of_a_registry_whose_policy_does_not_parse_exits_1() {
    let r = TestRepo::with_example();
    r.edit("baton.yaml", "version: 1", "version: 1\nversoin: 2");
    r.commit_all("typo");
    let o = r.baton(&["status"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("baton.yaml:5:1: unknown field `versoin`"),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------- validate: located parse errors

#[test]
fn yaml_syntax_error_is_located_text_and_json() {
    let r = TestRepo::with_example();
    r.edit(
        &format!("{FD}/4.yaml"),
        "stage: staging",
        "stage: staging: oops",
    );
    r.commit_all("broken yaml");
    let file = format!("{FD}/4.yaml");
    let e = expect_invalid(&r, &file, "mapping values are not allowed");
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(4), Some(15))
    );
    let o = r.baton(&["validate"]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains(&format!("{file}:4:15: mapping values are not allowed")),
        "{}",
        stdout(&o)
    );
    // The rest of the registry is still checked: one error, not a cascade.
    assert!(
        stdout(&o).contains("invalid: registry . at "),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains(": 1 error\n"), "{}", stdout(&o));
}

#[test]
fn unknown_field_is_located_text_and_json() {
    let r = TestRepo::with_example();
    r.edit(
        &format!("{FD}/4.yaml"),
        "metrics:\n",
        "color: blue\nmetrics:\n",
    );
    r.commit_all("unknown field");
    let file = format!("{FD}/4.yaml");
    let e = expect_invalid(&r, &file, "unknown field `color`");
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(10), Some(1))
    );
    let o = r.baton(&["validate"]);
    assert!(
        stdout(&o).contains(&format!("{file}:10:1: unknown field `color`")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn unknown_field_in_policy_is_located() {
    let r = TestRepo::with_example();
    r.edit("baton.yaml", "rollback:\n", "rollbak_typo: 1\nrollback:\n");
    r.commit_all("typo");
    let e = expect_invalid(&r, "baton.yaml", "unknown field `rollbak_typo`");
    assert_eq!(e["column"], 1);
    assert!(e["line"].as_u64().unwrap() > 3);
}

// ---------------------------------------------------------------- validate: git semantics

#[test]
fn uncommitted_edits_do_not_change_the_answer() {
    let r = TestRepo::with_example();
    r.edit(&format!("{FD}/4.yaml"), "stage: staging", "stage: nowhere");
    r.write("baton.yaml", "this: is not a policy\n");
    let o = r.baton(&["validate"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let s = json(&r.baton(&["--format", "json", "status"]));
    let prod = &s["environments"][1];
    assert_eq!(prod["name"], "staging");
    assert!(prod["models"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["model"] == "fraud-detector" && m["versions"][0]["version"] == "4"));
}

#[test]
fn rev_of_an_older_commit() {
    let r = TestRepo::with_example();
    let good = r.head();
    r.edit(&format!("{FD}/5.yaml"), "stage: development", "stage: qa");
    r.commit_all("break");
    assert_eq!(code(&r.baton(&["validate"])), 1);
    let o = r.baton(&["validate", "--rev", &good]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let o = r.baton(&["validate", "--rev", "HEAD~1"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let v = json(&r.baton(&["--format", "json", "validate", "--rev", "HEAD~1"]));
    assert_eq!(v["revision"], good);
}

#[test]
fn bad_revision_exits_2() {
    let r = TestRepo::with_example();
    for verb in ["validate", "status"] {
        let o = r.baton(&[verb, "--rev", "no-such-branch"]);
        assert_eq!(code(&o), 2, "{verb}");
        assert!(
            stderr(&o).contains("unknown revision `no-such-branch`"),
            "{}",
            stderr(&o)
        );
    }
    let o = r.baton(&["history", "fraud-detector", "--rev", "no-such-branch"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn outside_a_repository_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = common::baton(
        &["--repo", dir.path().to_str().unwrap(), "validate"],
        dir.path(),
    );
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("not a git repository"),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------- status

#[test]
fn status_text_and_json_on_the_example() {
    let r = TestRepo::with_example();
    let o = r.baton(&["status"]);
    assert_eq!(code(&o), 0);
    let text = stdout(&o);
    assert!(
        text.contains("environment production (stage production)"),
        "{text}"
    );
    assert!(
        text.contains("environment staging (stage staging)"),
        "{text}"
    );
    let fd_prod = text
        .lines()
        .find(|l| l.contains("fraud-detector") && l.contains("9b97887baea6"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        fd_prod.contains(" 3 ") && fd_prod.contains("100%"),
        "{fd_prod}"
    );

    let v = json(&r.baton(&["--format", "json", "status"]));
    assert_eq!(v["revision"], r.head());
    let envs = v["environments"].as_array().unwrap();
    assert_eq!(envs.len(), 2);
    assert_eq!(envs[0]["name"], "production");
    assert_eq!(envs[0]["stage"], "production");
    let fd = envs[0]["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "fraud-detector")
        .unwrap();
    assert_eq!(
        fd["versions"],
        serde_json::json!([{
            "version": "3",
            "traffic": 100,
            "sha256": "9b97887baea689efa941253ac0dfbac2904ff300d9518642cf91a5787aa84b06"
        }])
    );
}

#[test]
fn status_shows_staging_keeping_a_version_promoted_to_production() {
    let r = TestRepo::with_example();
    r.edit(
        "models/churn-predictor/versions/2.yaml",
        "stage: staging",
        "stage: production",
    );
    r.edit(
        "models/churn-predictor/versions/1.yaml",
        "stage: production",
        "stage: archived",
    );
    r.commit_all("promote churn-predictor 2, archive 1");
    let v = json(&r.baton(&["--format", "json", "status"]));
    let cp = |env: &str| -> Value {
        v["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == env)
            .and_then(|e| {
                e["models"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["model"] == "churn-predictor")
                    .cloned()
            })
            .unwrap_or_else(|| panic!("no churn-predictor in {env}: {v:#}"))
    };
    assert_eq!(
        cp("staging")["versions"],
        serde_json::json!([{
            "version": "2",
            "traffic": 100,
            "sha256": "bbdfcad29cc0ba4d0a19bb2624efd650f49021a82e29f653bf53279628faf147",
            "kept_from": "production"
        }])
    );
    assert_eq!(cp("production")["versions"][0]["version"], "2");
    assert!(cp("production")["versions"][0].get("kept_from").is_none());
    let text = stdout(&r.baton(&["status"]));
    assert!(
        text.contains(
            "churn-predictor 2: kept from stage production (stage staging holds no version of churn-predictor)"
        ),
        "{text}"
    );
}

#[test]
fn status_shows_a_canary_split() {
    let r = TestRepo::with_example();
    r.edit(
        &format!("{FD}/4.yaml"),
        "stage: staging",
        "stage: production\ntraffic: 10",
    );
    r.commit_all("canary 4 at 10%");
    assert_eq!(code(&r.baton(&["validate"])), 0);
    let v = json(&r.baton(&["--format", "json", "status"]));
    let fd = v["environments"][0]["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "fraud-detector")
        .unwrap()
        .clone();
    let split: Vec<(String, u64)> = fd["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["version"].as_str().unwrap().to_owned(),
                x["traffic"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(split, vec![("3".to_owned(), 90), ("4".to_owned(), 10)]);
    let text = stdout(&r.baton(&["status"]));
    assert!(text.contains("fraud-detector   3        90%"), "{text}");
    assert!(text.contains("fraud-detector   4        10%"), "{text}");
}

#[test]
fn status_warns_about_broken_manifests_and_shows_the_rest() {
    let r = TestRepo::with_example();
    r.edit(
        &format!("{FD}/4.yaml"),
        "stage: staging",
        "stage: staging\nbogus: 1",
    );
    r.commit_all("break 4");
    let o = r.baton(&["status"]);
    assert_eq!(code(&o), 0);
    assert!(
        stderr(&o).contains("warning: 1 problem(s) in the registry"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("feature-encoder  8"), "{}", stdout(&o));
}

#[test]
fn check_only_formats_are_usage_errors_elsewhere() {
    let r = TestRepo::with_example();
    for verb in [
        &["validate"][..],
        &["status"],
        &["history", "fraud-detector"],
    ] {
        let mut args = vec!["--format", "markdown"];
        args.extend_from_slice(verb);
        let o = r.baton(&args);
        assert_eq!(code(&o), 2, "{verb:?}");
        assert!(
            stderr(&o).contains("only available for `check`"),
            "{}",
            stderr(&o)
        );
    }
    let o = r.baton(&["validate", "--no-such-flag"]);
    assert_eq!(code(&o), 2);
}

// ---------------------------------------------------------------- history

/// Commit everything with a fixed author and committer date.
fn commit_at(r: &TestRepo, date: &str, who: &str, msg: &str) -> String {
    r.git(&["add", "-A"]);
    let email = format!("{}@acme.com", who.to_lowercase());
    r.git_env(
        &[
            ("GIT_AUTHOR_DATE", date),
            ("GIT_COMMITTER_DATE", date),
            ("GIT_AUTHOR_NAME", who),
            ("GIT_AUTHOR_EMAIL", &email),
        ],
        &["commit", "-q", "--allow-empty", "-m", msg],
    );
    r.head()
}

#[test]
fn history_with_promotions_demotions_merge_and_revert() {
    let r = TestRepo::with_example();
    let f4 = format!("{FD}/4.yaml");
    let f3 = format!("{FD}/3.yaml");
    let f5 = format!("{FD}/5.yaml");
    // A promotion through a pull request, merged with a merge commit.
    r.git(&["checkout", "-q", "-b", "promote-4"]);
    r.edit(&f4, "stage: staging", "stage: production");
    r.edit(&f3, "stage: production", "stage: archived");
    commit_at(
        &r,
        "2026-11-21T10:00:00Z",
        "Alice",
        "Promote fraud-detector 4 to production",
    );
    r.git(&["checkout", "-q", "main"]);
    r.git_env(
        &[
            ("GIT_COMMITTER_DATE", "2026-11-21T11:00:00Z"),
            ("GIT_AUTHOR_DATE", "2026-11-21T11:00:00Z"),
        ],
        &[
            "merge",
            "-q",
            "--no-ff",
            "promote-4",
            "-m",
            "Merge pull request #7 from promote-4",
        ],
    );
    let merge = r.head();
    // A demotion straight on main: 4 back to staging, 3 back to production.
    r.edit(&f4, "stage: production", "stage: staging");
    r.edit(&f3, "stage: archived", "stage: production");
    let demote = commit_at(&r, "2026-11-22T09:00:00Z", "Bob", "Demote fraud-detector 4");
    // A promotion of 5 to staging (4 archived), then its revert.
    r.edit(&f5, "stage: development", "stage: staging");
    r.edit(&f4, "stage: staging", "stage: archived");
    commit_at(
        &r,
        "2026-11-23T09:00:00Z",
        "Carol",
        "Promote fraud-detector 5 to staging",
    );
    r.git_env(
        &[
            ("GIT_COMMITTER_DATE", "2026-11-23T12:00:00Z"),
            ("GIT_AUTHOR_DATE", "2026-11-23T12:00:00Z"),
        ],
        &["revert", "--no-edit", "HEAD"],
    );
    let revert = r.head();
    // Deleting an archived version.
    r.remove(&format!("{FD}/1.yaml"));
    commit_at(
        &r,
        "2026-11-24T09:00:00Z",
        "Carol",
        "Delete fraud-detector 1",
    );
    // Another model's change does not show up.
    r.edit(
        "models/churn-predictor/versions/2.yaml",
        "stage: staging",
        "stage: archived",
    );
    commit_at(&r, "2026-11-25T09:00:00Z", "Dave", "Archive churn 2");

    let v = json(&r.baton(&["--format", "json", "history", "fraud-detector"]));
    assert_eq!(v["model"], "fraud-detector");
    assert_eq!(v["revision"], r.head());
    let t: Vec<(String, String, Value, Value)> = v["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["version"].as_str().unwrap().to_owned(),
                e["subject"].as_str().unwrap().to_owned(),
                e["from"].clone(),
                e["to"].clone(),
            )
        })
        .collect();
    let s = |x: &str| Value::String(x.into());
    let expected = vec![
        ("1", "Delete fraud-detector 1", s("archived"), Value::Null),
        (
            "4",
            "Revert \"Promote fraud-detector 5 to staging\"",
            s("archived"),
            s("staging"),
        ),
        (
            "5",
            "Revert \"Promote fraud-detector 5 to staging\"",
            s("staging"),
            s("development"),
        ),
        (
            "4",
            "Promote fraud-detector 5 to staging",
            s("staging"),
            s("archived"),
        ),
        (
            "5",
            "Promote fraud-detector 5 to staging",
            s("development"),
            s("staging"),
        ),
        (
            "3",
            "Demote fraud-detector 4",
            s("archived"),
            s("production"),
        ),
        (
            "4",
            "Demote fraud-detector 4",
            s("production"),
            s("staging"),
        ),
        (
            "3",
            "Merge pull request #7 from promote-4",
            s("production"),
            s("archived"),
        ),
        (
            "4",
            "Merge pull request #7 from promote-4",
            s("staging"),
            s("production"),
        ),
    ];
    for (i, (ver, subj, from, to)) in expected.iter().enumerate() {
        assert_eq!(
            (&t[i].0[..], &t[i].1[..], &t[i].2, &t[i].3),
            (*ver, *subj, from, to),
            "transition {i}: {t:#?}"
        );
    }
    // Then the five registrations of the initial commit, oldest last.
    assert_eq!(t.len(), expected.len() + 5, "{t:#?}");
    assert!(t[expected.len()..].iter().all(|e| e.2.is_null()));

    let all = v["transitions"].as_array().unwrap();
    let m = all.iter().find(|e| e["commit"] == merge.as_str()).unwrap();
    assert_eq!(m["date"], "2026-11-21T11:00:00Z");
    assert_eq!(m["path"], "models/fraud-detector/versions/3.yaml");
    let d = all.iter().find(|e| e["commit"] == demote.as_str()).unwrap();
    assert_eq!(
        d["author"],
        serde_json::json!({"name": "Bob", "email": "bob@acme.com"})
    );
    assert!(all.iter().any(|e| e["commit"] == revert.as_str()));

    // --version filters; text is an aligned table, newest first.
    let o = r.baton(&["history", "fraud-detector", "--version", "4"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("DATE (UTC)"), "{text}");
    let col = lines[0].find("TRANSITION").unwrap();
    assert_eq!(lines.len(), 1 + 5, "{text}");
    assert_eq!(&lines[1][col..col + 20], "archived -> staging ");
    assert!(lines[1].starts_with("2026-11-23 12:00  "), "{text}");
    assert_eq!(&lines[5][col..col + 16], "(new) -> staging");
    assert!(lines[3].contains("production -> staging") && lines[3].contains("Bob"));
    assert!(text.contains(&demote[..10]));

    // History as of an older revision.
    let v = json(&r.baton(&[
        "--format",
        "json",
        "history",
        "fraud-detector",
        "--rev",
        &demote,
    ]));
    assert_eq!(v["transitions"][0]["subject"], "Demote fraud-detector 4");
}

/// An empty approval commit signed with `key` (SSH), carrying `trailer`.
fn approve(r: &TestRepo, key: &common::SshKey, trailer: &str) -> String {
    r.git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &format!("user.signingkey={}", key.private.display()),
        "-c",
        &format!("user.email={}", key.principal),
        "commit",
        "-q",
        "-S",
        "--allow-empty",
        "-m",
        "approve",
        "-m",
        &format!("Baton-Approve: {trailer}"),
    ]);
    r.head()
}

#[test]
fn history_lists_verified_signed_approvals_of_each_transition() {
    let r = TestRepo::with_example();
    let keys = tempfile::tempdir().unwrap();
    let alice = common::SshKey::generate(keys.path(), "alice", "alice@acme.com");
    let bob = common::SshKey::generate(keys.path(), "bob", "bob@acme.com");
    let mallory = common::SshKey::generate(keys.path(), "mallory", "mallory@acme.com");
    r.write(
        ".baton/allowed_signers",
        &format!(
            "{}\n{}\n",
            alice.allowed_signers_line(),
            bob.allowed_signers_line()
        ),
    );
    r.commit_all("our reviewers' keys");

    // A pull request: promotion, approvals by alice and bob, a forged one by mallory (unknown
    // key), one by alice for another target, and an unsigned one; merged with a merge commit.
    r.git(&["checkout", "-q", "-b", "promote-4"]);
    r.edit(
        &format!("{FD}/4.yaml"),
        "stage: staging",
        "stage: production",
    );
    r.edit(
        &format!("{FD}/3.yaml"),
        "stage: production",
        "stage: archived",
    );
    r.commit_all("Promote fraud-detector 4");
    let a1 = approve(&r, &alice, "fraud-detector@4 -> production");
    let b1 = approve(&r, &bob, "fraud-detector@4 -> production");
    approve(&r, &mallory, "fraud-detector@4 -> production");
    approve(&r, &alice, "fraud-detector@4 -> staging");
    r.git(&[
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "approve",
        "-m",
        "Baton-Approve: fraud-detector@4 -> production",
    ]);
    r.git(&["checkout", "-q", "main"]);
    r.git(&[
        "merge",
        "-q",
        "--no-ff",
        "promote-4",
        "-m",
        "Merge pull request #1",
    ]);

    // A rebase-merged change: the approval follows the change on the branch. An approval
    // made before a later edit of the manifest is stale.
    r.edit(
        &format!("{FD}/5.yaml"),
        "stage: development",
        "stage: staging",
    );
    r.commit_all("Promote fraud-detector 5 to staging");
    let a2 = approve(&r, &alice, "fraud-detector@5 -> staging");
    r.git(&["checkout", "-q", "-b", "revive-2"]);
    r.edit(
        &format!("{FD}/2.yaml"),
        "stage: archived",
        "stage: development",
    );
    r.commit_all("Revive fraud-detector 2");
    approve(&r, &alice, "fraud-detector@2 -> development");
    r.edit(
        &format!("{FD}/2.yaml"),
        "auc: 0.921",
        "auc: 0.921\n  recall: 0.8",
    );
    r.commit_all("add recall to 2 after the approval");
    r.git(&["checkout", "-q", "main"]);
    r.git(&[
        "merge",
        "-q",
        "--no-ff",
        "revive-2",
        "-m",
        "Merge pull request #2",
    ]);

    let v = json(&r.baton(&["--format", "json", "history", "fraud-detector"]));
    let t = v["transitions"].as_array().unwrap();
    let find = |ver: &str, to: &str| {
        t.iter()
            .find(|e| e["version"] == ver && e["to"] == to)
            .unwrap_or_else(|| panic!("{ver} -> {to}: {t:#?}"))
    };
    let four = find("4", "production");
    let mut got = four["approvals"].as_array().unwrap().clone();
    got.sort_by_key(|x| x["principals"][0].as_str().unwrap().to_owned());
    assert_eq!(
        Value::Array(got),
        serde_json::json!([
            {"commit": a1, "principals": ["alice@acme.com"]},
            {"commit": b1, "principals": ["bob@acme.com"]},
        ])
    );
    assert_eq!(find("3", "archived")["approvals"], serde_json::json!([]));
    assert_eq!(
        find("5", "staging")["approvals"],
        serde_json::json!([{"commit": a2, "principals": ["alice@acme.com"]}])
    );
    assert_eq!(find("2", "development")["approvals"], serde_json::json!([]));

    let o = r.baton(&["history", "fraud-detector", "--version", "5"]);
    let text = stdout(&o);
    let header = text.lines().next().unwrap();
    let col = header.find("APPROVALS").unwrap();
    let row = text.lines().nth(1).unwrap();
    assert!(row[col..].starts_with("alice@acme.com "), "{text}");
    let four = r.baton(&["history", "fraud-detector", "--version", "4"]);
    let row = stdout(&four).lines().nth(1).unwrap().to_owned();
    assert!(
        row.contains("alice@acme.com,bob@acme.com") || row.contains("bob@acme.com,alice@acme.com"),
        "{row}"
    );
}

#[test]
fn history_of_unknown_model_or_version_exits_2() {
    let r = TestRepo::with_example();
    let o = r.baton(&["history", "no-such-model"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("unknown model `no-such-model`"),
        "{}",
        stderr(&o)
    );
    let o = r.baton(&["history", "fraud-detector", "--version", "42"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no version `42`"), "{}", stderr(&o));
    let o = r.baton(&["history", "Not_A_Model"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn history_survives_a_broken_intermediate_manifest() {
    let r = TestRepo::with_example();
    let f = format!("{FD}/5.yaml");
    r.edit(&f, "stage: development", "stage: [oops");
    r.commit_all("break 5");
    r.edit(&f, "stage: [oops", "stage: development");
    r.commit_all("fix 5");
    r.edit(&f, "stage: development", "stage: staging");
    r.edit(&format!("{FD}/4.yaml"), "stage: staging", "stage: archived");
    r.commit_all("promote 5");
    let v = json(&r.baton(&[
        "--format",
        "json",
        "history",
        "fraud-detector",
        "--version",
        "5",
    ]));
    let t = v["transitions"].as_array().unwrap();
    assert_eq!(t.len(), 2, "{t:#?}");
    assert_eq!(
        (t[0]["from"].as_str(), t[0]["to"].as_str()),
        (Some("development"), Some("staging"))
    );
    assert_eq!(t[1]["from"], Value::Null);
}

// ---------------------------------------------------------------- register

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn register_computes_digest_and_next_label_then_validates() {
    let r = TestRepo::with_example();
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    r.write("artifacts/fraud-detector/6/model.onnx", "");
    std::fs::write(
        r.path().join("artifacts/fraud-detector/6/model.onnx"),
        &bytes,
    )
    .unwrap();
    r.write("metrics.json", r#"{"auc": 0.951, "p99_latency_ms": 9}"#);
    let o = r.baton(&[
        "--format",
        "json",
        "register",
        "fraud-detector",
        "--artifact",
        "artifacts/fraud-detector/6/model.onnx",
        "--metrics",
        "metrics.json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["version"], "6");
    assert_eq!(v["stage"], "development");
    assert_eq!(v["path"], format!("{FD}/6.yaml"));
    assert_eq!(v["artifact"]["sha256"], sha256_hex(&bytes));
    assert_eq!(v["artifact"]["size"], bytes.len());
    assert_eq!(
        v["artifact"]["uri"],
        "artifacts/fraud-detector/6/model.onnx"
    );
    let text = r.read(&format!("{FD}/6.yaml"));
    assert!(
        text.starts_with(
            "# yaml-language-server: $schema=../../../../docs/schema/version.schema.json\n\
             model: fraud-detector\nversion: \"6\"\nstage: development\n"
        ),
        "{text}"
    );
    assert!(text.contains(&format!(
        "  sha256: {}\n  size: 200000\n",
        sha256_hex(&bytes)
    )));
    assert!(
        text.contains("metrics:\n  auc: 0.951\n  p99_latency_ms: 9.0\n"),
        "{text}"
    );

    // Not committed: HEAD still validates without it, and the next label counts it.
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "metrics.json",
        "--requires",
        "feature-encoder=8",
        "--lineage",
        "code=https://github.com/acme/fraud@abc123",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let seven = r.read(&format!("{FD}/7.yaml"));
    assert!(seven.contains("lineage:\n  code: https://github.com/acme/fraud@abc123\nrequires:\n  feature-encoder: \"8\"\n"), "{seven}");
    assert!(stdout(&o).contains("registered fraud-detector version 7 in stage development"));
    r.remove(&format!("{FD}/7.yaml"));

    r.remove("metrics.json");
    r.commit_all("register fraud-detector 6");
    let o = r.baton(&["validate"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let o = r.baton(&["history", "fraud-detector", "--version", "6"]);
    assert!(stdout(&o).contains("(new) -> development"));
}

#[test]
fn register_records_evidence_from_files_and_refuses_bad_ones_by_line() {
    let r = TestRepo::with_example();
    r.write("model.bin", "a build");
    r.write(
        "eval.yaml",
        "passed: true\nreport: \"s3://acme/reports/eval, v2.json\"\n",
    );
    r.write("bias.json", r#"{"passed": false}"#);
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "model.bin",
        "--evidence",
        "offline-eval=eval.yaml",
        "--evidence",
        "bias-audit=bias.json",
        "--evidence",
        "smoke=passed",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = r.read(&format!("{FD}/6.yaml"));
    assert!(
        text.contains("evidence:\n  bias-audit: {passed: false}\n  offline-eval: {passed: true, report: \"s3://acme/reports/eval, v2.json\"}\n  smoke: {passed: true}\n"),
        "{text}"
    );
    // What was written reads back as the same evidence, and the registry validates with it.
    let m: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(
        m["evidence"]["offline-eval"]["report"].as_str(),
        Some("s3://acme/reports/eval, v2.json")
    );
    assert_eq!(m["evidence"]["bias-audit"]["passed"].as_bool(), Some(false));
    for f in ["eval.yaml", "bias.json"] {
        r.remove(f);
    }
    r.commit_all("register fraud-detector 6 with evidence");
    let o = r.baton(&["validate"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));

    // A bad file is refused by file:line:column, a missing one in a sentence; nothing written.
    r.write("bad.yaml", "passed: true\nscore: 0.9\n");
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "model.bin",
        "--evidence",
        "offline-eval=bad.yaml",
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("bad.yaml:2:1: unknown field `score`"),
        "{}",
        stderr(&o)
    );
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "model.bin",
        "--evidence",
        "offline-eval=missing.yaml",
    ]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains(
            "evidence `offline-eval`: cannot read missing.yaml: no such file or directory"
        ),
        "{err}"
    );
    assert!(!err.contains("os error"), "{err}");
    assert!(!r.path().join(format!("{FD}/7.yaml")).exists());
}

#[test]
fn register_refuses_to_overwrite() {
    let r = TestRepo::with_example();
    r.write("new.bin", "new artifact");
    let before = r.read(&format!("{FD}/4.yaml"));
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "new.bin",
        "--version",
        "4",
    ]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(r.read(&format!("{FD}/4.yaml")), before);

    // Also a version that exists only in the working tree.
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "new.bin",
        "--version",
        "rc1",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let written = r.read(&format!("{FD}/rc1.yaml"));
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "new.bin",
        "--version",
        "rc1",
    ]);
    assert_eq!(code(&o), 1);
    assert_eq!(r.read(&format!("{FD}/rc1.yaml")), written);
}

#[test]
fn register_in_a_repository_without_commits() {
    let r = TestRepo::new();
    std::fs::copy(
        common::example_dir().join("baton.yaml"),
        r.path().join("baton.yaml"),
    )
    .unwrap();
    r.write("signers", "");
    r.edit(
        "baton.yaml",
        "signers: .baton/allowed_signers",
        "signers: signers",
    );
    r.write("artifacts/demo/1/model.bin", "weights");
    let o = r.baton(&["validate"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no commits yet"), "{}", stderr(&o));
    let o = r.baton(&[
        "register",
        "demo",
        "--artifact",
        "artifacts/demo/1/model.bin",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("registered demo version 1 in stage development"));
    r.commit_all("first");
    let o = r.baton(&["validate"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}

#[test]
fn register_never_reuses_a_deleted_label() {
    let r = TestRepo::with_example();
    r.edit(
        &format!("{FD}/5.yaml"),
        "stage: development",
        "stage: archived",
    );
    r.commit_all("archive 5");
    r.remove(&format!("{FD}/5.yaml"));
    r.commit_all("delete 5");
    r.write("a.bin", "six");
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "a.bin",
        "--version",
        "5",
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("labels are never reused"),
        "{}",
        stderr(&o)
    );
    assert!(!r.path().join(format!("{FD}/5.yaml")).exists());
    let o = r.baton(&[
        "--format",
        "json",
        "register",
        "fraud-detector",
        "--artifact",
        "a.bin",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["version"], "6");
}

#[test]
fn register_a_new_model_outside_artifact_and_uri() {
    let r = TestRepo::with_example();
    let outside = tempfile::tempdir().unwrap();
    let art = outside.path().join("m.bin");
    std::fs::write(&art, b"weights").unwrap();
    let o = r.baton(&[
        "--format",
        "json",
        "register",
        "ranker",
        "--artifact",
        art.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["version"], "1");
    assert_eq!(v["model_yaml_created"], "models/ranker/model.yaml");
    let canon = std::fs::canonicalize(&art).unwrap();
    assert_eq!(v["artifact"]["uri"], format!("file://{}", canon.display()));
    assert!(r.read("models/ranker/model.yaml").starts_with(
        "# yaml-language-server: $schema=../../../docs/schema/model.schema.json\nname: ranker\n"
    ));

    let o = r.baton(&[
        "register",
        "ranker",
        "--artifact",
        art.to_str().unwrap(),
        "--uri",
        "s3://acme-models/ranker/2/m.bin",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = r.read("models/ranker/versions/2.yaml");
    assert!(
        text.contains("uri: s3://acme-models/ranker/2/m.bin\n"),
        "{text}"
    );
    assert!(text.contains(&sha256_hex(b"weights")));
    r.commit_all("register ranker");
    let o = r.baton(&["validate"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}

#[test]
fn register_rejects_bad_input_with_exit_2() {
    let r = TestRepo::with_example();
    r.write("a.bin", "x");
    r.write("m.json", "{\"auc\": \"high\"}");
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "a.bin",
        "--metrics",
        "m.json",
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("metric `auc` must be a number, found a string"),
        "{}",
        stderr(&o)
    );
    r.write("m.json", "{\n  \"auc\": 0.9,,\n}");
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "a.bin",
        "--metrics",
        "m.json",
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("m.json: 2:"), "{}", stderr(&o));
    let o = r.baton(&["register", "fraud-detector", "--artifact", "missing.bin"]);
    assert_eq!(code(&o), 2);
    let o = r.baton(&[
        "register",
        "fraud-detector",
        "--artifact",
        "a.bin",
        "--uri",
        "../x.bin",
    ]);
    assert_eq!(code(&o), 2);
    let o = r.baton(&["register", "Bad_Name", "--artifact", "a.bin"]);
    assert_eq!(code(&o), 2);
    // Nothing was written.
    assert!(!r.path().join(format!("{FD}/6.yaml")).exists());
}

#[test]
fn completions_are_valid_shell_and_the_man_page_covers_every_verb() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::baton(&["completions", "bash"], dir.path());
    assert_eq!(common::code(&out), 0);
    let script = common::stdout(&out);
    for verb in [
        "validate",
        "check",
        "promote",
        "approve",
        "serve",
        "completions",
    ] {
        assert!(script.contains(verb), "bash completion lacks {verb}");
    }
    let file = dir.path().join("baton.bash");
    std::fs::write(&file, &script).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{}", common::stderr(&syntax));
    for shell in ["zsh", "fish"] {
        let out = common::baton(&["completions", shell], dir.path());
        assert_eq!(common::code(&out), 0);
        let s = common::stdout(&out);
        assert!(s.contains("check") && s.contains("base"), "{shell}");
    }
    let bad = common::baton(&["completions", "tcsh"], dir.path());
    assert_eq!(common::code(&bad), 2);
    let man = common::stdout(&common::baton(&["man"], dir.path()));
    for verb in ["check", "serve", "register"] {
        assert!(
            man.contains(&format!(".TH baton-{verb} 1")),
            "man lacks {verb}"
        );
    }
}

#[test]
fn init_scaffolds_a_registry_that_validates_with_the_users_key() {
    let home = tempfile::tempdir().unwrap();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    let key = common::SshKey::generate(&ssh, "id_ed25519", "me@acme.com");
    let dir = home.path().join("registry");
    let run = |args: &[&str], cwd: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(args)
            .current_dir(cwd)
            .env("HOME", home.path())
            .env("GIT_CONFIG_GLOBAL", home.path().join("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap()
    };
    // No email anywhere: refused, nothing written.
    let out = run(&["init", dir.to_str().unwrap()], home.path());
    assert_eq!(common::code(&out), 2);
    assert!(
        common::stderr(&out).contains("--email"),
        "{}",
        common::stderr(&out)
    );
    assert!(!dir.join("baton.yaml").exists());
    let out = run(
        &["init", dir.to_str().unwrap(), "--email", "me@acme.com"],
        home.path(),
    );
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    let signers = std::fs::read_to_string(dir.join(".baton/allowed_signers")).unwrap();
    assert!(signers.contains(&key.allowed_signers_line()), "{signers}");
    for args in [
        vec!["add", "-A"],
        vec![
            "-c",
            "user.name=Me",
            "-c",
            "user.email=me@acme.com",
            "commit",
            "-q",
            "-m",
            "start",
        ],
    ] {
        let st = std::process::Command::new("git")
            .args(&args)
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let v = run(&["validate"], &dir);
    assert_eq!(
        common::code(&v),
        0,
        "{}{}",
        common::stdout(&v),
        common::stderr(&v)
    );
    // A second init never overwrites.
    let again = run(&["init", ".", "--email", "me@acme.com"], &dir);
    assert_eq!(common::code(&again), 2);
    assert!(common::stderr(&again).contains("already exists"));
    // Two keys and no choice: asked to pick one.
    common::SshKey::generate(&ssh, "id_other", "me@acme.com");
    let other = home.path().join("other");
    let out = run(
        &["init", other.to_str().unwrap(), "--email", "me@acme.com"],
        home.path(),
    );
    assert_eq!(common::code(&out), 2);
    assert!(
        common::stderr(&out).contains("--key"),
        "{}",
        common::stderr(&out)
    );
}
