//! The registry loader against real git repositories built with the synthetic generator:
//! reloads parse only changed blobs, changed model trees are invalidated correctly, and
//! garbage or truncated manifests never panic and always yield located diagnostics.

#[path = "../benches/support/synth.rs"]
mod synth;

use baton::registry::{Loader, Registry};
use git2::{Oid, Repository};
use std::sync::Arc;
use synth::Synth;

fn oid(s: &str) -> Oid {
    Oid::from_str(s).unwrap()
}

fn load(loader: &mut Loader, repo: &Repository, commit: &str) -> Registry {
    loader.load(repo, oid(commit), "").expect("load")
}

fn stage(reg: &Registry, m: usize, v: &str) -> String {
    reg.version(&Synth::model_name(m), v)
        .unwrap_or_else(|| panic!("{}@{v} missing", Synth::model_name(m)))
        .manifest
        .stage
        .clone()
}

/// A fresh loader's view of `commit`, for comparing with what a warm loader returned.
fn fresh(repo: &Repository, commit: &str) -> Registry {
    Loader::new().load(repo, oid(commit), "").expect("load")
}

fn same_content(a: &Registry, b: &Registry) {
    assert_eq!(a.models.len(), b.models.len());
    for (name, ma) in &a.models {
        let mb = &b.models[name];
        assert_eq!(ma.manifest, mb.manifest, "{name}: model.yaml");
        assert_eq!(ma.diagnostics, mb.diagnostics, "{name}: diagnostics");
        let va: Vec<_> = ma
            .versions
            .iter()
            .map(|(k, v)| (k, &v.path, v.blob, v.manifest()))
            .collect();
        let vb: Vec<_> = mb
            .versions
            .iter()
            .map(|(k, v)| (k, &v.path, v.blob, v.manifest()))
            .collect();
        assert_eq!(va, vb, "{name}: versions");
    }
    assert_eq!(a.load_diagnostics(), b.load_diagnostics());
}

#[test]
fn reload_parses_only_the_changed_manifest() {
    let mut s = Synth::build(100, 5);
    let repo = Repository::open(s.path()).unwrap();
    let mut loader = Loader::new();
    let first = load(&mut loader, &repo, &s.head());
    assert_eq!(loader.stats.parsed, 500);
    assert_eq!(first.version_count(), 500);
    assert!(
        first.load_diagnostics().is_empty(),
        "{:?}",
        first.load_diagnostics()
    );

    // Many more reloads than the cache keeps generations: a model whose folder changes
    // late must still parse only its changed blob.
    let mut prev = first;
    for i in 0..12 {
        let m = (i * 37) % 100;
        let c = s.set_stage(m, 1, "development");
        let reg = load(&mut loader, &repo, &c);
        assert_eq!(
            loader.stats.parsed, 1,
            "reload {i} parsed more than the changed blob"
        );
        assert_eq!(loader.stats.reused_models, 99);
        assert_eq!(stage(&reg, m, "1"), "development");
        // Untouched models are the very same entries as before.
        let other = Synth::model_name((m + 1) % 100);
        assert!(Arc::ptr_eq(&prev.models[&other], &reg.models[&other]));
        same_content(&reg, &fresh(&repo, &c));
        prev = reg;
    }
}

