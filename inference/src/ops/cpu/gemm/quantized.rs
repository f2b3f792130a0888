//! `y = x · wᵀ` over a weight of quantized blocks (GGUF's formats), in f32, split over the rows
//! of `w` on this crate's thread pool as the float products are.
//!
//! A decode step's few rows of `x` meet each row of a Q4_0, Q5_0 or Q8_0 `w` in dot products
//! over the blocks ([`super::block_dots`]): the bytes a token costs stay the file's. A prompt
//! over Q4_0 (or Q8_0, on VNNI) takes integer tiles of the same blocks: on the 1B's MLP at 128
//! rows (Zen 4), 3.1 ms where the f32 product below took 14.5-21. Other formats' prompts are many rows, so
//! each task dequantizes a slice of its rows of `w` to f32 and runs the f32 product over
//! them, once for every row of `x`; Candle computes a prompt as dot products row by row (5-26x
//! slower on the 1B's MLP at 128 rows, measured on AVX2).

use std::borrow::Cow;
use std::ops::Range;

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0, GgmlType,
};

use super::block_dots::{self, Format, Isa, Product, Q8};
use super::converted::{Converted, Rows};
#[cfg(target_arch = "aarch64")]
use super::neon;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use super::simd;
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};
use super::{portable, scatter, store, Columns, KernelPath};
use crate::ops::quant::QuantType;

/// `out[i * n + j] = Σ x[i, p] · w[j, p]` for `x: (m, k)` and `w: (n, k)` given as `blocks`,
/// its rows of whole `quant` blocks as a GGUF file holds them, on `path`, which the CPU must
/// support. Only for the products that [`takes`] accepts.
#[allow(clippy::too_many_arguments)]
pub fn q_xwt(
    path: KernelPath,
    x: &[f32],
    blocks: &[u8],
    quant: QuantType,
    out: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
) {
    assert!(takes(quant, m), "{quant} products of {m} rows are Candle's");
    let isa = Isa::within(path);
    let dots = dot_format(quant).filter(|_| m <= DOT_ROWS);
    let tiles = dot_format(quant).filter(|format| format.pairs_on(isa));
    if let Some(format) = dots.or(tiles) {
        assert_eq!(x.len(), m * k, "x is not (m, k)");
        assert_eq!(out.len(), m * n, "out is not (m, n)");
        assert_eq!(k % block_dots::BLOCK, 0, "k is not whole blocks");
        let row_bytes = k / block_dots::BLOCK * format.block_bytes();
        let product = if m > DOT_ROWS {
            Product::Tiles
        } else {
            Product::Dots
        };
        assert_eq!(blocks.len(), n * row_bytes, "w is not (n, k) in blocks");
        let dots = RoundedProduct {
            format,
            product,
            x: Q8::new(x, m, k, format, isa, product),
            w: blocks,
            row_bytes,
            m,
            isa,
        };
        return scatter(&dots, store::<f32>, out, m, n);
    }
    let run = Run {
        path,
        x,
        out,
        m,
        n,
        k,
    };
    with_block_type!(quant, T => run.on::<T>(blocks))
}

/// `body` with `T` the block type of `quant`.
macro_rules! with_block_type {
    ($quant:expr, $t:ident => $body:expr) => {
        match $quant {
            QuantType::Q4_0 => {
                type $t = BlockQ4_0;
                $body
            }
            QuantType::Q4_1 => {
                type $t = BlockQ4_1;
                $body
            }
            QuantType::Q5_0 => {
                type $t = BlockQ5_0;
                $body
            }
            QuantType::Q5_1 => {
                type $t = BlockQ5_1;
                $body
            }
            QuantType::Q8_0 => {
                type $t = BlockQ8_0;
                $body
            }
            QuantType::Q2K => {
                type $t = BlockQ2K;
                $body
            }
            QuantType::Q3K => {
                type $t = BlockQ3K;
                $body
            }
            QuantType::Q4K => {
                type $t = BlockQ4K;
                $body
            }
            QuantType::Q5K => {
                type $t = BlockQ5K;
                $body
            }
            QuantType::Q6K => {
                type $t = BlockQ6K;
                $body
            }
        }
    };
}
use with_block_type;

