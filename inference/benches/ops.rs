//! The hot ops of the vocabulary at Gemma 3 1B decode shapes, on the CPU:
//! `cargo bench -p inference --bench ops` (or `cargo xtask bench`, which runs the model).
//! Throughput is reported in bytes of weights read, the quantity decode is bound by.

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use inference::ops;
use inference::ops::cpu::kernel_path::{self, KernelPath};

const HIDDEN: usize = 1152;
const VOCAB: usize = 262_144;
const INTERMEDIATE: usize = 6912;
const HEAD_DIM: usize = 256;
const HEADS: usize = 4;
const CONTEXT: usize = 512;

fn randn(shape: &[usize], dtype: DType) -> Tensor {
    let t = Tensor::randn(0f32, 1.0, shape, &Device::Cpu).expect("a random tensor");
    ops::cast(&t, dtype).expect("a cast")
}

/// Prompt shapes: (name, n, k, rows of x).
const PREFILL: [(&str, usize, usize, usize); 3] = [
    ("mlp_up_prefill_128", INTERMEDIATE, HIDDEN, 128),
    ("mlp_down_prefill_128", HIDDEN, INTERMEDIATE, 128),
    ("mlp_up_prefill_512", INTERMEDIATE, HIDDEN, 512),
];

/// Every projection shape on every CPU kernel path this machine has:
/// `linear/<dtype>/<path>/<shape>`.
fn linear(c: &mut Criterion) {
    for path in KernelPath::supported() {
        kernel_path::force(path).expect("a supported path");
        for dtype in [DType::BF16, DType::F32] {
            let mut group = c.benchmark_group(format!("linear/{}/{path}", dtype.as_str()));
            group.sample_size(10);
            for (name, n, k) in [
                ("lm_head", VOCAB, HIDDEN),
                ("mlp_up", INTERMEDIATE, HIDDEN),
                ("mlp_down", HIDDEN, INTERMEDIATE),
            ] {
                let w = randn(&[n, k], dtype);
                let x = randn(&[1, k], dtype);
                group.throughput(Throughput::Bytes((n * k * dtype.size_in_bytes()) as u64));
                group.bench_function(name, |b| b.iter(|| ops::linear(&x, &w).unwrap()));
            }
            for (name, n, k, m) in PREFILL {
                let (w, x) = (randn(&[n, k], dtype), randn(&[m, k], dtype));
                group.throughput(Throughput::Elements((2 * m * n * k) as u64));
                group.bench_function(name, |b| b.iter(|| ops::linear(&x, &w).unwrap()));
            }
            group.finish();
        }
    }
    kernel_path::force(KernelPath::best()).expect("the best path");
    candle_linear(c);
}

/// Candle's own matmul on the prompt shapes (the gemm crate, which has its own AVX2, AVX-512
/// and NEON kernels), the alternative to ours on every path: `linear/<dtype>/candle/<shape>`.
// The op vocabulary keeps Candle's kernels out of the model; here they are the baseline.
#[allow(clippy::disallowed_methods)]
fn candle_linear(c: &mut Criterion) {
    for dtype in [DType::BF16, DType::F32] {
        let mut group = c.benchmark_group(format!("linear/{}/candle", dtype.as_str()));
        group.sample_size(10);
        for (name, n, k, m) in PREFILL {
            let (w, x) = (randn(&[n, k], dtype), randn(&[m, k], dtype));
            group.throughput(Throughput::Elements((2 * m * n * k) as u64));
            group.bench_function(name, |b| b.iter(|| x.matmul(&w.t().unwrap()).unwrap()));
        }
        group.finish();
    }
}

/// The ceiling for the LM head: reading as many bytes with nothing else to do, on every core.
fn read_bandwidth(c: &mut Criterion) {
    use rayon::prelude::*;
    let bytes = VOCAB * HIDDEN * 2;
    let words: Vec<u64> = (0..bytes as u64 / 8)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    let mut group = c.benchmark_group("memory");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("read_lm_head_bf16_bytes", |b| {
        b.iter(|| {
            words
                .par_chunks(1 << 16)
                .map(sum_lanes)
                .reduce(|| 0, u64::wrapping_add)
        })
    });
    group.finish();
}

