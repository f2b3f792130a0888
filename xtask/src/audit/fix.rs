//! The exact Cargo.toml change that fixes a finding, from the workspace's own manifests.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::resolve;

/// The workspace members' manifests as `cargo metadata --no-deps` reports them.
pub struct Manifests {
    packages: Vec<Value>,
}

impl Manifests {
    pub fn read(manifest: &Path) -> Result<Self> {
        let meta = resolve::metadata(manifest, true)?;
        Ok(Self {
            packages: meta["packages"].as_array().cloned().unwrap_or_default(),
        })
    }

    fn package(&self, name: &str) -> Option<&Value> {
        self.packages.iter().find(|p| p["name"] == name)
    }

    /// How to enable `feature` on `dependent` for `package` built with `features`.
    pub fn fix(
        &self,
        package: &str,
        features: Option<&str>,
        dependent: &str,
        feature: &str,
    ) -> String {
        let generic =
            format!("enable `{feature}` on {dependent} wherever candle-core gets `{feature}`");
        let Some(p) = self.package(package) else {
            return generic;
        };
        let path = p["manifest_path"].as_str().unwrap_or("Cargo.toml");
        let deps: Vec<&Value> = p["dependencies"].as_array().into_iter().flatten().collect();
        let is_normal = |d: &&Value| d["kind"].is_null();
        let direct = |name: &str| {
            deps.iter()
                .copied()
                .filter(is_normal)
                .find(|d| d["name"] == name)
        };

        // A package feature that turns the backend on for candle-core: extend that feature.
        if let Some(set) = features {
            let enables = p["features"][set]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str);
            if enables
                .clone()
                .any(|e| e == format!("candle-core/{feature}"))
            {
                let entries: Vec<String> = enables.map(|e| format!("\"{e}\"")).collect();
                let mut fix = format!(
                    "in {path}, [features]: {set} = [{}, \"{dependent}/{feature}\"]",
                    entries.join(", ")
                );
                if direct(dependent).is_none() {
                    fix.push_str(&format!(" (and add {dependent} to [dependencies])"));
                }
                return fix;
            }
            // Forwarded to a workspace member's feature: the fix belongs where candle-core
            // actually gets the backend.
            for entry in enables {
                let Some((member, member_set)) = entry.split_once('/') else {
                    continue;
                };
                if member != package && self.package(member).is_some() {
                    let fix = self.fix(member, Some(member_set), dependent, feature);
                    if fix != generic {
                        return fix;
                    }
                }
            }
        }
        // A dependency declaration that turns it on: enable it next to it, in the same section.
        let Some(core) = deps.iter().copied().filter(is_normal).find(|d| {
            d["name"] == "candle-core"
                && d["features"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == feature))
        }) else {
            return generic;
        };
        let section = match core["target"].as_str() {
            Some(cfg) => format!("[target.'{cfg}'.dependencies]"),
            None => "[dependencies]".to_string(),
        };
        let req = core["req"].as_str().unwrap_or("*");
        match direct(dependent) {
            Some(dep) if dep["target"] == core["target"] => {
                format!("in {path}, {section}: add \"{feature}\" to the features of {dependent}")
            }
            _ => format!(
                "in {path}, add to {section}: {dependent} = {{ version = \"{req}\", features = [\"{feature}\"] }}"
            ),
        }
    }
}