#[test]
fn changed_model_trees_are_invalidated() {
    let mut s = Synth::build(70, 4);
    let repo = Repository::open(s.path()).unwrap();
    let mut loader = Loader::new();
    let base = s.head();
    let first = load(&mut loader, &repo, &base);
    let m0 = Synth::model_name(0);

    // model.yaml edited: the folder is re-read, no version manifest is parsed again.
    let text = format!("name: {m0}\ndescription: edited\nowners: [alice@acme.com]\n");
    let c1 = s.commit_files(
        "main",
        &[(&format!("models/{m0}/model.yaml"), Some(text.as_bytes()))],
        "edit",
    );
    let reg = load(&mut loader, &repo, &c1);
    assert_eq!(loader.stats.parsed, 0);
    assert_eq!(loader.stats.reused_models, 69);
    assert_eq!(
        reg.models[&m0].model_manifest().unwrap().description,
        "edited"
    );
    assert!(!Arc::ptr_eq(&first.models[&m0], &reg.models[&m0]));

    // A new version file: exactly that blob is parsed.
    let v5 = s
        .manifest_text("main", 0, 4)
        .replace("version: \"4\"", "version: \"5\"");
    let c2 = s.commit_files(
        "main",
        &[(&format!("models/{m0}/versions/5.yaml"), Some(v5.as_bytes()))],
        "add",
    );
    let reg = load(&mut loader, &repo, &c2);
    assert_eq!(loader.stats.parsed, 1);
    assert!(reg.version(&m0, "5").is_some());

    // A deleted version disappears; nothing is parsed.
    let c3 = s.commit_files(
        "main",
        &[(&format!("models/{m0}/versions/1.yaml"), None)],
        "delete",
    );
    let reg = load(&mut loader, &repo, &c3);
    assert_eq!(loader.stats.parsed, 0);
    assert!(reg.version(&m0, "1").is_none());
    assert_eq!(reg.models[&m0].versions.len(), 4);

    // The same folder content under another name (same tree id, other path) is not reused
    // blindly: paths and name checks follow the new folder.
    let copy = "copy-of-zero";
    let mut files = Vec::new();
    let texts: Vec<(String, String)> = reg.models[&m0]
        .versions
        .values()
        .map(|v| {
            let blob = repo.find_blob(v.blob).unwrap();
            (
                v.path.replace(&m0, copy),
                String::from_utf8(blob.content().to_vec()).unwrap(),
            )
        })
        .collect();
    let model_yaml = format!("name: {m0}\ndescription: edited\nowners: [alice@acme.com]\n");
    let model_path = format!("models/{copy}/model.yaml");
    files.push((model_path.as_str(), Some(model_yaml.as_bytes())));
    for (p, t) in &texts {
        files.push((p.as_str(), Some(t.as_bytes())));
    }
    let c4 = s.commit_files("main", &files, "copy");
    let reg = load(&mut loader, &repo, &c4);
    let copied = &reg.models[copy];
    assert_eq!(copied.name, copy);
    assert!(copied
        .versions
        .values()
        .all(|v| v.path.starts_with(&format!("models/{copy}/"))));
    assert!(
        copied
            .diagnostics
            .iter()
            .any(|d| d.message.contains("does not match the folder name")),
        "{:?}",
        copied.diagnostics
    );
    assert!(reg.models[&m0].diagnostics.is_empty());
    same_content(&reg, &fresh(&repo, &c4));

    // Going back to an older revision gives exactly what a fresh loader sees there.
    let back = load(&mut loader, &repo, &base);
    same_content(&back, &first);
    same_content(&back, &fresh(&repo, &base));
}

#[test]
fn broken_manifests_stay_broken_across_reloads() {
    let mut s = Synth::build(3, 3);
    let repo = Repository::open(s.path()).unwrap();
    let mut loader = Loader::new();
    let m1 = Synth::model_name(1);
    let broken = format!("models/{m1}/versions/2.yaml");
    let c1 = s.commit_files(
        "main",
        &[(&broken, Some(b"model: x\nstage: [unclosed\n"))],
        "break",
    );
    let reg = load(&mut loader, &repo, &c1);
    let d: Vec<_> = reg
        .load_diagnostics()
        .into_iter()
        .filter(|d| d.file == broken)
        .collect();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].line.is_some() && d[0].column.is_some(), "{d:?}");

    // Another version of the same model changes: the broken blob is not parsed again, and its
    // diagnostic is still reported.
    let c2 = s.set_stage(1, 1, "development");
    let reg2 = load(&mut loader, &repo, &c2);
    assert_eq!(loader.stats.parsed, 1);
    let d2: Vec<_> = reg2
        .load_diagnostics()
        .into_iter()
        .filter(|d| d.file == broken)
        .collect();
    assert_eq!(d, d2);
}

