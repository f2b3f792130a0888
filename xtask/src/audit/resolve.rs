//! Feature resolution through Cargo itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::Build;

/// A workspace member with a binary target, and the features it defines.
pub struct Package {
    pub name: String,
    pub features: BTreeSet<String>,
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs `cmd` and returns its stdout, or an error with its stderr.
pub fn output(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

pub fn metadata(manifest: &Path, no_deps: bool) -> Result<Value> {
    metadata_with(manifest, if no_deps { &["--no-deps"] } else { &[] })
}

/// `cargo metadata` with extra arguments.
pub fn metadata_with(manifest: &Path, args: &[&str]) -> Result<Value> {
    let mut cmd = cargo();
    cmd.args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(manifest)
        .args(args);
    let text = output(cmd, "cargo metadata")?;
    Ok(serde_json::from_str(&text)?)
}

pub fn binary_packages(manifest: &Path) -> Result<Vec<Package>> {
    let meta = metadata(manifest, true)?;
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut out = Vec::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        let is_member = p["id"].as_str().is_some_and(|id| members.contains(id));
        let is_bin = p["targets"].as_array().into_iter().flatten().any(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|x| x == "bin"))
        });
        if is_member && is_bin {
            out.push(Package {
                name: p["name"].as_str().unwrap_or_default().to_string(),
                features: p["features"]
                    .as_object()
                    .map(|f| f.keys().cloned().collect())
                    .unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

/// The enabled features of every package in one build.
#[derive(Debug, Default)]
pub struct Resolved {
    packages: BTreeMap<String, BTreeSet<String>>,
}

impl Resolved {
    /// Parses `cargo tree --prefix none --format '{p}|{f}'` output.
    pub fn parse(tree: &str) -> Self {
        let mut packages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in tree.lines() {
            let Some((pkg, features)) = line.split_once('|') else {
                continue;
            };
            let Some(name) = pkg.split_whitespace().next() else {
                continue;
            };
            let features = features.trim().trim_end_matches("(*)").trim();
            packages.entry(name.to_string()).or_default().extend(
                features
                    .split(',')
                    .filter(|f| !f.is_empty())
                    .map(str::to_string),
            );
        }
        Self { packages }
    }

    pub fn has(&self, package: &str) -> bool {
        self.packages.contains_key(package)
    }

    pub fn features(&self, package: &str) -> BTreeSet<&str> {
        self.packages
            .get(package)
            .map(|f| f.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

pub fn resolve(manifest: &Path, build: &Build) -> Result<Resolved> {
    let mut cmd = cargo();
    cmd.args([
        "tree",
        "-e",
        "features,normal",
        "--prefix",
        "none",
        "--format",
        "{p}|{f}",
    ])
    .args([
        "--target",
        &build.target,
        "-p",
        &build.package,
        "--manifest-path",
    ])
    .arg(manifest);
    if let Some(f) = &build.features {
        cmd.args(["--features", f]);
    }
    Ok(Resolved::parse(&output(
        cmd,
        &format!("cargo tree for {build}"),
    )?))
}
