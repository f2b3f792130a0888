//! `cargo xtask cuda-toolkit`: a CUDA 13.0 toolkit from PyPI wheels, for building Candle's
//! CUDA backend on a machine with no GPU and no system toolkit (see CUDA.md in the shared notes).
//!
//! The layout under the cache folder is `venv/` (the wheels) and `root/` (a CUDA root that
//! Candle's build scripts and the linker understand). Every step is skipped when already done.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

use crate::repo_root;

/// The wheels, pinned: 13.0 so the embedded PTX is not newer than the driver on the GPU machine
/// (580, CUDA 13.0); a newer nvcc emits PTX that driver rejects.
pub const WHEELS: &[&str] = &[
    "nvidia-cuda-nvcc==13.0.88",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-nvrtc==13.0.88",
    "nvidia-cublas==13.0.2.14",
    "nvidia-curand==10.4.0.35",
    "nvidia-cuda-crt==13.0.88",
    "nvidia-nvvm==13.0.88",
    "nvidia-cuda-cccl==13.0.85",
];

/// Libraries the linker asks for by their unversioned names, which the wheels don't ship.
const UNVERSIONED: &[&str] = &[
    "libcudart.so",
    "libnvrtc.so",
    "libcublas.so",
    "libcublasLt.so",
    "libcurand.so",
];

/// What cudarc's build reads to pick its bindings: 13.0, matching the wheels.
const CUDARC_CUDA_VERSION: &str = "13000";

/// A ready toolkit: its CUDA root and the compute capability to build kernels for.
pub struct Toolkit {
    pub root: PathBuf,
    pub compute_cap: String,
}

impl Toolkit {
    /// The environment a `cargo build --features cuda` needs. `CUDA_COMPUTE_CAP` is required
    /// because there is no GPU here for the kernels' build script to detect.
    pub fn env(&self) -> Result<Vec<(&'static str, OsString)>> {
        let root = self.root.as_os_str().to_owned();
        let bin = self.root.join("bin");
        let path = std::env::var_os("PATH").unwrap_or_default();
        // The toolkit's bin first, and once, so nvcc is ours whatever else is on PATH.
        let rest = std::env::split_paths(&path).filter(|p| p != &bin);
        let path = std::env::join_paths(std::iter::once(bin.clone()).chain(rest))
            .context("building PATH with the toolkit's bin")?;
        let lib = std::env::join_paths([self.root.join("lib64"), self.root.join("lib64/stubs")])
            .context("building LIBRARY_PATH")?;
        Ok(vec![
            ("CUDA_HOME", root.clone()),
            ("CUDA_PATH", root),
            ("PATH", path),
            ("CUDA_COMPUTE_CAP", self.compute_cap.clone().into()),
            ("CUDARC_CUDA_VERSION", CUDARC_CUDA_VERSION.into()),
            ("LIBRARY_PATH", lib),
        ])
    }
}

/// The cache folder used when none is given: under `target/`, so it is git-ignored.
pub fn default_dir() -> PathBuf {
    repo_root().join("target/cuda-toolkit")
}

/// `cargo xtask cuda-toolkit`: ensures the toolkit and prints the environment to build with.
pub fn run(dir: Option<&Path>, compute_cap: &str) -> Result<bool> {
    let dir = dir.map_or_else(default_dir, Path::to_path_buf);
    let toolkit = ensure(&dir, compute_cap)?;
    println!("# CUDA toolkit ready; build with this environment:");
    for (key, value) in toolkit.env()? {
        if key == "PATH" {
            // The caller's own PATH, not this process's copy of it.
            let bin = shell_quote(&toolkit.root.join("bin").to_string_lossy());
            println!("export PATH={bin}:\"$PATH\"");
        } else {
            println!("export {key}={}", shell_quote(&value.to_string_lossy()));
        }
    }
    Ok(true)
}

/// Makes the venv, the CUDA root and the libcuda stub under `dir`, skipping what exists.
pub fn ensure(dir: &Path, compute_cap: &str) -> Result<Toolkit> {
    if compute_cap.is_empty() || !compute_cap.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--compute-cap must be digits such as 90 (sm_90), not {compute_cap:?}");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let venv = dir.join("venv");
    let python = ensure_venv(&venv)?;
    ensure_wheels(&venv, &python)?;
    let cu13 = cu13_dir(&venv, &python)?;
    let root = dir.join("root");
    ensure_root(&root, &cu13)?;
    ensure_stub(&dir, &root)?;
    Ok(Toolkit {
        root,
        compute_cap: compute_cap.to_owned(),
    })
}

