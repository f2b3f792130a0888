//! Beyond the trace: random cases for every op of the vocabulary, with shapes of 1 and odd
//! sizes, non-contiguous and broadcast inputs. The model does not use these layouts today but
//! may tomorrow. Each case runs on a backend with its inputs' exact layouts and is compared
//! with the CPU run on contiguous copies, so the CPU's strided paths are tested too.

use candle_core::{DType, Device, Tensor};
use inference::ops::{Op, OpKind};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::compare::compare;
use crate::layout;
use crate::outcome::Outcome;
use crate::replay::{panic_message, to_f64};
use crate::signature::Signature;
use crate::tolerance;

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

fn dim() -> impl Strategy<Value = usize> {
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

fn shape(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(dim(), 1..=max_rank)
}

fn any_layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::Contiguous),
        Just(Layout::Transposed),
        Just(Layout::Offset),
        Just(Layout::Broadcast)
    ]
}

fn float() -> impl Strategy<Value = DType> {
    prop_oneof![Just(DType::F32), Just(DType::BF16), Just(DType::F16)]
}

/// Random cases of `op`.
pub fn strategy(op: OpKind) -> BoxedStrategy<FuzzCase> {
    let seed = any::<u64>();
    match op {
        OpKind::Matmul => (
            proptest::collection::vec(dim(), 0..=2),
            dim(),
            dim(),
            dim(),
            any_layout(),
            any_layout(),
            float(),
            seed,
        )
            .prop_map(|(batch, m, k, n, la, lb, dt, s)| {
                let mut a = batch.clone();
                a.extend([m, k]);
                let mut b = batch;
                b.extend([k, n]);
                // Candle's matmul accepts transposed and offset operands, not broadcast ones.
                let fix = |l| {
                    if l == Layout::Broadcast {
                        Layout::Contiguous
                    } else {
                        l
                    }
                };
                FuzzCase {
                    op: Op::Matmul,
                    inputs: vec![tensor(&a, dt, fix(la), s), tensor(&b, dt, fix(lb), s ^ 1)],
                }
            })
            .boxed(),
        OpKind::Linear => (
            dim(),
            prop_oneof![dim(), 31usize..=97],
            dim(),
            any_layout(),
            any_layout(),
            float(),
            seed,
        )
            .prop_map(|(m, k, n, lx, lw, dt, s)| {
                // k past one 32-lane vector, with a tail, reaches every path of the CPU kernel.
                let fix = |l| {
                    if l == Layout::Broadcast {
                        Layout::Contiguous
                    } else {
                        l
                    }
                };
                FuzzCase {
                    op: Op::Linear,
                    inputs: vec![
                        tensor(&[m, k], dt, fix(lx), s),
                        tensor(&[n, k], dt, fix(lw), s ^ 1),
                    ],
                }
            })
            .boxed(),
        OpKind::Add | OpKind::Mul => {
            let op = if op == OpKind::Add { Op::Add } else { Op::Mul };
            (shape(4), any_layout(), any_layout(), float(), seed)
                .prop_map(move |(sh, la, lb, dt, s)| FuzzCase {
                    op: op.clone(),
                    inputs: vec![tensor(&sh, dt, la, s), tensor(&sh, dt, lb, s ^ 1)],
                })
                .boxed()
        }
        OpKind::BroadcastAdd => (shape(4), any_layout(), float(), seed, any::<u8>())
            .prop_map(|(sh, la, dt, s, mask)| {
                // The right side keeps a suffix of the dims, some of them collapsed to 1.
                let keep = 1 + (mask as usize % sh.len());
                let rhs: Vec<usize> = sh[sh.len() - keep..]
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| if mask >> (i + 3) & 1 == 1 { 1 } else { d })
                    .collect();
                FuzzCase {
                    op: Op::BroadcastAdd,
                    inputs: vec![
                        tensor(&sh, dt, la, s),
                        tensor(&rhs, dt, Layout::Contiguous, s ^ 1),
                    ],
                }
            })
            .boxed(),
        OpKind::Affine => (
            shape(4),
            any_layout(),
            float(),
            seed,
            -3.0..3.0f64,
            -1.0..1.0f64,
        )
            .prop_map(|(sh, l, dt, s, mul, add)| FuzzCase {
                op: Op::Affine { mul, add },
                inputs: vec![tensor(&sh, dt, l, s)],
            })
            .boxed(),
        OpKind::GeluTanh | OpKind::Tanh | OpKind::Contiguous => {
            let op = match op {
                OpKind::GeluTanh => Op::GeluTanh,
                OpKind::Tanh => Op::Tanh,
                _ => Op::Contiguous,
            };
            (shape(4), any_layout(), float(), seed)
                .prop_map(move |(sh, l, dt, s)| FuzzCase {
                    op: op.clone(),
                    inputs: vec![tensor(&sh, dt, l, s)],
                })
                .boxed()
        }
        OpKind::Cast => (shape(4), any_layout(), float(), float(), seed)
            .prop_map(|(sh, l, from, to, s)| FuzzCase {
                op: Op::Cast { to },
                inputs: vec![tensor(&sh, from, l, s)],
            })
            .boxed(),
        OpKind::Cat => (
            shape(4),
            any::<usize>(),
            dim(),
            any_layout(),
            any_layout(),
            float(),
            seed,
        )
            .prop_map(|(sh, d, extra, la, lb, dt, s)| {
                let d = d % sh.len();
                let mut other = sh.clone();
                other[d] = extra;
                FuzzCase {
                    op: Op::Cat { dim: d },
                    inputs: vec![tensor(&sh, dt, la, s), tensor(&other, dt, lb, s ^ 1)],
                }
            })
            .boxed(),
        OpKind::WriteAt => (
            shape(4),
            any::<usize>(),
            dim(),
            any::<usize>(),
            float(),
            seed,
        )
            .prop_map(|(sh, d, extra, at, dt, s)| {
                // The buffer has `extra` more rows than the source along `d`: every offset
                // from the start to flush with the end can occur.
                let d = d % sh.len();
                let mut buffer = sh.clone();
                buffer[d] += extra;
                FuzzCase {
                    op: Op::WriteAt {
                        dim: d,
                        offset: at % (extra + 1),
                    },
                    inputs: vec![
                        tensor(&buffer, dt, Layout::Contiguous, s),
                        tensor(&sh, dt, Layout::Contiguous, s ^ 1),
                    ],
                }
            })
            .boxed(),
        OpKind::IndexSelect => (dim(), dim(), dim(), float(), seed)
            .prop_map(|(rows, cols, n, dt, s)| {
                let ids: Vec<u32> = (0..n)
                    .map(|i| ((s as usize + i * 7) % rows) as u32)
                    .collect();
                let ids = Tensor::from_vec(ids, n, &Device::Cpu).expect("ids");
                FuzzCase {
                    op: Op::IndexSelect { dim: 0 },
                    inputs: vec![tensor(&[rows, cols], dt, Layout::Contiguous, s), ids],
                }
            })
            .boxed(),
        OpKind::RmsNorm => (shape(3), float(), seed)
            .prop_map(|(sh, dt, s)| {
                let h = *sh.last().expect("rank >= 1");
                FuzzCase {
                    op: Op::RmsNorm { eps: 1e-6 },
                    inputs: vec![
                        tensor(&sh, dt, Layout::Contiguous, s),
                        tensor(&[h], dt, Layout::Contiguous, s ^ 1),
                    ],
                }
            })
            .boxed(),
        OpKind::Rope => (dim(), dim(), dim(), 1..5usize, float(), seed)
            .prop_map(|(b, h, t, half, dt, s)| FuzzCase {
                op: Op::Rope,
                inputs: vec![
                    tensor(&[b, h, t, 2 * half], dt, Layout::Contiguous, s),
                    tensor(&[t, half], dt, Layout::Contiguous, s ^ 1),
                    tensor(&[t, half], dt, Layout::Contiguous, s ^ 2),
                ],
            })
            .boxed(),
        OpKind::SoftmaxLastDim => (shape(4), float(), seed, any::<bool>())
            .prop_map(|(sh, dt, s, masked)| FuzzCase {
                op: Op::SoftmaxLastDim,
                inputs: vec![if masked {
                    masked_scores(&sh, dt, s)
                } else {
                    tensor(&sh, dt, Layout::Contiguous, s)
                }],
            })
            .boxed(),
    }
}

/// Attention-like scores: every third entry of a row is `-inf`, as a mask makes it, but never
/// a row's first entry, so no row is fully masked.
fn masked_scores(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
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
    let strategy = strategy(op);
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
    let run = || -> Result<Outcome, String> {
        let contiguous: Vec<Tensor> = case
            .inputs
            .iter()
            .map(|t| t.force_contiguous())
            .collect::<candle_core::Result<_>>()
            .map_err(|e| e.to_string())?;
        let refs: Vec<&Tensor> = contiguous.iter().collect();
        let want = case
            .op
            .apply(&refs)
            .map_err(|e| format!("CPU reference: {e}"))?;
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
        if got.dims() != want.dims() {
            return Ok(Outcome::Mismatch {
                errors: Default::default(),
                reason: format!("shape {:?}, CPU {:?}", got.dims(), want.dims()),
            });
        }
        let tol = tolerance::for_op(case.op.kind(), want.dtype());
        Ok(compare(
            &to_f64(&got).map_err(|e| e.to_string())?,
            &to_f64(&want).map_err(|e| e.to_string())?,
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
