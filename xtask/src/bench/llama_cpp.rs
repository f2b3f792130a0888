//! llama.cpp as a peer, from the sources that PyPI's `llama-cpp-python` source archive bundles
//! (`vendor/llama.cpp`): `llama-bench` built with CMake, for this CPU or for AVX2 only, and the
//! checkpoints converted with its `convert_hf_to_gguf.py`. Everything lives under
//! `target/bench/llama.cpp`; nothing of it enters the repository.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::checkpoints::{Checkpoint, Gguf};
use super::engine::{CheckpointBench, Engine, Measurement, NotReady};
use super::process::{self, log_path};
use super::report::{Metrics, Point};
use super::venv::Venv;
use super::Env;

/// The pinned source archive: name, version, SHA-256.
const SDIST: (&str, &str, &str) = (
    "llama-cpp-python",
    "0.3.36",
    "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
);

/// A build of `llama-bench`, each in its own folder so that they are kept side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LlamaBuild {
    /// For this CPU (GGML_NATIVE).
    Native,
    /// For AVX2, FMA and F16C without AVX-512 or AMX, whatever this CPU has: the peer of our
    /// avx2 kernels.
    Avx2,
}

impl LlamaBuild {
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Avx2 => "avx2",
        }
    }

    /// The native build keeps the folder of the time there was one build, and its cache.
    fn dir(self) -> &'static str {
        match self {
            Self::Native => "build",
            Self::Avx2 => "build-avx2",
        }
    }

    /// The instruction-set options of ggml/CMakeLists.txt. Without GGML_NATIVE ggml takes
    /// the listed ones: x86-64-v3 (SSE4.2, AVX, AVX2, BMI2, FMA, F16C) and nothing later.
    fn isa_options(self) -> &'static [&'static str] {
        match self {
            Self::Native => &["-DGGML_NATIVE=ON"],
            Self::Avx2 => &[
                "-DGGML_NATIVE=OFF",
                "-DGGML_SSE42=ON",
                "-DGGML_AVX=ON",
                "-DGGML_AVX2=ON",
                "-DGGML_BMI2=ON",
                "-DGGML_FMA=ON",
                "-DGGML_F16C=ON",
                "-DGGML_AVX_VNNI=OFF",
                "-DGGML_AVX512=OFF",
                "-DGGML_AVX512_VBMI=OFF",
                "-DGGML_AVX512_VNNI=OFF",
                "-DGGML_AVX512_BF16=OFF",
                "-DGGML_AMX_TILE=OFF",
                "-DGGML_AMX_INT8=OFF",
                "-DGGML_AMX_BF16=OFF",
            ],
        }
    }

    /// `cmake`'s arguments to configure this build of `src` in `build`.
    fn cmake_args(self, src: &Path, build: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "-S".into(),
            src.into(),
            "-B".into(),
            build.into(),
            "-DCMAKE_BUILD_TYPE=Release".into(),
        ];
        args.extend(self.isa_options().iter().map(OsString::from));
        args.extend(
            [
                "-DBUILD_SHARED_LIBS=OFF",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
                "-DLLAMA_BUILD_SERVER=OFF",
                "-DLLAMA_BUILD_APP=OFF",
                "-DLLAMA_OPENSSL=OFF",
                "-DLLAMA_CURL=OFF",
            ]
            .map(OsString::from),
        );
        args
    }
}

/// The builds to make of those asked for, each with a note for its rows. On a CPU without
/// AVX-512 the native build is the AVX2 one: asked for both, it makes one and says so.
pub fn plan(asked: &[LlamaBuild], avx512: bool) -> Vec<(LlamaBuild, Option<&'static str>)> {
    let mut builds: Vec<LlamaBuild> = Vec::new();
    for &b in asked {
        if !builds.contains(&b) {
            builds.push(b);
        }
    }
    let both = builds.contains(&LlamaBuild::Native) && builds.contains(&LlamaBuild::Avx2);
    if both && !avx512 {
        return builds
            .into_iter()
            .filter(|&b| b == LlamaBuild::Native)
            .map(|b| {
                (
                    b,
                    Some("the native build is the avx2 one: this CPU has no AVX-512"),
                )
            })
            .collect();
    }
    builds.into_iter().map(|b| (b, None)).collect()
}

/// llama.cpp's converter (`convert_hf_to_gguf.py`) and quantizer (`llama-quantize`), which
/// make the GGUF files that its builds and, for the quantized kinds, our engine run.
#[derive(Clone)]
pub struct Tools {
    src: PathBuf,
    /// The converter runs in it.
    venv: Venv,
    quantize: PathBuf,
}