fn ensure_venv(venv: &Path) -> Result<PathBuf> {
    let python = venv.join("bin/python");
    if python.exists() {
        return Ok(python);
    }
    eprintln!("creating a Python venv in {}", venv.display());
    let mut cmd = Command::new("python3");
    cmd.arg("-m").arg("venv").arg(venv);
    match cmd.output() {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!(
                "python3 not found: install Python 3 (with its venv module) to get the CUDA wheels"
            )
        }
        Err(e) => Err(e).context("running python3 -m venv"),
        Ok(out) => check(&out, "python3 -m venv (on Debian, install python3-venv)"),
    }?;
    if !python.exists() {
        bail!("python3 -m venv made no {}", python.display());
    }
    Ok(python)
}

/// Installs the pinned wheels once; a marker holding the pins records that it was done.
fn ensure_wheels(venv: &Path, python: &Path) -> Result<()> {
    let marker = venv.join("xtask-wheels.txt");
    let want = WHEELS.join("\n") + "\n";
    if std::fs::read_to_string(&marker).is_ok_and(|have| have == want) {
        return Ok(());
    }
    eprintln!("installing the CUDA 13.0 wheels (about 650 MB to download, 1.2 GB installed)");
    let status = Command::new(python)
        .args(["-m", "pip", "install", "--no-input"])
        .args(WHEELS)
        .status()
        .with_context(|| format!("running {} -m pip install", python.display()))?;
    if !status.success() {
        bail!("pip install of the CUDA wheels failed ({status})");
    }
    std::fs::write(&marker, want).with_context(|| format!("writing {}", marker.display()))?;
    Ok(())
}