/// Each of `rows` (a row of `quant` blocks each, all of one length) dequantized in turn into
/// `out`: an embedding lookup.
pub fn dequantize_rows(rows: &[&[u8]], quant: QuantType, out: &mut [f32]) {
    let Some(first) = rows.first() else {
        return;
    };
    let k = first.len() / quant.block_bytes() * quant.block_len();
    assert_eq!(out.len(), rows.len() * k, "out is not (rows, k)");
    for (row, dst) in rows.iter().zip(out.chunks_exact_mut(k.max(1))) {
        with_block_type!(quant, T => T::to_float(&as_blocks::<T>(row), dst));
    }
}

/// One product's operands, before the block type is known.
struct Run<'a> {
    path: KernelPath,
    x: &'a [f32],
    out: &'a mut [f32],
    m: usize,
    n: usize,
    k: usize,
}

impl Run<'_> {
    fn on<T: GgmlType>(self, blocks: &[u8]) {
        let Run {
            path,
            x,
            out,
            m,
            n,
            k,
        } = self;
        assert_eq!(x.len(), m * k, "x is not (m, k)");
        assert_eq!(out.len(), m * n, "out is not (m, n)");
        assert_eq!(k % T::BLCK_SIZE, 0, "k is not whole blocks");
        let w = &*as_blocks::<T>(blocks);
        assert_eq!(w.len(), n * (k / T::BLCK_SIZE), "w is not (n, k) in blocks");
        let w = Blocks(w);
        match path {
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => {
                let product = simd::Product::<avx512::F32>::new(x, &[], m, k);
                scatter(&Converted::new(product, w, k), store::<f32>, out, m, n)
            }
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => {
                let product = simd::Product::<avx2::F32>::new(x, &[], m, k);
                scatter(&Converted::new(product, w, k), store::<f32>, out, m, n)
            }
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon | KernelPath::NeonBf16 => {
                let product = simd::Product::<neon::F32>::new(x, &[], m, k);
                scatter(&Converted::new(product, w, k), store::<f32>, out, m, n)
            }
            _ => {
                let product = portable::Product::f32(x, &[], m, k);
                scatter(&Converted::new(product, w, k), store::<f32>, out, m, n)
            }
        }
    }
}

/// The most rows of `x` that take dot products: past it, dequantizing a weight once costs less
/// than a dot product per row.
const DOT_ROWS: usize = 4;

/// Whether [`q_xwt`] computes `m` rows of `quant`: every prompt, and the decode steps of the
/// formats with dot products here. Candle's are faster for the K-formats: Q4_K's over a copy
/// it repacks, and Q6_K's, called over the file's blocks on this crate's pool, took 271 µs
/// for the 1B's MLP down where Candle's own product over its copy took 192 (measured with
/// `cargo bench -p inference --bench ops -- qlinear`).
pub fn takes(quant: QuantType, m: usize) -> bool {
    m > DOT_ROWS || dot_format(quant).is_some()
}

fn dot_format(quant: QuantType) -> Option<Format> {
    match quant {
        // Candle's Q4_0 and Q8_0 dots have NEON paths and ours none yet; there is no aarch64
        // machine here to compare them on.
        QuantType::Q4_0 if cfg!(target_arch = "x86_64") => Some(Format::Q4_0),
        QuantType::Q8_0 if cfg!(target_arch = "x86_64") => Some(Format::Q8_0),
        QuantType::Q5_0 => Some(Format::Q5_0),
        _ => None,
    }
}

/// The blocks that `bytes` hold: in place, or copied where a file placed them off their
/// alignment (a GGUF file may declare an alignment of 1).
fn as_blocks<T: GgmlType>(bytes: &[u8]) -> Cow<'_, [T]> {
    let size = std::mem::size_of::<T>();
    assert_eq!(bytes.len() % size, 0, "not whole blocks");
    let len = bytes.len() / size;
    if (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) {
        // SAFETY: the length and the alignment are checked, and Candle's block types are
        // plain `repr(C)` structs of integers and f16 scales, for which every bit pattern is
        // a value.
        return Cow::Borrowed(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), len) });
    }
    let mut blocks = vec![T::zeros(); len];
    // SAFETY: `blocks` holds `len` blocks of `size` bytes, as `bytes` does, and any bytes are
    // a block (above).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), blocks.as_mut_ptr().cast(), bytes.len());
    }
    Cow::Owned(blocks)
}