/// One build of llama.cpp as an engine: its `llama-bench`, and the GGUF file of the checkpoint
/// being measured.
pub struct LlamaCpp {
    build: LlamaBuild,
    bench: PathBuf,
    tools: Tools,
    /// `(from llama-cpp-python 0.3.36)`, refined with the build's commit after the first run.
    version: String,
    /// A note for its rows.
    note: Option<&'static str>,
    /// The checkpoint as GGUF, once [`Engine::prepare`] made it.
    gguf: Option<PathBuf>,
}

impl LlamaCpp {
    pub const NAME: &str = "llama.cpp";

    pub fn tools(&self) -> &Tools {
        &self.tools
    }
}

/// Fetches, unpacks and makes `build` where missing; each step is skipped when its output
/// exists. `note` goes on its rows.
pub fn ensure(
    env: &Env,
    venv: &Venv,
    build: LlamaBuild,
    note: Option<&'static str>,
) -> Result<LlamaCpp> {
    if build == LlamaBuild::Avx2 && !cfg!(target_arch = "x86_64") {
        bail!("the avx2 build is for x86-64 CPUs");
    }
    let (name, version, sha) = SDIST;
    let root = env.out.join("llama.cpp");
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let stem = format!("{}-{version}", name.replace('-', "_"));
    let archive = root.join(format!("{stem}.tar.gz"));
    if !archive.exists() {
        tracing::info!("downloading the {name} {version} source archive (77 MB)");
        process::run(
            Command::new(&venv.python)
                .arg(env.repo.join("scripts/bench/fetch_sdist.py"))
                .args([name, version, sha])
                .arg(&root),
            "downloading llama.cpp's sources",
            &log_path(&env.logs, "llama.cpp-fetch"),
            "check that PyPI is reachable, or pass --skip-peers",
        )?;
    }
    let src = root.join(&stem).join("vendor/llama.cpp");
    if !src.join("CMakeLists.txt").exists() {
        process::run(
            Command::new("tar")
                .arg("-xzf")
                .arg(&archive)
                .arg("-C")
                .arg(&root),
            "unpacking llama.cpp's sources",
            &log_path(&env.logs, "llama.cpp-unpack"),
            &format!("delete {} and run again", archive.display()),
        )?;
        if !src.join("CMakeLists.txt").exists() {
            bail!(
                "{} has no vendor/llama.cpp: the archive's layout changed; pin another version",
                archive.display()
            );
        }
    }
    let build_dir = root.join(build.dir());
    let bench = build_dir.join("bin/llama-bench");
    let quantize = build_dir.join("bin/llama-quantize");
    if !bench.exists() || !quantize.exists() {
        let cmake = find_cmake(venv)?;
        tracing::info!(
            "building llama-bench and llama-quantize (Release, {}) in {}; several minutes, once",
            build.name(),
            build_dir.display()
        );
        let hint = "see the log: a C++17 compiler (g++) and cmake are needed";
        let log = |step: &str| log_path(&env.logs, &format!("llama.cpp-{}-{step}", build.name()));
        process::run(
            Command::new(&cmake).args(build.cmake_args(&src, &build_dir)),
            "configuring llama.cpp (cmake)",
            &log("cmake-configure"),
            hint,
        )?;
        let jobs = std::thread::available_parallelism().map_or(2, usize::from);
        process::run(
            Command::new(&cmake).arg("--build").arg(&build_dir).args([
                "--target",
                "llama-bench",
                "llama-quantize",
                "-j",
                &jobs.to_string(),
            ]),
            "building llama-bench and llama-quantize",
            &log("cmake-build"),
            hint,
        )?;
        for bin in [&bench, &quantize] {
            if !bin.exists() {
                bail!("the llama.cpp build made no {}", bin.display());
            }
        }
    }
    // The converter's own gguf package, matching its version.
    let marker = venv.dir.join("bench-gguf.txt");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(version) {
        venv.pip(
            &["--no-deps".as_ref(), src.join("gguf-py").as_os_str()],
            "pip-install-gguf",
            env,
        )?;
        std::fs::write(&marker, version)
            .with_context(|| format!("writing {}", marker.display()))?;
    }
    Ok(LlamaCpp {
        build,
        bench,
        tools: Tools {
            src,
            venv: venv.clone(),
            quantize,
        },
        version: format!("(from {name} {version})"),
        note,
        gguf: None,
    })
}

