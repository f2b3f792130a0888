//! Child processes for the bench: output captured and logged to a file, wall time, and the
//! child's own peak RSS from `wait4`'s rusage (so no second tool wraps the measured process).

use std::ffi::{OsStr, OsString};
use std::io::{ErrorKind, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A child that exited successfully.
pub struct Finished {
    pub stdout: String,
    pub wall: Duration,
    pub peak_rss_bytes: u64,
    /// Cores that everything else on the machine kept busy, on average, while the child ran:
    /// the machine's busy CPU time (from /proc/stat) less the child's own, over the wall time.
    /// Near 0 on a quiet machine; the child's numbers are suspect when it approaches 1.
    pub others_cores: Option<f64>,
}

/// Busy CPU seconds of the whole machine so far (user, nice, system, irq, softirq, steal).
pub fn machine_busy_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| v.get(i).copied().unwrap_or(0))
        .sum::<u64>();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| busy as f64 / hz as f64)
}

fn cpu_s(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// The program that runs children for us (`xtask rusage-exec`), once `use_helper` set it.
static HELPER: OnceLock<PathBuf> = OnceLock::new();

/// Runs every later child through `helper rusage-exec`, so its peak RSS is its own.
///
/// A child's `ru_maxrss` starts from the high-water mark of the address space it was spawned
/// from (vfork shares it, fork copies it), so a child of this process would report at least
/// this process's own peak (a gigabyte buffer of the bandwidth test, say). The helper is a
/// fresh exec of a small program: its children start from a few MB.
pub fn use_helper(helper: PathBuf) {
    let _ = HELPER.set(helper);
}

/// `xtask rusage-exec OUT PROGRAM ARGS…`: runs the program with this process's stdio and
/// environment, writes the child's peak RSS in KiB to OUT, and exits as the child did.
pub fn rusage_exec(out: &Path, program: &OsStr, args: &[OsString]) -> Result<ExitCode> {
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    // SAFETY: rusage is plain old data; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer; RUSAGE_CHILDREN covers the one child waited for above.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    std::fs::write(out, usage.ru_maxrss.to_string())
        .with_context(|| format!("writing {}", out.display()))?;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// `cmd` wrapped in the helper, with its environment and folder carried over.
fn wrapped(cmd: &Command, helper: &Path, rss_file: &Path) -> Command {
    let mut w = Command::new(helper);
    w.arg("rusage-exec")
        .arg(rss_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => w.env(k, v),
            None => w.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        w.current_dir(dir);
    }
    w
}

/// Runs `cmd` to completion. `what` names the step in errors, `log` receives the command line
/// and both streams, and `hint` tells the user what to do when the step fails.
pub fn run(cmd: &mut Command, what: &str, log: &Path, hint: &str) -> Result<Finished> {
    let line = command_line(cmd);
    tracing::debug!("{what}: {line}");
    let rss_file = log.with_extension("maxrss");
    let _ = std::fs::remove_file(&rss_file);
    let mut wrapper = HELPER.get().map(|h| wrapped(cmd, h, &rss_file));
    let cmd = wrapper.as_mut().unwrap_or(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let busy_before = machine_busy_s();
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::NotFound => bail!(
            "{what}: {} not found; {hint}",
            cmd.get_program().to_string_lossy()
        ),
        Err(e) => return Err(e).with_context(|| format!("{what}: starting {line}")),
    };
    let pid = child.id() as libc::pid_t;
    let drain = |stream: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut s) = stream {
                let _ = s.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let (status, rusage) = wait4(pid).with_context(|| format!("{what}: waiting for {line}"))?;
    // The child is reaped: `child` must not be waited on again (dropping it does not wait).
    drop(child);
    let wall = started.elapsed();
    // wait4's rusage covers the child and the children it waited for (the helper's one).
    let child_cpu = cpu_s(rusage.ru_utime) + cpu_s(rusage.ru_stime);
    let others_cores = match (busy_before, machine_busy_s()) {
        (Some(a), Some(b)) if wall.as_secs_f64() > 0.0 => {
            Some(((b - a - child_cpu) / wall.as_secs_f64()).max(0.0))
        }
        _ => None,
    };
    let rss_kib = match std::fs::read_to_string(&rss_file) {
        Ok(text) => text.trim().parse().unwrap_or(0),
        Err(_) => rusage.ru_maxrss.max(0) as u64,
    };
    let _ = std::fs::remove_file(&rss_file);
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    let text = format!(
        "$ {line}\n# {status}, {:.2} s, peak RSS {} KiB, CPU {:.2} s, other processes {:.2} cores\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        wall.as_secs_f64(),
        rss_kib,
        child_cpu,
        others_cores.unwrap_or(f64::NAN)
    );
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(log, text).with_context(|| format!("writing {}", log.display()))?;
    if !status.success() {
        bail!(
            "{what} failed ({status}):\n{}\nfull output: {}\n{hint}",
            tail(&stderr, &stdout, 15),
            log.display()
        );
    }
    Ok(Finished {
        stdout,
        wall,
        peak_rss_bytes: rss_kib * 1024,
        others_cores,
    })
}

/// How a child ended, as far as the error messages need.
struct Status(libc::c_int);

impl Status {
    fn success(&self) -> bool {
        libc::WIFEXITED(self.0) && libc::WEXITSTATUS(self.0) == 0
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if libc::WIFEXITED(self.0) {
            let code = libc::WEXITSTATUS(self.0);
            // The helper exits 128 + N for a child killed by signal N.
            let hint = if code == 128 + libc::SIGKILL {
                " (killed: out of memory?)"
            } else {
                ""
            };
            write!(f, "exit status {code}{hint}")
        } else if libc::WIFSIGNALED(self.0) {
            let sig = libc::WTERMSIG(self.0);
            let hint = if sig == libc::SIGKILL {
                " (SIGKILL: out of memory?)"
            } else {
                ""
            };
            write!(f, "killed by signal {sig}{hint}")
        } else {
            write!(f, "wait status {}", self.0)
        }
    }
}

fn wait4(pid: libc::pid_t) -> Result<(Status, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; wait4 fills it.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child, and both out-pointers are valid for the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
        if r == pid {
            return Ok((Status(status), rusage));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            return Err(e).context("wait4");
        }
    }
}

/// The last `n` lines of stderr, or of stdout when stderr is empty.
fn tail(stderr: &str, stdout: &str, n: usize) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The command as a shell line, for logs (long arguments shortened).
pub fn command_line(cmd: &Command) -> String {
    let quote = |s: &OsStr| {
        let s = s.to_string_lossy();
        let s = if s.len() > 120 {
            let head: String = s.chars().take(100).collect();
            format!("{head}…({} bytes)", s.len())
        } else {
            s.into_owned()
        };
        if s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c))
        {
            s
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    std::iter::once(quote(cmd.get_program()))
        .chain(cmd.get_args().map(quote))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Fails with a clear message unless the file system holding `dir` has `bytes` free.
pub fn ensure_free_space(dir: &Path, bytes: u64, what: &str) -> Result<()> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .with_context(|| format!("{} has a NUL byte", dir.display()))?;
    // SAFETY: statvfs is plain old data that the call fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("checking the free space of {}", dir.display()));
    }
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    let margin = 512 << 20;
    if free < bytes + margin {
        bail!(
            "{what} needs {:.1} GB in {}, and only {:.1} GB are free: free some space (the bench's caches are in target/bench) and run again",
            bytes as f64 / 1e9,
            dir.display(),
            free as f64 / 1e9
        );
    }
    Ok(())
}

/// A log file path under `dir` for a step name.
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{safe}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_timed_and_its_peak_rss_read() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("echo.log");
        let done = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2"]),
            "echo",
            &log,
            "",
        )
        .unwrap();
        assert_eq!(done.stdout, "out\n");
        assert!(done.peak_rss_bytes > 0);
        assert!(done.others_cores.is_some_and(|c| c >= 0.0));
        assert!(std::fs::read_to_string(&log)
            .unwrap()
            .contains("--- stderr\nerr"));
    }

    #[test]
    fn a_failing_child_names_the_step_the_output_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("fail.log");
        let err = run(
            Command::new("sh").args(["-c", "echo boom >&2; exit 3"]),
            "the step",
            &log,
            "do this",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.starts_with("the step failed (exit status 3)"), "{err}");
        assert!(err.contains("| boom") && err.ends_with("do this"), "{err}");
        let missing = run(
            &mut Command::new("/nonexistent/tool"),
            "tool",
            &log,
            "install it",
        )
        .err()
        .unwrap()
        .to_string();
        assert_eq!(missing, "tool: /nonexistent/tool not found; install it");
    }
}