/// A product over rows of a [`Format`] with the activations rounded to 8 bits: a decode step's
/// dot products, or a prompt's [`block_dots::tiles`].
struct RoundedProduct<'a> {
    format: Format,
    product: Product,
    x: Q8,
    w: &'a [u8],
    row_bytes: usize,
    m: usize,
    isa: Isa,
}

impl Columns for RoundedProduct<'_> {
    fn ld(&self) -> usize {
        self.m
    }

    fn columns(&self, cols: Range<usize>, acc: &mut [f32]) {
        if self.product == Product::Tiles {
            let (w, row_bytes) = (self.w, self.row_bytes);
            return block_dots::tiles(self.format, w, row_bytes, &self.x, cols, acc, self.isa);
        }
        for (c, j) in cols.enumerate() {
            let row = &self.w[j * self.row_bytes..(j + 1) * self.row_bytes];
            for i in 0..self.m {
                acc[c * self.m + i] = block_dots::dot(self.format, row, &self.x, i, self.isa);
            }
        }
    }
}

/// A weight's rows of blocks, dequantized a slice at a time for a prompt.
struct Blocks<'a, T>(&'a [T]);

impl<T: GgmlType> Rows for Blocks<'_, T> {
    fn to_f32(&self, rows: Range<usize>, k: usize, dst: &mut [f32]) {
        let per_row = k / T::BLCK_SIZE;
        T::to_float(&self.0[rows.start * per_row..rows.end * per_row], dst)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::values;
    use super::*;
    use candle_core::{Device, Tensor};

    /// Bytes copied `shift` bytes past an 8-byte boundary, as a model's weights are held
    /// aligned (0) or as a file may place them (odd).
    struct Placed {
        buf: Vec<u64>,
        shift: usize,
        len: usize,
    }

    impl Placed {
        fn new(bytes: &[u8], shift: usize) -> Self {
            let mut buf = vec![0u64; (shift + bytes.len()).div_ceil(8)];
            bytemuck::cast_slice_mut::<u64, u8>(&mut buf)[shift..shift + bytes.len()]
                .copy_from_slice(bytes);
            Self {
                buf,
                shift,
                len: bytes.len(),
            }
        }

        fn bytes(&self) -> &[u8] {
            &bytemuck::cast_slice::<u64, u8>(&self.buf)[self.shift..self.shift + self.len]
        }
    }

    /// The blocks of an `(n, k)` weight, and the weight they hold.
    fn weight(quant: QuantType, n: usize, k: usize, seed: u32) -> (Vec<u8>, Vec<f32>) {
        let w = Tensor::from_vec(values(n * k, seed), (n, k), &Device::Cpu).unwrap();
        let blocks = crate::ops::quant::quantize(&w, quant).unwrap();
        let held = crate::ops::quant::dequantize(&blocks, quant).unwrap();
        let bytes = blocks.flatten_all().unwrap().to_vec1::<u8>().unwrap();
        (bytes, held.flatten_all().unwrap().to_vec1::<f32>().unwrap())
    }

    #[test]
    fn every_format_matches_the_product_with_its_dequantized_weight_on_every_path() {
        // Decode rows (1, 3) take the dot products; prompt rows (5, 19) the tiles (with rows
        // and columns past the last whole tile) or the dequantized f32 product. 37 rows of `w`
        // leave a quad cut short in every task, and rows of 7 blocks of 32 end Q4_0's pairs of
        // blocks with a lone one.
        let shapes = QuantType::ALL
            .into_iter()
            .flat_map(|quant| [(quant, 2 * 256), (quant, 7 * 32)])
            .filter(|&(quant, k)| k % quant.block_len() == 0);
        for (quant, k) in shapes {
            let n = 37;
            let (blocks, held) = weight(quant, n, k, 7);
            // A file may place blocks off their alignment (a GGUF's declared alignment of 1).
            let (aligned, shifted) = (Placed::new(&blocks, 0), Placed::new(&blocks, 1));
            let m_and_blocks = [1, 3, 5, 19]
                .into_iter()
                .filter(|&m| takes(quant, m))
                .flat_map(|m| [(m, aligned.bytes()), (m, shifted.bytes())]);
            for (m, blocks) in m_and_blocks {
                let x = values(m * k, 11 + m as u32);
                for path in KernelPath::supported() {
                    let mut out = vec![0f32; m * n];
                    q_xwt(path, &x, blocks, quant, &mut out, m, n, k);
                    for i in 0..m {
                        for j in 0..n {
                            let terms =
                                (0..k).map(|p| x[i * k + p] as f64 * held[j * k + p] as f64);
                            let want: f64 = terms.clone().sum();
                            let scale: f64 = terms.map(f64::abs).sum();
                            // The dot products and the tiles round `x` to 8 bits per block
                            // (about 1/254 of its largest value); the f32 product only sums in
                            // f32.
                            let tiled =
                                dot_format(quant).is_some_and(|f| f.pairs_on(Isa::within(path)));
                            let tol = if m <= DOT_ROWS || tiled {
                                scale / 100.0
                            } else {
                                scale * 1e-5
                            };
                            let got = out[i * n + j] as f64;
                            assert!(
                                (got - want).abs() <= tol + 1e-6,
                                "{quant} {path} m={m} ({i}, {j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_dot_sums_what_the_portable_dot_sums() {
        // Every path rounds `x` alike and sums integers exactly, so only the order of the
        // scaled f32 sums may differ: a weight unpacked wrongly shows far above that.
        let (m, n) = (3, 37);
        let quants = [QuantType::Q4_0, QuantType::Q5_0, QuantType::Q8_0];
        // On aarch64 only Q5_0's decode steps are this crate's.
        for quant in quants.into_iter().filter(|&quant| takes(quant, m)) {
            for k in [7 * 32, 2 * 256] {
                let (blocks, _) = weight(quant, n, k, 9);
                let placed = Placed::new(&blocks, 0);
                let blocks = placed.bytes();
                let x = values(m * k, 4);
                let mut want = vec![0f32; m * n];
                q_xwt(KernelPath::Portable, &x, blocks, quant, &mut want, m, n, k);
                for path in KernelPath::supported() {
                    let mut got = vec![0f32; m * n];
                    q_xwt(path, &x, blocks, quant, &mut got, m, n, k);
                    for (j, (&g, &w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                            "{quant} {path} k={k} [{j}]: {g} vs the portable {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn tiles_sum_what_the_dots_sum_row_by_row() {
        // Both round each row of `x` alike and sum integers exactly, so only the order of the
        // scaled f32 sums differs: a block missed or counted twice shows. 19 rows of 673
        // blocks take more than one slice of `k` in every kind of tile, a half pair, and
        // tiles cut short both ways (37 rows of `w` leave 5 lanes of 16 live).
        let (m, n, k) = (19, 37, 673 * 32);
        let x = values(m * k, 5);
        for quant in [QuantType::Q4_0, QuantType::Q8_0] {
            let (blocks, _) = weight(quant, n, k, 3);
            let placed = Placed::new(&blocks, 0);
            let blocks = placed.bytes();
            let paths = KernelPath::supported()
                .into_iter()
                .filter(|&path| dot_format(quant).is_some_and(|f| f.pairs_on(Isa::within(path))));
            for path in paths {
                let mut tiled = vec![0f32; m * n];
                q_xwt(path, &x, blocks, quant, &mut tiled, m, n, k);
                for i in 0..m {
                    let mut row = vec![0f32; n];
                    let xi = &x[i * k..(i + 1) * k];
                    q_xwt(path, xi, blocks, quant, &mut row, 1, n, k);
                    for (j, &want) in row.iter().enumerate() {
                        let got = tiled[i * n + j];
                        assert!(
                            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "{quant} {path} ({i}, {j}): tiles {got}, dots {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "w is not (n, k) in blocks")]
    fn a_weight_of_the_wrong_size_is_refused() {
        // Q5_0: its decode steps are this crate's on every architecture.
        let (blocks, _) = weight(QuantType::Q5_0, 4, 64, 1);
        let x = values(64, 2);
        let mut out = vec![0f32; 5];
        q_xwt(
            KernelPath::Portable,
            &x,
            &blocks,
            QuantType::Q5_0,
            &mut out,
            1,
            5,
            64,
        );
    }
}