/// cmake from PATH, else the venv's (from PyPI).
fn find_cmake(venv: &Venv) -> Result<PathBuf> {
    let on_path = Command::new("cmake")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        return Ok("cmake".into());
    }
    venv.bin("cmake").context(
        "no cmake: install one, or keep `cmake` in scripts/bench/requirements.txt for the venv",
    )
}

/// Makes `out` with `make`, which writes the partial file it is given, unless `out` exists and
/// was made from the source that `marker` records as `want`. A failed `make` leaves no file.
fn made_once(
    out: &Path,
    marker: &Path,
    want: &str,
    make: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    if out.exists() && std::fs::read_to_string(marker).is_ok_and(|s| s == want) {
        return Ok(());
    }
    let dir = out.parent().context("a file in a folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = out.with_extension("partial.gguf");
    if let Err(e) = make(&partial) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, out)
        .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
    std::fs::write(marker, want).with_context(|| format!("writing {}", marker.display()))
}

impl Tools {
    /// The checkpoint as GGUF in its safetensors dtype (the source's, for a quantized kind),
    /// converted once; the source checkpoint's marker is kept beside it so a regenerated
    /// checkpoint is converted again.
    fn convert(&self, ckpt: &Checkpoint, env: &Env) -> Result<PathBuf> {
        let venv = &self.venv;
        let dtype = ckpt.dtype.source();
        let dir = env.out.join("gguf");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = format!("{}-{}", ckpt.model.name(), dtype.name());
        let out = dir.join(format!("{name}.gguf"));
        let source = dir.join(format!("{name}.source.json"));
        let marker = ckpt.dir.join("bench-checkpoint.json");
        let want = std::fs::read_to_string(&marker)
            .with_context(|| format!("reading {}", marker.display()))?;
        made_once(&out, &source, &want, |partial| {
            tracing::info!(
                "converting {} to GGUF ({})",
                ckpt.dir.display(),
                dtype.name()
            );
            process::ensure_free_space(&dir, ckpt.file_bytes, "the GGUF conversion")?;
            process::run(
                Command::new(&venv.python)
                    .arg(self.src.join("convert_hf_to_gguf.py"))
                    .arg(&ckpt.dir)
                    .args(["--outtype", dtype.name()])
                    .arg("--outfile")
                    .arg(partial)
                    .env("HF_HUB_OFFLINE", "1"),
                &format!("convert_hf_to_gguf.py ({name})"),
                &log_path(&env.logs, &format!("llama.cpp-convert-{name}")),
                "see the log: the converter's Python packages come from scripts/bench/requirements.txt",
            )
            .map(drop)
        })?;
        Ok(out)
    }

    /// The checkpoint of a quantized kind as a folder: its source converted to GGUF, then
    /// quantized by `llama-quantize` as llama.cpp users make such files, beside the
    /// checkpoint's `tokenizer.json`. Made once per source checkpoint.
    pub fn quantized(&self, ckpt: &Checkpoint, env: &Env) -> Result<Gguf> {
        let kind = ckpt
            .dtype
            .llama_quant()
            .context("quantizing a checkpoint of no quantized kind")?;
        let name = format!("{}-{}", ckpt.model.name(), ckpt.dtype.name());
        let dir = env.out.join("gguf").join(&name);
        let file = dir.join("model.gguf");
        let source = dir.join("source.json");
        let marker = ckpt.dir.join("bench-checkpoint.json");
        let want = std::fs::read_to_string(&marker)
            .with_context(|| format!("reading {}", marker.display()))?;
        made_once(&file, &source, &want, |partial| {
            let input = self.convert(ckpt, env)?;
            tracing::info!("quantizing {} to {kind}", input.display());
            process::run(
                Command::new(&self.quantize)
                    .arg(&input)
                    .arg(partial)
                    .arg(kind)
                    .arg(env.threads.to_string()),
                &format!("llama-quantize ({name})"),
                &log_path(&env.logs, &format!("llama.cpp-quantize-{name}")),
                "see the log",
            )
            .map(drop)
        })?;
        let tokenizer = dir.join("tokenizer.json");
        std::fs::copy(ckpt.dir.join("tokenizer.json"), &tokenizer)
            .with_context(|| format!("writing {}", tokenizer.display()))?;
        let bytes = std::fs::metadata(&file)
            .with_context(|| format!("reading {}", file.display()))?
            .len();
        Ok(Gguf { dir, file, bytes })
    }
}

impl Engine for LlamaCpp {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn variant(&self) -> Option<String> {
        Some(self.build.name().to_owned())
    }