/// Where the wheels put the toolkit: `site-packages/nvidia/cu13`, asked of the venv's Python
/// because the `pythonX.Y` part of the path depends on the interpreter.
fn cu13_dir(venv: &Path, python: &Path) -> Result<PathBuf> {
    let out = Command::new(python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .with_context(|| format!("asking {} for its site-packages", python.display()))?;
    check(&out, "finding the venv's site-packages")?;
    let purelib = String::from_utf8(out.stdout).context("site-packages path is not UTF-8")?;
    let cu13 = Path::new(purelib.trim()).join("nvidia/cu13");
    for sub in ["bin/nvcc", "include/cuda.h", "nvvm", "lib"] {
        if !cu13.join(sub).exists() {
            bail!(
                "{} is missing from the wheels; delete {} and run again",
                cu13.join(sub).display(),
                venv.display()
            );
        }
    }
    Ok(cu13)
}

/// The CUDA root: `bin`, `include` and `nvvm` link into the wheels; `lib64` links every shared
/// library and adds the unversioned names the linker looks for.
fn ensure_root(root: &Path, cu13: &Path) -> Result<()> {
    let lib64 = root.join("lib64");
    std::fs::create_dir_all(&lib64).with_context(|| format!("creating {}", lib64.display()))?;
    for sub in ["bin", "include", "nvvm"] {
        link(&cu13.join(sub), &root.join(sub))?;
    }
    let lib = cu13.join("lib");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&lib).with_context(|| format!("listing {}", lib.display()))? {
        let entry = entry.with_context(|| format!("listing {}", lib.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(".so.") {
            link(&entry.path(), &lib64.join(&name))?;
            names.push(name);
        }
    }
    for unversioned in UNVERSIONED {
        // The shortest versioned name is the soname, e.g. libcublas.so.13.
        let prefix = format!("{unversioned}.");
        let target = names
            .iter()
            .filter(|n| n.starts_with(&prefix))
            .min_by_key(|n| n.len())
            .with_context(|| format!("no {unversioned}.* in {}", lib.display()))?;
        link(Path::new(target), &lib64.join(unversioned))?;
    }
    Ok(())
}

/// Makes `at` a symlink to `target`, leaving a correct one alone.
fn link(target: &Path, at: &Path) -> Result<()> {
    if std::fs::read_link(at).is_ok_and(|t| t == target) {
        return Ok(());
    }
    if at.symlink_metadata().is_ok() {
        std::fs::remove_file(at).with_context(|| format!("replacing {}", at.display()))?;
    }
    std::os::unix::fs::symlink(target, at)
        .with_context(|| format!("linking {} -> {}", at.display(), target.display()))
}

/// cudarc links `libcuda.so` at build time (its `dynamic-linking` feature) and no wheel ships
/// the driver's stub, so build one that exports every `cu*` function cudarc declares. Its
/// soname is the driver's, so the binary loads the real `libcuda.so.1` at run time.
fn ensure_stub(dir: &Path, root: &Path) -> Result<()> {
    let names = driver_function_names()?;
    let source: String = std::iter::once(
        "/* Link stub for libcuda.so; generated by cargo xtask cuda-toolkit. */\n".to_owned(),
    )
    .chain(names.iter().map(|n| format!("void {n}(void) {{}}\n")))
    .collect();
    let stubs = root.join("lib64/stubs");
    let stub = stubs.join("libcuda.so");
    let c_file = dir.join("libcuda-stub.c");
    if stub.exists() && std::fs::read_to_string(&c_file).is_ok_and(|have| have == source) {
        return Ok(());
    }
    std::fs::create_dir_all(&stubs).with_context(|| format!("creating {}", stubs.display()))?;
    std::fs::write(&c_file, &source).with_context(|| format!("writing {}", c_file.display()))?;
    eprintln!(
        "building the libcuda.so link stub ({} functions)",
        names.len()
    );
    let out = Command::new("gcc")
        .args(["-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o"])
        .arg(&stub)
        .arg(&c_file)
        .output();
    match out {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!("gcc not found: a C compiler is needed for the libcuda.so stub (and by nvcc)")
        }
        Err(e) => Err(e).context("running gcc"),
        Ok(out) => check(&out, "gcc (building the libcuda.so stub)"),
    }
}

/// The `cu*` driver functions of every cudarc in the cargo registry. Every version's names
/// go in: an extra symbol in a stub is harmless, a missing one fails the link.
fn driver_function_names() -> Result<BTreeSet<String>> {
    let mut files = cudarc_sys_files()?;
    if files.is_empty() {
        // cudarc is an optional dependency, so it is not unpacked until something needs it.
        eprintln!("cudarc is not in the cargo registry yet; running cargo fetch");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .arg("fetch")
            .current_dir(repo_root())
            .status()
            .context("running cargo fetch")?;
        if !status.success() {
            bail!("cargo fetch failed ({status})");
        }
        files = cudarc_sys_files()?;
    }
    if files.is_empty() {
        bail!(
            "no cudarc-*/src/driver/sys/mod.rs under {}; is cudarc in Cargo.lock?",
            registry_src()?.display()
        );
    }
    let mut names = BTreeSet::new();
    for file in &files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        names.extend(text.lines().filter_map(|line| {
            let rest = line.trim_start().strip_prefix("pub unsafe fn cu")?;
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            Some(format!("cu{}", &rest[..len]))
        }));
    }
    if names.is_empty() {
        bail!("found no `pub unsafe fn cu*` in {files:?}; has cudarc's layout changed?");
    }
    Ok(names)
}

fn registry_src() -> Result<PathBuf> {
    let cargo_home = match std::env::var_os("CARGO_HOME") {
        Some(home) => PathBuf::from(home),
        None => PathBuf::from(std::env::var_os("HOME").context("neither CARGO_HOME nor HOME set")?)
            .join(".cargo"),
    };
    Ok(cargo_home.join("registry/src"))
}

/// `registry/src/<index>/cudarc-<version>/src/driver/sys/mod.rs`, for every index and version.
fn cudarc_sys_files() -> Result<Vec<PathBuf>> {
    let src = registry_src()?;
    let mut files = Vec::new();
    let Ok(indexes) = std::fs::read_dir(&src) else {
        return Ok(files);
    };
    for index in indexes {
        let index = index.with_context(|| format!("listing {}", src.display()))?;
        let Ok(crates) = std::fs::read_dir(index.path()) else {
            continue;
        };
        for krate in crates {
            let krate = krate.with_context(|| format!("listing {}", index.path().display()))?;
            if !krate.file_name().to_string_lossy().starts_with("cudarc-") {
                continue;
            }
            let file = krate.path().join("src/driver/sys/mod.rs");
            if file.is_file() {
                files.push(file);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Turns a failed command's output into an error that shows its stderr.
fn check(out: &Output, what: &str) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Single-quotes a value for `export` lines a shell can `eval`.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-.:,+=@%".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
