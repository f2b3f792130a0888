//! Beyond the trace: random cases for every op of the vocabulary, with shapes of 1 and odd
//! sizes, non-contiguous and broadcast inputs. The model does not use these layouts today but
//! may tomorrow. Each case runs on a backend with its inputs' exact layouts and is compared
//! with the CPU run on contiguous copies, so the CPU's strided paths are tested too.

use candle_core::{DType, Device, Tensor};
use inference::ops::{Op, OpKind};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::signature::Signature;
use crate::spec;
use op_matrix_core::compare::compare;
use op_matrix_core::layout;
use op_matrix_core::outcome::Outcome;
use op_matrix_core::replay::{panic_message, to_f64};
use op_matrix_core::tolerance;

/// How an input is laid out in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Contiguous,
    /// Stored with the last two dims swapped, then transposed back.
    Transposed,
    /// A narrow of a buffer with an extra row at the front of dim 0.
    Offset,
    /// Dim 0 is a stride-0 broadcast of one row.
    Broadcast,
}

/// A random case: an op and its CPU inputs in their layouts.
#[derive(Debug, Clone)]
pub struct FuzzCase {
    pub op: Op,
    pub inputs: Vec<Tensor>,
}

impl FuzzCase {
    pub fn signature(&self) -> Signature {
        Signature {
            op: self.op.clone(),
            inputs: self
                .inputs
                .iter()
                .map(crate::signature::InputLayout::of)
                .collect(),
        }
    }
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    // A cheap deterministic spread of magnitudes and signs; proptest picks the seed.
    (0..n)
        .map(|i| {
            let x = ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed)
                .wrapping_mul(0xbf58_476d_1ce4_e5b9);
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
        })
        .collect()
}

/// A tensor of logical `shape` and `dtype` laid out as `layout`.
pub fn tensor(shape: &[usize], dtype: DType, layout: Layout, seed: u64) -> Tensor {
    let build = || -> candle_core::Result<Tensor> {
        let rank = shape.len();
        let mut stored = shape.to_vec();
        match layout {
            Layout::Transposed if rank >= 2 => stored.swap(rank - 2, rank - 1),
            Layout::Offset if rank >= 1 => stored[0] += 1,
            Layout::Broadcast if rank >= 1 => stored[0] = 1,
            _ => {}
        }
        let n: usize = stored.iter().product();
        let t =
            Tensor::from_vec(values(n, seed), stored.as_slice(), &Device::Cpu)?.to_dtype(dtype)?;
        Ok(match layout {
            Layout::Transposed if rank >= 2 => t.transpose(rank - 2, rank - 1)?,
            Layout::Offset if rank >= 1 => t.narrow(0, 1, shape[0])?,
            Layout::Broadcast if rank >= 1 => t.broadcast_as(shape)?,
            _ => t,
        })
    };
    build().expect("valid shapes by construction")
}

pub fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        Just(2),
        Just(3),
        Just(5),
        Just(7),
        Just(8),
        Just(13)
    ]
}

pub fn shape(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(dim(), 1..=max_rank)
}

pub fn any_layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::Contiguous),
        Just(Layout::Transposed),
        Just(Layout::Offset),
        Just(Layout::Broadcast)
    ]
}

pub fn float() -> impl Strategy<Value = DType> {
    prop_oneof![Just(DType::F32), Just(DType::BF16), Just(DType::F16)]
}

/// The seed of a case's values.
pub fn seed() -> impl Strategy<Value = u64> {
    any::<u64>()
}

/// Attention-like scores: every third entry of a row is `-inf`, as a mask makes it, but never
/// a row's first entry, so no row is fully masked.
pub fn masked_scores(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
    let row = *shape.last().expect("rank >= 1");
    let n: usize = shape.iter().product();
    let data: Vec<f32> = values(n, seed)
        .into_iter()
        .enumerate()
        .map(|(i, x)| {
            if i % row != 0 && i % 3 == 1 {
                f32::NEG_INFINITY
            } else {
                x
            }
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .expect("valid shapes by construction")
}

/// `n` deterministic cases of `op` (the same on every machine for the same `seed`).
pub fn cases(op: OpKind, n: usize, seed: u64) -> Vec<FuzzCase> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = spec::of(op).strategy();
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("strategies never reject")
                .current()
        })
        .collect()
}

