//! `cargo xtask audit`: the build-configuration check that would have caught the legacy
//! engine's `no metal implementation for rotary-emb` before anything ran.
//!
//! candle-nn (and candle-transformers) compile their kernels for a backend only under their own
//! feature of that name, so a backend feature on candle-core alone builds fine and fails at run
//! time in every custom op. For each target and each feature set a workspace ships, the audit
//! resolves features as Cargo does when it builds each binary package, with
//! `cargo tree -e features --target T` (`cargo metadata --filter-platform` over-reports
//! target-specific features), and fails when the candle crates disagree.

mod fix;
pub mod resolve;

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use anyhow::Result;

pub use resolve::Resolved;

pub const TARGETS: [&str; 5] = [
    "aarch64-apple-darwin",
    "x86_64-apple-darwin",
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-pc-windows-msvc",
];

/// Features that select a backend on candle-core and must be on for the candle crates above it.
pub const BACKEND_FEATURES: [&str; 5] = ["metal", "cuda", "cudnn", "accelerate", "mkl"];

/// Crates that must follow candle-core's backend features when they are in the build.
const DEPENDENTS: [&str; 2] = ["candle-nn", "candle-transformers"];

/// One build: a binary package with a feature set, for a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub package: String,
    /// `None` for the default features.
    pub features: Option<String>,
    pub target: String,
}

impl fmt::Display for Build {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let features = self
            .features
            .as_deref()
            .map_or("default features".to_string(), |x| {
                format!("--features {x}")
            });
        write!(f, "{} ({features}) for {}", self.package, self.target)
    }
}

/// A backend feature on candle-core that a crate above it lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub build: Build,
    pub feature: String,
    pub missing_on: String,
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: candle-core has `{}` but {} does not, so {} is built without its {} code and \
             candle-nn's custom ops (rotary-emb, rms-norm, softmax-last-dim, ...) fail at run time \
             with \"no {} implementation for ...\"",
            self.build, self.feature, self.missing_on, self.missing_on, self.feature, self.feature
        )?;
        write!(f, "  fix: {}", self.fix)
    }
}

/// Audits every binary package of the workspace at `manifest`, for every target, with its
/// default features and each shipped backend feature it defines, plus `extra` feature sets.
pub fn audit(manifest: &Path, extra: &[String]) -> Result<(Vec<Build>, Vec<Finding>)> {
    let packages = resolve::binary_packages(manifest)?;
    let manifests = fix::Manifests::read(manifest)?;
    let mut builds = Vec::new();
    let mut findings = Vec::new();
    for package in &packages {
        let mut sets: Vec<Option<String>> = vec![None];
        for f in ["metal", "cuda"]
            .iter()
            .map(|s| s.to_string())
            .chain(extra.iter().cloned())
        {
            if package.features.contains(&f) {
                sets.push(Some(f));
            }
        }
        for features in &sets {
            for target in TARGETS {
                let build = Build {
                    package: package.name.clone(),
                    features: features.clone(),
                    target: target.to_string(),
                };
                let resolved = resolve::resolve(manifest, &build)?;
                findings.extend(check(&build, &resolved, &manifests));
                builds.push(build);
            }
        }
    }
    Ok((builds, findings))
}

/// The findings of one resolved build.
pub fn check(build: &Build, resolved: &Resolved, manifests: &fix::Manifests) -> Vec<Finding> {
    let core: BTreeSet<&str> = resolved.features("candle-core");
    let mut out = Vec::new();
    for feature in BACKEND_FEATURES.iter().filter(|f| core.contains(**f)) {
        for dependent in DEPENDENTS {
            if resolved.has(dependent) && !resolved.features(dependent).contains(feature) {
                out.push(Finding {
                    build: build.clone(),
                    feature: feature.to_string(),
                    missing_on: dependent.to_string(),
                    fix: manifests.fix(
                        &build.package,
                        build.features.as_deref(),
                        dependent,
                        feature,
                    ),
                });
            }
        }
    }
    out
}