/// Eight independent lanes, so the loop vectorizes and is bound by loads, not by one add chain.
fn sum_lanes(words: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    for c in words.chunks_exact(8) {
        for (a, w) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(*w);
        }
    }
    acc.iter().fold(0, |a, w| a.wrapping_add(*w))
}

/// The quantized projections, ours (`ops::qlinear`) and Candle's (`QMatMul`), at decode and
/// prompt shapes: `qlinear/<format>/<ours|candle>/<shape>`. The LM head is in the formats
/// llama-quantize gives a tied embedding: Q6_K in a Q4_0 or Q4_K_M file, Q8_0 in a Q8_0 one.
// Candle's quantized matmul is the baseline here, as its float matmul is above.
#[allow(clippy::disallowed_methods)]
fn qlinear(c: &mut Criterion) {
    use candle_core::quantized::QMatMul;
    use candle_core::Module;
    use inference::ops::quant::{self, QWeight, QuantType};

    let shapes = |q: QuantType| {
        let head = matches!(q, QuantType::Q6K | QuantType::Q8_0);
        let mut s = vec![
            ("mlp_up", INTERMEDIATE, HIDDEN, 1),
            ("mlp_down", HIDDEN, INTERMEDIATE, 1),
        ];
        if head {
            s.push(("lm_head", VOCAB, HIDDEN, 1));
        }
        s.extend([
            ("mlp_up_x4", INTERMEDIATE, HIDDEN, 4),
            ("mlp_up_prefill_128", INTERMEDIATE, HIDDEN, 128),
            ("mlp_down_prefill_128", HIDDEN, INTERMEDIATE, 128),
        ]);
        s
    };
    for q in [
        QuantType::Q4_0,
        QuantType::Q8_0,
        QuantType::Q5_0,
        QuantType::Q4K,
        QuantType::Q6K,
    ] {
        // The K-formats' 256-weight blocks do not divide the hidden size (1152).
        for (name, n, k, m) in shapes(q).into_iter().filter(|s| s.2 % q.block_len() == 0) {
            let blocks = quant::quantize(&randn(&[n, k], DType::F32), q).expect("quantized");
            let w = QWeight::new(&blocks, q, &Device::Cpu).expect("a weight");
            let candle = QMatMul::from_qtensor(
                candle_core::quantized::QTensor::quantize(&randn(&[n, k], DType::F32), q.ggml())
                    .expect("quantized"),
            )
            .expect("a matmul");
            let x = randn(&[m, k], DType::F32);
            let bytes = (blocks.elem_count()) as u64;
            for engine in ["ours", "candle"] {
                let mut group = c.benchmark_group(format!("qlinear/{q}/{engine}"));
                group.sample_size(10);
                if m == 1 {
                    group.throughput(Throughput::Bytes(bytes));
                } else {
                    group.throughput(Throughput::Elements((2 * m * n * k) as u64));
                }
                group.bench_function(name, |b| match engine {
                    "ours" => b.iter(|| ops::qlinear(&x, &w).unwrap()),
                    _ => b.iter(|| candle.forward(&x).unwrap()),
                });
                group.finish();
            }
        }
    }
}

fn small_ops(c: &mut Criterion) {
    for dtype in [DType::BF16, DType::F32] {
        let mut group = c.benchmark_group(format!("decode_ops/{}", dtype.as_str()));
        let q = randn(&[1, HEADS, 1, HEAD_DIM], dtype);
        let cos = randn(&[1, HEAD_DIM / 2], dtype);
        let sin = randn(&[1, HEAD_DIM / 2], dtype);
        group.bench_function("rope", |b| b.iter(|| ops::rope(&q, &cos, &sin).unwrap()));
        let scores = randn(&[1, HEADS, 1, CONTEXT], DType::F32);
        group.bench_function("softmax_last_dim_f32", |b| {
            b.iter(|| ops::softmax_last_dim(&scores).unwrap())
        });
        let x = randn(&[1, 1, HIDDEN], dtype);
        let alpha = randn(&[HIDDEN], dtype);
        group.bench_function("rms_norm", |b| {
            b.iter(|| ops::rms_norm(&x, &alpha, 1e-6).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, read_bandwidth, linear, qlinear, small_ops);
criterion_main!(benches);
