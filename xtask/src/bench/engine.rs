//! An engine of the bench: ours on one CPU kernel path, or a peer in one variant; a row of
//! every checkpoint. The bench readies, measures and sweeps each through [`Engine`], so that
//! another engine (or another kind of checkpoint) is a type, not a branch in every function.

use std::path::Path;

use anyhow::{bail, Result};

use super::checkpoints::Checkpoint;
use super::report::{self, Metrics, Point};
use super::{Args, Env};

/// What every engine's measurements of one checkpoint need.
pub struct CheckpointBench<'a> {
    pub args: &'a Args,
    pub env: &'a Env,
    pub ckpt: &'a Checkpoint,
    /// The prompt's ids, as many as the longest context needs.
    pub ids: &'a [u32],
    /// The same ids as a JSON file, for the peers' scripts.
    pub ids_file: &'a Path,
    /// The sweep's contexts that fit the checkpoint (none without a sweep).
    pub contexts: &'a [usize],
    /// `1b bf16`.
    pub label: &'a str,
}

impl CheckpointBench<'_> {
    /// The main measurement's prompt.
    pub fn prompt(&self) -> &[u32] {
        &self.ids[..self.args.prompt_tokens]
    }

    /// A whole sweep made by one child process, which reports the other processes' load:
    /// taken again while they disturbed it (see [`super::quiet::Quiet::measure`]).
    pub fn sweep_quietly(
        &self,
        engine: &str,
        f: impl FnMut() -> Result<(Vec<Point>, Option<f64>)>,
    ) -> Result<Vec<Point>> {
        let what = format!("{}: {engine} sweep", self.label);
        let (points, _) = self.env.quiet.measure(&what, f, |(_, load)| *load)?;
        Ok(points)
    }
}

/// One main measurement of an engine.
pub struct Measurement {
    pub metrics: Metrics,
    /// Its greedy tokens, where the engine reports them: held against ours's.
    pub tokens: Option<Vec<u32>>,
    pub version: Option<String>,
    /// The variant that ran, where the engine reports it (ours: the kernel path of its stats).
    pub variant: Option<String>,
    /// What a reader needs to know to trust the numbers.
    pub notes: Vec<String>,
}

impl Measurement {
    pub fn new(metrics: Metrics) -> Self {
        Measurement {
            metrics,
            tokens: None,
            version: None,
            variant: None,
            notes: Vec::new(),
        }
    }
}

/// Why an engine has no numbers for a checkpoint.
pub enum NotReady {
    /// Its setup failed or was not asked for: the row is skipped, with the reason.
    Skipped(String),
    /// Readying it for the checkpoint failed: the row is failed, with the error.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for NotReady {
    fn from(e: anyhow::Error) -> Self {
        NotReady::Failed(e)
    }
}

/// An engine the bench measures on every checkpoint.
pub trait Engine {
    /// Its name in the report: [`report::OURS`], `transformers`, `llama.cpp`.
    fn name(&self) -> &'static str;

    /// The variant asked for (a kernel path, a build), for an engine that has several.
    fn variant(&self) -> Option<String> {
        None
    }

    /// A note on every row of this engine.
    fn note(&self) -> Option<&'static str> {
        None
    }

    /// The row's name before it ran: `llama.cpp (avx2)`.
    fn label(&self) -> String {
        report::label(self.name(), self.variant().as_deref())
    }

    /// Readies the engine for a checkpoint (llama.cpp converts it to GGUF), before any
    /// measurement of it.
    fn prepare(&mut self, bench: &CheckpointBench) -> Result<(), NotReady>;

    /// One main measurement: prefill, time to first token and decode on the prompt. The bench
    /// repeats it in rounds of every engine, on a quiet machine.
    fn measure(&mut self, bench: &CheckpointBench) -> Result<Measurement>;

    /// Decode tokens/s against context, at the bench's contexts; the engine keeps each point's
    /// best of the runs.
    fn sweep(&mut self, bench: &CheckpointBench) -> Result<Vec<Point>>;
}

/// A peer whose setup failed, or that was left out: every row of it is skipped.
pub struct Unavailable {
    pub name: &'static str,
    pub variant: Option<String>,
    pub note: Option<&'static str>,
    pub reason: String,
}

impl Engine for Unavailable {
    fn name(&self) -> &'static str {
        self.name
    }

    fn variant(&self) -> Option<String> {
        self.variant.clone()
    }

    fn note(&self) -> Option<&'static str> {
        self.note
    }

    fn prepare(&mut self, _: &CheckpointBench) -> Result<(), NotReady> {
        Err(NotReady::Skipped(self.reason.clone()))
    }

    fn measure(&mut self, _: &CheckpointBench) -> Result<Measurement> {
        bail!("{}", self.reason)
    }

    fn sweep(&mut self, _: &CheckpointBench) -> Result<Vec<Point>> {
        bail!("{}", self.reason)
    }
}
