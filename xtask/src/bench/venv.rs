//! The bench's Python: a cached venv with the pinned packages of the peers
//! (`scripts/bench/requirements.txt`), which runs transformers and llama.cpp's GGUF converter.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use super::process::{self, log_path};
use super::Env;

#[derive(Clone)]
pub struct Venv {
    pub dir: PathBuf,
    pub python: PathBuf,
}

impl Venv {
    /// A program the venv installed (`cmake`), if it did.
    pub fn bin(&self, name: &str) -> Option<PathBuf> {
        let p = self.dir.join("bin").join(name);
        p.exists().then_some(p)
    }

    /// `pip install` into the venv, output to a log.
    pub fn pip(&self, args: &[&std::ffi::OsStr], what: &str, env: &Env) -> Result<()> {
        process::run(
            Command::new(&self.python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--no-input",
                    "--disable-pip-version-check",
                ])
                .args(args),
            what,
            &log_path(&env.logs, what),
            "check that PyPI is reachable (pip's own settings apply), or pass --skip-peers",
        )
        .map(drop)
    }
}

/// The venv under `target/bench/venv` with the pinned requirements; a marker holding the
/// requirements file records what was installed, so a rerun installs nothing.
pub fn ensure(env: &Env) -> Result<Venv> {
    let dir = env.out.join("venv");
    let python = dir.join("bin/python");
    let requirements = env.repo.join("scripts/bench/requirements.txt");
    let want = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let marker = dir.join("bench-requirements.txt");
    let venv = Venv {
        dir: dir.clone(),
        python: python.clone(),
    };
    if python.exists() && std::fs::read_to_string(&marker).is_ok_and(|have| have == want) {
        return Ok(venv);
    }
    if !python.exists() {
        tracing::info!("creating a Python venv in {}", dir.display());
        process::run(
            Command::new("python3").arg("-m").arg("venv").arg(&dir),
            "python3 -m venv",
            &log_path(&env.logs, "venv"),
            "install Python 3 with its venv module (Debian: python3-venv), or pass --skip-peers",
        )?;
    }
    tracing::info!(
        "installing the peers' Python packages (torch, transformers, …; several GB, once) into {}",
        dir.display()
    );
    venv.pip(
        &["-r".as_ref(), requirements.as_os_str()],
        "pip-install-requirements",
        env,
    )?;
    std::fs::write(&marker, want).with_context(|| format!("writing {}", marker.display()))?;
    Ok(venv)
}
