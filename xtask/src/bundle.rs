//! `cargo xtask bundle --features cuda`: builds `op-matrix` and `gemma3` against the PyPI CUDA
//! toolkit and packs them, with a launcher, into one archive small enough to carry to a GPU
//! machine that has the CUDA libraries and driver but no Rust toolchain.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::{cuda_toolkit, repo_root};

/// The archive's name, and the folder inside it.
const NAME: &str = "gemma3-cuda-bundle";
/// What is carried to the device must fit its 64 MiB limit with the working tree beside it.
const MAX_BYTES: u64 = 60 * 1024 * 1024;
/// The binaries shipped: (package, binary).
const BINARIES: &[(&str, &str)] = &[("op-matrix", "op-matrix"), ("gemma3-cli", "gemma3")];

/// Finds the CUDA 13 libraries and the driver on the target machine, then runs a binary.
const RUN_SH: &str = r#"#!/bin/sh
# Runs a bundled binary with the CUDA 13 libraries it links: ./run.sh <op-matrix|gemma3> [args...]
# Libraries already on LD_LIBRARY_PATH are used as they are; the others are searched for.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ]; then
  echo "usage: $0 <op-matrix|gemma3> [args...]" >&2
  exit 2
fi
bin=$1
shift
case "$bin" in
  op-matrix|gemma3) ;;
  *) echo "run.sh: unknown binary '$bin' (expected op-matrix or gemma3)" >&2; exit 2 ;;
esac

# Places to search, most likely first: PyTorch's venv on the GPU machine, then usual toolkits.
roots="${CUDA_LIB_SEARCH:-/usr/local/cuda /usr/local/cuda-13.0 /usr/local/cuda-13 /opt /usr/local/lib /usr/lib ${HOME:-/root}/.local}"
libpath=${LD_LIBRARY_PATH:-}

on_path() {
  old_ifs=$IFS
  IFS=:
  for d in $libpath; do
    if [ -n "$d" ] && [ -e "$d/$1" ]; then IFS=$old_ifs; return 0; fi
  done
  IFS=$old_ifs
  return 1
}

add_dir() {
  case ":$libpath:" in
    *":$1:"*) ;;
    *) libpath=${libpath:+$libpath:}$1 ;;
  esac
}

for lib in libcublas.so.13 libcublasLt.so.13 libcudart.so.13 libcurand.so.10; do
  on_path "$lib" && continue
  found=""
  for root in $roots; do
    [ -d "$root" ] || continue
    found=$(find "$root" -name "$lib" -print -quit 2>/dev/null || true)
    [ -n "$found" ] && break
  done
  if [ -n "$found" ]; then
    add_dir "$(dirname "$found")"
  else
    echo "run.sh: warning: $lib not found under $roots; set LD_LIBRARY_PATH to its folder" >&2
  fi
done

# The driver library; usually the system loader already knows it.
if ! on_path libcuda.so.1 && [ -e /usr/local/nvidia/lib64/libcuda.so.1 ]; then
  add_dir /usr/local/nvidia/lib64
fi

export LD_LIBRARY_PATH="$libpath"
[ -n "${RUN_SH_VERBOSE:-}" ] && echo "run.sh: LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >&2
exec "$here/$bin" "$@"
"#;

/// `cargo xtask bundle`: toolkit, build, stage, compress, check the size.
pub fn run(features: &str, out: Option<&Path>, compute_cap: &str) -> Result<bool> {
    let root = repo_root();
    let toolkit = cuda_toolkit::ensure(&cuda_toolkit::default_dir(), compute_cap)?;
    let target_dir = root.join("target/cuda");
    let features = package_features(features);

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--features", &features])
        .arg("--target-dir")
        .arg(&target_dir);
    for (package, _) in BINARIES {
        cmd.args(["-p", package]);
    }
    cmd.envs(toolkit.env()?);
    eprintln!(
        "building with --features {features} into {} (a cold build takes over 10 minutes)",
        target_dir.display()
    );
    let started = Instant::now();
    let status = cmd.status().context("running cargo build")?;
    let build_secs = started.elapsed().as_secs();
    if !status.success() {
        eprintln!("cargo build failed after {build_secs} s");
        return Ok(false);
    }
    eprintln!("built in {build_secs} s");

    let stage_parent = target_dir.join("bundle");
    let stage = stage_parent.join(NAME);
    if stage.exists() {
        std::fs::remove_dir_all(&stage).with_context(|| format!("clearing {}", stage.display()))?;
    }
    std::fs::create_dir_all(&stage).with_context(|| format!("creating {}", stage.display()))?;
    for (_, binary) in BINARIES {
        strip(
            &target_dir.join("release").join(binary),
            &stage.join(binary),
        )?;
    }
    let run_sh = stage.join("run.sh");
    std::fs::write(&run_sh, RUN_SH).with_context(|| format!("writing {}", run_sh.display()))?;
    set_executable(&run_sh)?;

    let out = out.map_or_else(|| root.join("artifacts/cuda"), Path::to_path_buf);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let archive = out.join(format!("{NAME}.tar.xz"));
    compress(&stage_parent, &archive)?;

    let bytes = std::fs::metadata(&archive)
        .with_context(|| format!("reading the size of {}", archive.display()))?
        .len();
    let mib = bytes as f64 / (1024.0 * 1024.0);
    println!("{}: {bytes} bytes ({mib:.1} MiB)", archive.display());
    if bytes > MAX_BYTES {
        bail!(
            "{} is {mib:.1} MiB, over the {} MiB a device call can carry",
            archive.display(),
            MAX_BYTES / (1024 * 1024)
        );
    }
    Ok(true)
}

/// Cargo rejects a bare `--features cuda` naming a feature of several selected packages only
/// in some setups; naming it per package works everywhere. `pkg/feat` entries pass through.
fn package_features(features: &str) -> String {
    features
        .split([',', ' '])
        .filter(|f| !f.is_empty())
        .flat_map(|f| {
            if f.contains('/') {
                vec![f.to_owned()]
            } else {
                BINARIES.iter().map(|(p, _)| format!("{p}/{f}")).collect()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Strips into the bundle, keeping the built binary's symbols for local debugging.
fn strip(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(to)
        .arg(from)
        .status();
    match status {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("strip not found: install binutils")
        }
        Err(e) => Err(e).with_context(|| format!("running strip on {}", from.display())),
        Ok(s) if !s.success() => bail!("strip {} failed ({s})", from.display()),
        Ok(_) => Ok(()),
    }
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

/// `tar -cJf` with `xz -9`: its 64 MiB window lets the second binary's copy of the CUDA
/// kernels compress against the first's.
fn compress(stage_parent: &Path, archive: &Path) -> Result<()> {
    let partial = archive.with_extension("xz.partial");
    eprintln!("compressing into {}", archive.display());
    let status = Command::new("tar")
        .env("XZ_OPT", "-9")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-cJf"])
        .arg(&partial)
        .arg("-C")
        .arg(stage_parent)
        .arg(NAME)
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("tar -cJf {} failed ({status})", partial.display());
    }
    std::fs::rename(&partial, archive)
        .with_context(|| format!("moving {} to {}", partial.display(), archive.display()))
}

#[cfg(test)]
mod tests {
    use super::package_features;

    #[test]
    fn features_are_named_per_package() {
        assert_eq!(package_features("cuda"), "op-matrix/cuda,gemma3-cli/cuda");
        assert_eq!(
            package_features("cuda,inference/foo"),
            "op-matrix/cuda,gemma3-cli/cuda,inference/foo"
        );
    }
}