    fn note(&self) -> Option<&'static str> {
        self.note
    }

    fn prepare(&mut self, bench: &CheckpointBench) -> Result<(), NotReady> {
        // No file of the previous checkpoint is left to measure if this conversion fails.
        self.gguf = None;
        self.gguf = Some(match &bench.ckpt.gguf {
            Some(quantized) => quantized.file.clone(),
            None => self.tools.convert(bench.ckpt, bench.env)?,
        });
        Ok(())
    }

    fn measure(&mut self, bench: &CheckpointBench) -> Result<Measurement> {
        let (args, name) = (bench.args, self.log_name(bench.ckpt));
        let gguf = self.converted()?;
        let metrics =
            self.prefill_and_decode(&gguf, args.prompt_tokens, args.new_tokens, bench.env, &name)?;
        let mut m = Measurement::new(metrics);
        m.version = Some(self.version.clone());
        m.notes.push(
            "llama-bench: its own prompt ids, TTFT = prompt / prefill rate, no load time".into(),
        );
        Ok(m)
    }

    fn sweep(&mut self, bench: &CheckpointBench) -> Result<Vec<Point>> {
        let (gguf, name) = (self.converted()?, self.log_name(bench.ckpt));
        bench.sweep_quietly(&self.label(), || {
            self.decode_sweep(
                &gguf,
                bench.contexts,
                bench.args.sweep_new_tokens,
                bench.env,
                &name,
            )
        })
    }
}

impl LlamaCpp {
    /// `1b-bf16-avx2`: the stem of this build's logs for a checkpoint.
    fn log_name(&self, ckpt: &Checkpoint) -> String {
        format!(
            "{}-{}-{}",
            ckpt.model.name(),
            ckpt.dtype.name(),
            self.build.name()
        )
    }

    fn converted(&self) -> Result<PathBuf> {
        self.gguf
            .clone()
            .context("llama.cpp measured before its checkpoint was converted")
    }

    fn bench(
        &self,
        args: &[String],
        name: &str,
        env: &Env,
    ) -> Result<(Vec<Value>, process::Finished)> {
        let done = process::run(
            Command::new(&self.bench).args(args),
            &format!("llama-bench ({name})"),
            &log_path(&env.logs, name),
            "see the log",
        )?;
        let start = done
            .stdout
            .find('[')
            .context("llama-bench printed no JSON")?;
        let rows: Vec<Value> = serde_json::from_str(&done.stdout[start..])
            .context("parsing llama-bench's JSON output")?;
        Ok((rows, done))
    }

    fn common(&self, gguf: &Path, runs: usize, env: &Env) -> Vec<String> {
        vec![
            "-m".into(),
            gguf.display().to_string(),
            "-t".into(),
            env.threads.to_string(),
            "-r".into(),
            runs.to_string(),
            "-o".into(),
            "json".into(),
        ]
    }

    /// Prefill of `prompt` tokens, then decode of `new_tokens` after a context of `prompt`,
    /// once: the bench repeats it in rounds with the other engines.
    fn prefill_and_decode(
        &mut self,
        gguf: &Path,
        prompt: usize,
        new_tokens: usize,
        env: &Env,
        name: &str,
    ) -> Result<Metrics> {
        let mut a = self.common(gguf, 1, env);
        a.extend(["-p", &prompt.to_string(), "-n", "0"].map(String::from));
        let (pp, run_a) = self.bench(&a, &format!("llama-bench-{name}-prefill"), env)?;
        let mut b = self.common(gguf, 1, env);
        b.extend(
            [
                "-p",
                "0",
                "-n",
                &new_tokens.to_string(),
                "-d",
                &prompt.to_string(),
            ]
            .map(String::from),
        );
        let (tg, run_b) = self.bench(&b, &format!("llama-bench-{name}-decode"), env)?;
        // The archive has no git history, so build_number is meaningless; the commit is not.
        if let Some(commit) = pp.first().and_then(|r| r["build_commit"].as_str()) {
            self.version = format!("{commit} (from {} {})", SDIST.0, SDIST.1);
        }
        let prefill = best_ts(&pp, |r| r["n_prompt"].as_u64() == Some(prompt as u64))?;
        let decode = best_ts(&tg, |r| r["n_gen"].as_u64() == Some(new_tokens as u64))?;
        Ok(Metrics {
            prompt_tokens: prompt,
            generated_tokens: new_tokens,
            prefill_tok_s: prefill,
            decode_tok_s: decode,
            ttft_ms: Some(prompt as f64 / prefill * 1e3),
            load_s: None,
            peak_rss_bytes: Some(run_a.peak_rss_bytes.max(run_b.peak_rss_bytes)),
            preflight_ms: None,
            others_cores: match (run_a.others_cores, run_b.others_cores) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
        })
    }

