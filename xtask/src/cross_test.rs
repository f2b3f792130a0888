//! `cargo xtask cross-test aarch64`: cross-builds the inference crate's unit tests (the CPU
//! kernels among them) and the op-matrix for aarch64 Linux, and runs both under qemu-user with
//! the CPU backend. Emulation proves correctness only, never speed.
//!
//! Rustup offers no other target's standard library here, so the build uses Debian's
//! `rustc-web` with `libstd-rust-web-dev:arm64` and links with `aarch64-linux-gnu-gcc`, both
//! passed to cargo in environment variables: nothing machine-specific goes into
//! `.cargo/config.toml`. The executables then run under qemu directly (see [`build`]).
//!
//! qemu runs with `-L /`, so the guest's loader and its `libc.so.6` both come from `libc6:arm64`.
//! With `-L /usr/aarch64-linux-gnu` every threaded binary spun forever without a system call:
//! that prefix supplies the loader of `libc6-arm64-cross` while the host's `/etc/ld.so.cache`
//! supplies the `libc.so.6` of `libc6:arm64`, two builds that disagree on the loader's private
//! `_rtld_global` layout, so the first `pthread_create` walks its stack-cache list from the
//! wrong offset and never returns to the list head.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use serde_json::Value;

use crate::repo_root;

/// Debian's rustc-web installs here; rustup's `rustc` comes first on PATH and has no aarch64 std.
pub const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

#[derive(Clone, Copy, ValueEnum)]
pub enum Target {
    Aarch64,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Aarch64 => "aarch64",
        }
    }

    fn triple(self) -> &'static str {
        match self {
            Target::Aarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// Debian's name for the architecture, as in `libc6:arm64`.
    fn debian_arch(self) -> &'static str {
        match self {
            Target::Aarch64 => "arm64",
        }
    }

    fn gnu_prefix(self) -> &'static str {
        match self {
            Target::Aarch64 => "aarch64-linux-gnu",
        }
    }

    fn loader(self) -> &'static str {
        match self {
            Target::Aarch64 => "/lib/ld-linux-aarch64.so.1",
        }
    }

    fn qemu(self) -> &'static str {
        match self {
            Target::Aarch64 => "qemu-aarch64",
        }
    }

    /// The `CARGO_TARGET_<TRIPLE>_` prefix of cargo's per-target environment variables.
    fn cargo_env(self, key: &str) -> String {
        let triple = self.triple().to_uppercase().replace('-', "_");
        format!("CARGO_TARGET_{triple}_{key}")
    }
}

pub struct Options {
    pub target: Target,
    pub install: bool,
    pub cpu: Option<String>,
    pub kernel_paths: Vec<String>,
    pub rustc: PathBuf,
    pub op_matrix_args: Vec<String>,
}

pub fn run(opts: &Options) -> Result<bool> {
    let target = opts.target;
    let missing = missing_packages(opts)?;
    if !missing.is_empty() {
        let commands = apt_commands(target, &missing);
        if !opts.install {
            eprintln!(
                "cross-test: missing Debian packages: {}; install them with:",
                missing.join(" ")
            );
            for c in &commands {
                eprintln!("  {}", c.join(" "));
            }
            eprintln!(
                "or run `cargo xtask cross-test {} --install`",
                target.name()
            );
            return Ok(false);
        }
        for c in &commands {
            println!("cross-test: {}", c.join(" "));
            let status = Command::new(&c[0])
                .args(&c[1..])
                .status()
                .with_context(|| format!("running {}", c[0]))?;
            if !status.success() {
                bail!("`{}` failed ({status})", c.join(" "));
            }
        }
        let still = missing_packages(opts)?;
        if !still.is_empty() {
            bail!("still missing after installing: {}", still.join(" "));
        }
    }
    check_rustc_version(target, &opts.rustc)?;
    let linker = format!("{}-gcc", target.gnu_prefix());
    let linker = on_path(&linker).with_context(|| format!("{linker} is not on PATH"))?;
    let qemu =
        on_path(target.qemu()).with_context(|| format!("{} is not on PATH", target.qemu()))?;

    let started = Instant::now();
    let built = build(opts, &linker)?;
    let build_time = started.elapsed();

    let mut runner = vec![qemu.into_os_string(), "-L".into(), "/".into()];
    if let Some(cpu) = &opts.cpu {
        runner.extend(["-cpu".into(), cpu.into()]);
    }
    let run = |exe: &Path, dir: &Path, args: &[String], path: Option<&str>| {
        let started = Instant::now();
        let mut cmd = Command::new(&runner[0]);
        cmd.args(&runner[1..]).arg(exe).args(args).current_dir(dir);
        if let Some(path) = path {
            cmd.env(gemma3_interface::kernel_path::ENV, path);
        }
        let status = cmd
            .status()
            .with_context(|| format!("running {} under qemu", exe.display()))?;
        anyhow::Ok((status.success(), started.elapsed()))
    };
    let verdict = |ok: bool| if ok { "ok" } else { "FAILED" };
    // Cargo runs a package's tests in its folder.
    let (tests_ok, tests_time) = run(&built.unit_tests, &repo_root().join("inference"), &[], None)?;
    let mut args = vec!["--backend".to_string(), "cpu".to_string()];
    args.extend(opts.op_matrix_args.iter().cloned());
    let mut matrix_ok = true;
    let mut matrices = Vec::new();
    for path in &opts.kernel_paths {
        println!("cross-test: the op-matrix on the `{path}` kernels");
        let (ok, time) = run(&built.op_matrix, repo_root(), &args, Some(path))?;
        matrix_ok &= ok;
        matrices.push(format!("{path} {} ({})", verdict(ok), secs(time)));
    }

    let runner: Vec<_> = runner.iter().map(|a| a.to_string_lossy()).collect();
    println!(
        "cross-test {}: build {}, unit tests {} ({}), op-matrix on the cpu: {}; under `{}`",
        target.name(),
        secs(build_time),
        secs(tests_time),
        verdict(tests_ok),
        matrices.join(", "),
        runner.join(" "),
    );
    Ok(tests_ok && matrix_ok)
}

