//! The layer rule, checked on the real dependency graph (`cargo metadata`): the domain reaches no
//! web, database, codec, network or ML crate and no other visprompt crate; adapters never reach
//! the apps. A new dependency that breaks this fails here, not in review.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Names of every package `name` depends on through normal (non-dev, non-build) edges.
fn normal_closure(meta: &Value, name: &str) -> BTreeSet<String> {
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root = names
        .iter()
        .find(|(_, n)| **n == name)
        .map(|(id, _)| *id)
        .expect("package exists");
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(names[dep_id].to_owned()) {
                stack.push(dep_id);
            }
        }
    }
    seen
}

const FORBIDDEN_IN_CORE: &[&str] = &[
    "poem",
    "poem-openapi",
    "hyper",
    "axum",
    "reqwest",
    "surrealdb",
    "surrealdb-core",
    "image",
    "zip",
    "candle-core",
    "webrtc",
    "rumqttc",
    "openh264",
    "tokio",
    "figment",
];

#[test]
fn the_domain_reaches_no_web_database_codec_network_or_ml_crate() {
    let deps = normal_closure(&metadata(), "visprompt-domain");
    let bad: Vec<&str> = FORBIDDEN_IN_CORE
        .iter()
        .copied()
        .filter(|c| deps.contains(*c))
        .collect();
    assert!(bad.is_empty(), "visprompt-domain depends on {bad:?}");
}

#[test]
fn the_domain_depends_on_no_other_visprompt_crate() {
    let deps = normal_closure(&metadata(), "visprompt-domain");
    let ours: Vec<&String> = deps
        .iter()
        .filter(|d| d.starts_with("visprompt-"))
        .collect();
    assert!(ours.is_empty(), "visprompt-domain depends on {ours:?}");
}

/// The runtime sits above the domain and below everything else; it may use an async runtime and
/// serde (for the payload), but no web, database, codec, network or ML crate.
#[test]
fn the_runtime_reaches_only_the_domain_and_no_outside_technology() {
    let deps = normal_closure(&metadata(), "visprompt-runtime");
    let bad: Vec<&str> = FORBIDDEN_IN_CORE
        .iter()
        .copied()
        .filter(|c| *c != "tokio" && deps.contains(*c))
        .collect();
    assert!(bad.is_empty(), "visprompt-runtime depends on {bad:?}");
    let ours: Vec<&String> = deps
        .iter()
        .filter(|d| d.starts_with("visprompt-") && *d != "visprompt-domain")
        .collect();
    assert!(ours.is_empty(), "visprompt-runtime depends on {ours:?}");
}

#[test]
fn adapters_depend_only_on_the_core_never_on_apps_or_each_other() {
    let meta = metadata();
    for adapter in [
        "visprompt-surrealdb",
        "visprompt-image",
        "visprompt-archive",
        "visprompt-media",
        "visprompt-classical",
        "visprompt-sinks",
        "visprompt-vision",
        "visprompt-webrtc",
    ] {
        let deps = normal_closure(&meta, adapter);
        let ours: Vec<&String> = deps
            .iter()
            .filter(|d| {
                d.starts_with("visprompt-") && *d != "visprompt-domain" && *d != "visprompt-runtime"
            })
            .collect();
        assert!(ours.is_empty(), "{adapter} depends on {ours:?}");
    }
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let mut missing = Vec::new();
    let root = workspace_root();
    for dir in ["core", "adapters", "apps", "tests", "tools"] {
        walk(&root.join(dir), &mut |path| {
            let text = std::fs::read_to_string(path).unwrap();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default();
            if !first.starts_with("//!") {
                missing.push(path.strip_prefix(&root).unwrap().display().to_string());
            }
        });
    }
    assert!(
        missing.is_empty(),
        "files without a `//!` doc at the top: {missing:#?}"
    );
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target"
                && name != "node_modules"
                && !name.to_string_lossy().starts_with('.')
            {
                walk(&path, f);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            f(&path);
        }
    }
}