/// A tiny deterministic generator for the fuzz-ish test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn garbage_and_truncated_manifests_never_panic_and_are_located() {
    let mut s = Synth::build(2, 3);
    let repo = Repository::open(s.path()).unwrap();
    let valid = s.manifest_text("main", 0, 3);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let tokens: [&[u8]; 16] = [
        b":",
        b": ",
        b"\n",
        b"\n  ",
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b"'",
        b"#",
        b"- ",
        b"&a ",
        b"*a",
        b"\xff\xfe",
        b"\t",
    ];
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..300 {
        let mut bytes = valid.as_bytes().to_vec();
        match i % 4 {
            // Truncated at a random point.
            0 => bytes.truncate(rng.below(bytes.len())),
            // Random bytes.
            1 => bytes = (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
            // Tokens spliced in.
            _ => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len() + 1);
                    let t = tokens[rng.below(tokens.len())];
                    bytes.splice(at..at, t.iter().copied());
                }
            }
        }
        files.push((format!("models/fuzz/versions/{i}.yaml"), bytes));
    }
    files.push(("models/fuzz/versions/big.yaml".into(), vec![b'#'; 70_000]));
    files.push(("models/fuzz/versions/empty.yaml".into(), Vec::new()));
    files.push(("models/fuzz/model.yaml".into(), b"name: [fuzz".to_vec()));
    let refs: Vec<(&str, Option<&[u8]>)> = files
        .iter()
        .map(|(p, b)| (p.as_str(), Some(b.as_slice())))
        .collect();
    let c = s.commit_files("main", &refs, "fuzz");

    let mut loader = Loader::new();
    let reg = load(&mut loader, &repo, &c);
    let diags = reg.load_diagnostics();
    let fuzz = &reg.models["fuzz"];
    for (path, bytes) in &files {
        let label = path.rsplit('/').next().unwrap().trim_end_matches(".yaml");
        let mine: Vec<_> = diags.iter().filter(|d| &d.file == path).collect();
        let parsed = fuzz.versions.values().any(|v| &v.path == path);
        if !parsed {
            assert!(!mine.is_empty(), "{path}: neither parsed nor diagnosed");
        }
        for d in &mine {
            assert!(!d.message.is_empty());
            // YAML and schema errors carry a line and column; only whole-file problems
            // (encoding, size, emptiness, name checks) may not.
            let whole_file = ["UTF-8", "bytes", "empty", "does not match"]
                .iter()
                .any(|w| d.message.contains(w));
            assert!(
                whole_file || (d.line.is_some() && d.column.is_some()),
                "{path} ({label}): unlocated diagnostic {d:?} for {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    let located = diags.iter().filter(|d| d.line.is_some()).count();
    assert!(
        located > 150,
        "only {located} located diagnostics of {}",
        diags.len()
    );
    // A warm reload of the same commit agrees and parses nothing.
    let again = load(&mut loader, &repo, &c);
    assert_eq!(loader.stats.parsed, 0);
    assert_eq!(again.load_diagnostics(), diags);
    same_content(&again, &fresh(&repo, &c));
}

#[test]
fn alternating_revisions_with_added_and_removed_folders_parse_nothing_new() {
    let mut s = Synth::build(80, 3);
    let repo = Repository::open(s.path()).unwrap();
    let a = s.head();
    // B: a new folder sorting first (shifts every position), one folder deleted, one changed.
    let new_model = "aaa-new";
    let v1 = s
        .manifest_text("main", 0, 1)
        .replace(&Synth::model_name(0), new_model);
    let yaml = format!("name: {new_model}\ndescription: new\nowners: [alice@acme.com]\n");
    let m3 = Synth::model_name(3);
    let mut files: Vec<(String, Option<Vec<u8>>)> = vec![
        (
            format!("models/{new_model}/model.yaml"),
            Some(yaml.into_bytes()),
        ),
        (
            format!("models/{new_model}/versions/1.yaml"),
            Some(v1.into_bytes()),
        ),
        (format!("models/{m3}/model.yaml"), None),
    ];
    for v in 1..=3 {
        files.push((format!("models/{m3}/versions/{v}.yaml"), None));
    }
    let refs: Vec<(&str, Option<&[u8]>)> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_deref()))
        .collect();
    s.commit_files("main", &refs, "add and remove folders");
    let b = s.set_stage(7, 1, "development");

    let mut loader = Loader::new();
    load(&mut loader, &repo, &a);
    let first_b = load(&mut loader, &repo, &b);
    assert_eq!(
        loader.stats.parsed, 2,
        "the new folder's and model 7's changed version"
    );
    assert!(first_b.models.contains_key(new_model) && !first_b.models.contains_key(&m3));
    for round in 0..10 {
        for (rev, name) in [(&a, "a"), (&b, "b")] {
            let reg = load(&mut loader, &repo, rev);
            assert_eq!(loader.stats.parsed, 0, "round {round}, revision {name}");
            same_content(&reg, &fresh(&repo, rev));
        }
    }
}