/// Runs `case` on `device` with its exact layouts and compares with the CPU on contiguous
/// copies of the same inputs.
pub fn check(case: &FuzzCase, device: &Device) -> Outcome {
    judge(case, device, || {
        let contiguous: Vec<Tensor> = case
            .inputs
            .iter()
            .map(|t| t.force_contiguous())
            .collect::<candle_core::Result<_>>()
            .map_err(|e| e.to_string())?;
        let refs: Vec<&Tensor> = contiguous.iter().collect();
        let want = case.op.apply(&refs);
        Ok(Expected::Cpu(
            want.map_err(|e| format!("CPU reference: {e}"))?,
        ))
    })
}

/// Runs `case` on `device` with its exact layouts and compares with the op's f64 reference
/// ([`spec::OpSpec::reference`]), rounded to the output's dtype as the kernel must round.
pub fn check_reference(case: &FuzzCase, device: &Device) -> Outcome {
    judge(case, device, || {
        Ok(Expected::Reference(
            spec::reference(case).map_err(|e| format!("f64 reference: {e}"))?,
        ))
    })
}

/// What a case on a device is judged against.
enum Expected {
    /// The CPU's output on contiguous inputs.
    Cpu(Tensor),
    /// The f64 reference's values.
    Reference(Vec<f64>),
}

/// Runs `case` on `device` and judges the result against `expected` at the op's tolerance;
/// a backend error is `Unsupported`, a panic is caught.
fn judge(
    case: &FuzzCase,
    device: &Device,
    expected: impl FnOnce() -> Result<Expected, String>,
) -> Outcome {
    let run = || -> Result<Outcome, String> {
        let expected = expected()?;
        let on_device = case
            .inputs
            .iter()
            .map(|t| {
                let (base, strided) = layout::split(t)?;
                layout::rebuild(&base, &strided, device)
            })
            .collect::<crate::Result<Vec<_>>>()
            .map_err(|e| format!("preparing inputs: {e}"))?;
        let refs: Vec<&Tensor> = on_device.iter().collect();
        let got = match case.op.apply(&refs) {
            Ok(t) => t,
            Err(e) => {
                return Ok(Outcome::Unsupported {
                    error: e.to_string(),
                })
            }
        };
        let want = match expected {
            Expected::Cpu(want) if got.dims() != want.dims() => {
                return Ok(Outcome::Mismatch {
                    errors: Default::default(),
                    reason: format!("shape {:?}, CPU {:?}", got.dims(), want.dims()),
                })
            }
            Expected::Cpu(want) => to_f64(&want).map_err(|e| e.to_string())?,
            Expected::Reference(values) => round(values, got.dtype()),
        };
        let tol = tolerance::for_op(case.op.kind(), got.dtype());
        Ok(compare(
            &to_f64(&got).map_err(|e| e.to_string())?,
            &want,
            &tol,
        ))
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => Outcome::Unsupported { error },
        Err(payload) => Outcome::Panic {
            message: panic_message(payload.as_ref()),
        },
    }
}

/// `values` rounded to the nearest value of `dtype`.
fn round(values: Vec<f64>, dtype: DType) -> Vec<f64> {
    match dtype {
        DType::BF16 => values
            .into_iter()
            .map(|x| half::bf16::from_f64(x).to_f64())
            .collect(),
        DType::F16 => values
            .into_iter()
            .map(|x| half::f16::from_f64(x).to_f64())
            .collect(),
        DType::F32 => values.into_iter().map(|x| x as f32 as f64).collect(),
        _ => values,
    }
}