/// The executables of a cross build.
struct Built {
    unit_tests: PathBuf,
    op_matrix: PathBuf,
}

/// Builds the inference crate's unit tests and the op-matrix in one cargo invocation: two
/// would resolve features apart (the tests' dev-dependencies turn on more of `log` and
/// `tracing-core`) and build Candle and everything above it twice. Naming op-matrix's `cli`
/// test is what makes cargo build the op-matrix binary alongside the tests.
fn build(opts: &Options, linker: &Path) -> Result<Built> {
    let target = opts.target;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "test",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .args([
            "-p",
            "inference",
            "--lib",
            "-p",
            "op-matrix",
            "--test",
            "cli",
        ])
        .args(["--target", target.triple()])
        .arg("--target-dir")
        .arg(repo_root().join("target/cross-test").join(target.name()))
        .env("RUSTC", &opts.rustc)
        .env(target.cargo_env("LINKER"), linker)
        .stdout(Stdio::piped())
        .spawn()
        .context("running cargo test --no-run")?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    let (mut unit_tests, mut op_matrix) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's messages")?;
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let Some(exe) = msg["executable"].as_str() else {
            continue;
        };
        let test = msg["profile"]["test"].as_bool() == Some(true);
        let kinds = &msg["target"]["kind"];
        match msg["target"]["name"].as_str() {
            Some("inference") if test && kinds[0] == "lib" => unit_tests = Some(exe.into()),
            Some("op-matrix") if !test && kinds[0] == "bin" => op_matrix = Some(exe.into()),
            _ => {}
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("the cross build failed ({status})");
    }
    Ok(Built {
        unit_tests: unit_tests.context("cargo built no inference unit tests")?,
        op_matrix: op_matrix.context("cargo built no op-matrix binary")?,
    })
}

/// The Debian packages whose files are not here, in install order.
fn missing_packages(opts: &Options) -> Result<Vec<String>> {
    let target = opts.target;
    let arch = target.debian_arch();
    let sysroot = rustc_sysroot(&opts.rustc);
    let mut missing = Vec::new();
    let mut need = |present: bool, package: String| {
        if !present {
            missing.push(package);
        }
    };
    need(sysroot.is_some(), "rustc-web".into());
    need(
        sysroot.is_some_and(|s| s.join("lib/rustlib").join(target.triple()).is_dir()),
        format!("libstd-rust-web-dev:{arch}"),
    );
    need(
        on_path(&format!("{}-gcc", target.gnu_prefix())).is_some(),
        format!("gcc-{}", target.gnu_prefix()),
    );
    need(
        Path::new("/usr")
            .join(target.gnu_prefix())
            .join("lib/crt1.o")
            .exists(),
        format!("libc6-dev-{arch}-cross"),
    );
    need(Path::new(target.loader()).exists(), format!("libc6:{arch}"));
    need(on_path(target.qemu()).is_some(), "qemu-user".into());
    Ok(missing)
}

/// The commands that install `packages`, with `sudo` unless this is root.
fn apt_commands(target: Target, packages: &[String]) -> Vec<Vec<String>> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let sudo = |words: &[&str]| -> Vec<String> {
        let sudo = (!root).then_some("sudo");
        sudo.into_iter()
            .chain(words.iter().copied())
            .map(String::from)
            .collect()
    };
    let mut commands = Vec::new();
    if !foreign_architectures().contains(&target.debian_arch().to_string()) {
        commands.push(sudo(&["dpkg", "--add-architecture", target.debian_arch()]));
    }
    commands.push(sudo(&["apt-get", "update"]));
    let mut install = sudo(&["apt-get", "install", "-y", "--no-install-recommends"]);
    install.extend(packages.iter().cloned());
    commands.push(install);
    commands
}

fn foreign_architectures() -> Vec<String> {
    Command::new("dpkg")
        .arg("--print-foreign-architectures")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn rustc_sysroot(rustc: &Path) -> Option<PathBuf> {
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Fails unless `rustc` is at least the workspace's `rust-version`.
fn check_rustc_version(target: Target, rustc: &Path) -> Result<()> {
    let manifest = repo_root().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let doc: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", manifest.display()))?;
    let wanted = doc
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("rust-version"))
        .and_then(|v| v.as_str())
        .context("the workspace sets no rust-version")?;
    let out = Command::new(rustc)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", rustc.display()))?;
    let line = String::from_utf8_lossy(&out.stdout);
    let have = line
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("unexpected `rustc --version` output: {line:?}"))?;
    if version(have)? < version(wanted)? {
        bail!(
            "{} is {have}, older than the workspace's rust-version {wanted}; \
             bookworm-security carries newer rustc-web builds: apt-get update && \
             apt-get install rustc-web libstd-rust-web-dev:{}",
            rustc.display(),
            target.debian_arch()
        );
    }
    Ok(())
}

/// `1.85` or `1.96.0` as comparable numbers (a `-beta.1` style suffix is ignored).
fn version(v: &str) -> Result<Vec<u32>> {
    v.split('-')
        .next()
        .unwrap_or(v)
        .split('.')
        .map(|n| n.parse().with_context(|| format!("bad version {v:?}")))
        .collect()
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn secs(d: Duration) -> String {
    format!("{:.0} s", d.as_secs_f64())
}