    /// Decode tokens/s after each context (llama-bench's depth), and the other processes' load.
    fn decode_sweep(
        &self,
        gguf: &Path,
        contexts: &[usize],
        new_tokens: usize,
        env: &Env,
        name: &str,
    ) -> Result<(Vec<Point>, Option<f64>)> {
        let list: Vec<String> = contexts.iter().map(usize::to_string).collect();
        let mut args = self.common(gguf, env.runs, env);
        args.extend(
            [
                "-p",
                "0",
                "-n",
                &new_tokens.to_string(),
                "-d",
                &list.join(","),
            ]
            .map(String::from),
        );
        let (rows, done) = self.bench(&args, &format!("llama-bench-{name}-sweep"), env)?;
        let points = contexts
            .iter()
            .map(|&c| {
                Ok(Point {
                    context: c,
                    decode_tok_s: best_ts(&rows, |r| r["n_depth"].as_u64() == Some(c as u64))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok((points, done.others_cores))
    }
}

/// The fastest repetition of the row that `pick` selects (best of runs, as for the others).
fn best_ts(rows: &[Value], pick: impl Fn(&Value) -> bool) -> Result<f64> {
    let row = rows
        .iter()
        .find(|r| pick(r))
        .context("llama-bench's output lacks a test it was asked for")?;
    let samples = row["samples_ts"].as_array().into_iter().flatten();
    samples
        .filter_map(Value::as_f64)
        .reduce(f64::max)
        .or_else(|| row["avg_ts"].as_f64())
        .context("a llama-bench row without avg_ts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_sample_of_the_selected_row_is_taken() {
        let rows: Vec<Value> = serde_json::from_str(
            r#"[{"n_prompt":128,"n_gen":0,"n_depth":0,"avg_ts":300.0,"samples_ts":[290.5,309.5]},
                {"n_prompt":0,"n_gen":16,"n_depth":512,"avg_ts":20.0}]"#,
        )
        .unwrap();
        assert_eq!(best_ts(&rows, |r| r["n_prompt"] == 128).unwrap(), 309.5);
        assert_eq!(best_ts(&rows, |r| r["n_depth"] == 512).unwrap(), 20.0);
        assert!(best_ts(&rows, |r| r["n_depth"] == 1024).is_err());
    }

    fn options(build: LlamaBuild) -> Vec<String> {
        build
            .cmake_args(Path::new("src"), Path::new(build.dir()))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .filter(|a| a.starts_with("-DGGML_"))
            .collect()
    }

    #[test]
    fn the_native_build_is_for_this_cpu_and_the_avx2_build_for_avx2_only() {
        assert_eq!(options(LlamaBuild::Native), ["-DGGML_NATIVE=ON"]);
        let avx2 = options(LlamaBuild::Avx2);
        for on in ["NATIVE=OFF", "AVX=ON", "AVX2=ON", "FMA=ON", "F16C=ON"] {
            assert!(avx2.contains(&format!("-DGGML_{on}")), "{on}: {avx2:?}");
        }
        // Every AVX-512 and AMX option is named, and off.
        let later: Vec<&String> = avx2
            .iter()
            .filter(|a| a.contains("AVX512") || a.contains("AMX"))
            .collect();
        assert_eq!(later.len(), 7, "{later:?}");
        assert!(later.iter().all(|a| a.ends_with("=OFF")), "{later:?}");
        let args = LlamaBuild::Avx2.cmake_args(Path::new("src"), Path::new("b"));
        assert_eq!(args[..4], ["-S", "src", "-B", "b"].map(OsString::from));
        assert_ne!(LlamaBuild::Native.dir(), LlamaBuild::Avx2.dir());
    }

    #[test]
    fn without_avx512_native_and_avx2_are_one_build() {
        use LlamaBuild::*;
        assert_eq!(plan(&[Native], true), [(Native, None)]);
        assert_eq!(
            plan(&[Native, Avx2, Native], true),
            [(Native, None), (Avx2, None)]
        );
        let one = plan(&[Avx2, Native], false);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].0, Native);
        assert!(one[0].1.is_some_and(|n| n.contains("no AVX-512")));
        // Asked for alone, the avx2 build is made even there.
        assert_eq!(plan(&[Avx2], false), [(Avx2, None)]);
    }
}
