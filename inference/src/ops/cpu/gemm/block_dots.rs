//! Dot products of rows of Q4_0, Q5_0 and Q8_0 blocks with activations rounded to 8 bits per
//! 32. Q4_0 is the format of Google's QAT files; Q5_0 that of most matrices in a Q4_K_M file of
//! Gemma 3 1B (its rows of 1152 are not whole 256-weight K-blocks, so llama-quantize falls back
//! to it); Q8_0 that of the tied embedding, the LM head, in every file llama-quantize makes.
//!
//! Candle's Q4_0 dot runs at 4.9 GiB/s of weights on AVX2 where its Q8_0 reaches 11 (one
//! chain of multiply-adds, signs fixed per block), and its Q5_0 has no SIMD path (0.94 GiB/s).
//! Here a 4- or 5-bit weight stays unsigned, `q = w / d + offset`, so one `maddubs` multiplies
//! it by the signed activation, and the offset comes off once per block through the activation
//! block's precomputed sum. Having every decode format's dot here lets the CPU multiply by the
//! blocks where the file's mapping holds them, with no copy into Candle's storage.
//!
//! The decode dots of Q4_0, and of Q8_0 where the CPU has VNNI, take their activations as
//! [`Pairs`], two blocks a step. A prompt's product over them runs in tiles of several rows of
//! each operand ([`tiles`]), so its activations are rounded as a decode step's are, and as
//! llama.cpp's are: on VNNI, a row of weights in each lane of 16 ([`lanes`]); on AVX2, pairs
//! of blocks against [`Pairs`].

use std::ops::Range;

use half::f16;
use rayon::iter::{ParallelBridge, ParallelIterator};

use super::KernelPath;

#[cfg(target_arch = "x86_64")]
mod lanes;

/// A block format of 32 weights after an f16 scale: Q4_0's 16 bytes of nibbles (weight `j` in
/// the low half of byte `j`, weight `16 + j` in its high half), Q5_0's the same after a 32-bit
/// word of fifth bits, or Q8_0's 32 signed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Q4_0,
    Q5_0,
    Q8_0,
}

/// Weights per block, of every format here and of the activation blocks.
pub(super) const BLOCK: usize = 32;

impl Format {
    pub(super) fn block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q5_0 => 22,
            Self::Q8_0 => 34,
        }
    }

    /// Whether its SIMD dots and prompt tiles take activations as [`Pairs`] on `isa`. Q8_0
    /// needs `vpdpbusd`: its weights made unsigned reach 255, and `maddubs`' 16-bit pair sums
    /// of 255 · 127 saturate.
    pub(super) fn pairs_on(self, isa: Isa) -> bool {
        match self {
            Self::Q4_0 => isa != Isa::Portable,
            #[cfg(target_arch = "x86_64")]
            Self::Q8_0 => isa == Isa::Vnni,
            _ => false,
        }
    }

    /// What a weight in a pair's registers is above the value it holds: Q4_0's stored
    /// offset, or the 128 that makes Q8_0's bytes unsigned.
    fn pair_offset(self) -> i32 {
        match self {
            Self::Q4_0 => 8,
            Self::Q5_0 => 16,
            Self::Q8_0 => 128,
        }
    }

    /// What a stored weight is above the value it holds, in steps of the block's scale.
    fn offset(self) -> f32 {
        match self {
            Self::Q4_0 => 8.0,
            Self::Q5_0 => 16.0,
            Self::Q8_0 => 0.0,
        }
    }
}

/// What a product's rows of activations meet the weights in: a decode step's dot products, or
/// a prompt's tiles ([`tiles`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Product {
    Dots,
    Tiles,
}

/// The instructions a product's dots take, chosen once per product from its kernel path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Isa {
    Portable,
    /// AVX2, FMA and F16C: `maddubs` multiplies bytes into pairs of 16-bit sums.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// [`Self::Avx2`] with AVX-512 VNNI on 256-bit lanes: `vpdpbusd` multiplies bytes and
    /// adds them in fours into 32-bit sums, one instruction where `maddubs` takes two.
    #[cfg(target_arch = "x86_64")]
    Vnni,
}

impl Isa {
    /// The widest this CPU has within `path`.
    pub(super) fn within(path: KernelPath) -> Self {
        #[cfg(target_arch = "x86_64")]
        match path {
            KernelPath::Avx512 if avx2::detected() && avx2::vnni_detected() => return Self::Vnni,
            KernelPath::Avx512 | KernelPath::Avx2 if avx2::detected() => return Self::Avx2,
            _ => {}
        }
        let _ = path;
        Self::Portable
    }

    /// Whether a prompt's tiles hold a row of weights a lane ([`lanes`]), reading the rows of
    /// activations as they are, rather than in [`Pairs`].
    fn tiles_in_lanes(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Vnni => true,
            _ => false,
        }
    }
}

/// Rows of activations in blocks of 32: `q · d` is the value, and `sums` holds each block's
/// `Σ q`, the term that the weights' offset multiplies.
pub(super) struct Q8 {
    q: Vec<i8>,
    d: Vec<f32>,
    sums: Vec<i32>,
    blocks: usize,
    /// The SIMD dots of Q4_0, and of Q8_0 on VNNI, take their activations as [`Pairs`], and
    /// so do the tiles of Q4_0 on AVX2; VNNI's tiles ([`lanes`]) take the rows as they are.
    pairs: Option<Pairs>,
}

/// Activations for a dot two blocks at a time, laid out as a pair of weight blocks unpacks in
/// registers: the first 16 values of both blocks, then their last 16. Each block's scale fills
/// four lanes, and `-offset · Σ q` (the weights' [`Format::pair_offset`] against the block's
/// sum) starts the first of its four integer sums, so the offset costs no instruction in the
/// dot.
struct Pairs {
    x: Vec<i8>,
    d: Vec<f32>,
    offsets: Vec<i32>,
    /// Pairs a row, the last one half empty where the row's blocks are odd.
    per_row: usize,
}

/// Bytes, scale lanes and integer sums per pair of blocks.
const PAIR: usize = 2 * BLOCK;
const PAIR_LANES: usize = 8;

impl Pairs {
    fn rows(&self) -> usize {
        self.x.len() / (self.per_row * PAIR).max(1)
    }

    fn new(q8: &Q8, m: usize, format: Format) -> Self {
        let per_row = q8.blocks.div_ceil(2);
        let mut pairs = Self {
            x: vec![0; m * per_row * PAIR],
            d: vec![0.0; m * per_row * PAIR_LANES],
            offsets: vec![0; m * per_row * PAIR_LANES],
            per_row,
        };
        let rows = pairs
            .x
            .chunks_mut(per_row * PAIR)
            .zip(pairs.d.chunks_mut(per_row * PAIR_LANES))
            .zip(pairs.offsets.chunks_mut(per_row * PAIR_LANES))
            .enumerate();
        by_rows(m * q8.blocks * BLOCK, rows, |(i, ((xs, ds), offsets))| {
            let (q, d, sums) = q8.row(i);
            for (b, ((q, &d), &sum)) in q.chunks_exact(BLOCK).zip(d).zip(sums).enumerate() {
                let half = b % 2;
                let x = &mut xs[b / 2 * PAIR..][..PAIR];
                x[half * 16..][..16].copy_from_slice(&q[..16]);
                x[BLOCK + half * 16..][..16].copy_from_slice(&q[16..]);
                let lanes = b / 2 * PAIR_LANES + half * 4;
                ds[lanes..lanes + 4].fill(d);
                offsets[lanes] = -format.pair_offset() * sum;
            }
        });
        pairs
    }
}

impl Q8 {
    /// The `m` rows of `x`, `k` each (a multiple of [`BLOCK`]), for `product` with `format`
    /// on `isa`: every one rounds alike.
    pub(super) fn new(
        x: &[f32],
        m: usize,
        k: usize,
        format: Format,
        isa: Isa,
        product: Product,
    ) -> Self {
        let blocks = k / BLOCK;
        let mut q8 = Self {
            q: vec![0i8; m * k],
            d: vec![0f32; m * blocks],
            sums: vec![0i32; m * blocks],
            blocks,
            pairs: None,
        };
        let rows = x[..m * k]
            .chunks(k.max(1))
            .zip(q8.q.chunks_mut(k.max(1)))
            .zip(
                q8.d.chunks_mut(blocks.max(1))
                    .zip(q8.sums.chunks_mut(blocks.max(1))),
            );
        by_rows(m * k, rows, |((x, q), (d, sums))| match isa {
            // SAFETY: `Isa::within` chose it only where the CPU has its features.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Vnni => unsafe { avx2::quantize(x, q, d, sums) },
            Isa::Portable => quantize(x, q, d, sums),
        });
        if format.pairs_on(isa) && !(product == Product::Tiles && isa.tiles_in_lanes()) {
            q8.pairs = Some(Pairs::new(&q8, m, format));
        }
        q8
    }

    fn rows(&self) -> usize {
        self.q.len() / (self.blocks * BLOCK).max(1)
    }

    fn row(&self, i: usize) -> (&[i8], &[f32], &[i32]) {
        let b = self.blocks;
        (
            &self.q[i * b * BLOCK..(i + 1) * b * BLOCK],
            &self.d[i * b..(i + 1) * b],
            &self.sums[i * b..(i + 1) * b],
        )
    }
}

/// Values a task is worth: a prompt's rows of activations are prepared on every thread, a
/// decode step's on the caller's.
const PARALLEL_VALUES: usize = 1 << 16;

/// `f` on each of `rows`, which hold `values` in all, on the pool where they are many.
fn by_rows<I>(values: usize, rows: I, f: impl Fn(I::Item) + Sync + Send)
where
    I: Iterator + Send,
    I::Item: Send,
{
    if values < PARALLEL_VALUES {
        rows.for_each(f);
    } else {
        rows.par_bridge().for_each(f);
    }
}

/// Each block of 32 in `x` rounded to 8 bits under its own scale, into `q`, with the scale
/// in `d` and the block's sum in `sums`. Inlined into each instruction set's
/// caller, where the compiler vectorizes the rounding (a library call per value otherwise).
#[inline(always)]
fn quantize(x: &[f32], q: &mut [i8], d: &mut [f32], sums: &mut [i32]) {
    let blocks = x.chunks_exact(BLOCK).zip(q.chunks_exact_mut(BLOCK));
    for ((src, dst), (d, block_sum)) in blocks.zip(d.iter_mut().zip(sums.iter_mut())) {
        let max = src.iter().fold(0f32, |a, v| a.max(v.abs()));
        let scale = max / 127.0;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        let mut sum = 0i32;
        for (o, v) in dst.iter_mut().zip(src) {
            // Rounded to nearest, as llama.cpp rounds its activations.
            *o = (v * inv).round() as i8;
            sum += i32::from(*o);
        }
        *d = scale;
        *block_sum = sum;
    }
}

/// Σ w·x for one row `w` of `format` blocks and row `i` of `x`, which [`Q8::new`] made for
/// `format` and `isa`.
pub(super) fn dot(format: Format, w: &[u8], x: &Q8, i: usize, isa: Isa) -> f32 {
    let (q, d, sums) = x.row(i);
    assert_eq!(
        w.len(),
        x.blocks * format.block_bytes(),
        "w is not a row of x's length"
    );
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Portable {
        if let Some(pairs) = &x.pairs {
            let lanes = i * pairs.per_row * PAIR_LANES..(i + 1) * pairs.per_row * PAIR_LANES;
            let (xs, d, offsets) = (
                &pairs.x[i * pairs.per_row * PAIR..(i + 1) * pairs.per_row * PAIR],
                &pairs.d[lanes.clone()],
                &pairs.offsets[lanes],
            );
            // SAFETY: `isa` has its features (`Isa::within`); `w` is `x.blocks` blocks
            // (asserted), and the pairs hold `per_row` pairs a row, `ceil(blocks / 2)`.
            return unsafe {
                match (format, isa) {
                    (Format::Q8_0, _) => {
                        avx2::pairs_dot_vnni::<{ avx2::Q8_0 }>(w, x.blocks, xs, d, offsets)
                    }
                    (_, Isa::Vnni) => {
                        avx2::pairs_dot_vnni::<{ avx2::Q4_0 }>(w, x.blocks, xs, d, offsets)
                    }
                    _ => avx2::pairs_dot::<{ avx2::Q4_0 }>(w, x.blocks, xs, d, offsets),
                }
            };
        }
        // SAFETY: as above, and `Q8::row` gives `x.blocks` blocks of `q`, `d` and `sums`.
        return unsafe {
            match format {
                Format::Q4_0 => avx2::dot::<{ avx2::Q4_0 }>(w, q, d, sums),
                Format::Q5_0 => avx2::dot::<{ avx2::Q5_0 }>(w, q, d, sums),
                Format::Q8_0 => avx2::dot::<{ avx2::Q8_0 }>(w, q, d, sums),
            }
        };
    }
    let _ = isa;
    scalar(format, w, q, d, sums)
}

/// `acc[c * x_rows + i] = Σ x[i] · w[cols.start + c]` for every row `i` of `x`, which
/// [`Q8::new`] made for `format` on `isa`, and the rows `cols` of `w`, `format` blocks
/// `row_bytes` a row: a prompt's product, in tiles that unpack each block once for several
/// rows of `x`. Only where [`Format::pairs_on`] `isa`.
pub(super) fn tiles(
    format: Format,
    w: &[u8],
    row_bytes: usize,
    x: &Q8,
    cols: Range<usize>,
    acc: &mut [f32],
    isa: Isa,
) {
    let m = x.rows();
    assert_eq!(row_bytes, x.blocks * format.block_bytes());
    assert!(w.len() >= cols.end * row_bytes, "columns past the end of w");
    assert!(acc.len() >= cols.len() * m, "acc is too short");
    acc[..cols.len() * m].fill(0.0);
    #[cfg(target_arch = "x86_64")]
    match (format, isa, &x.pairs) {
        (Format::Q4_0 | Format::Q8_0, Isa::Vnni, _) => {
            // SAFETY: `Isa::within` chooses VNNI only where the CPU has AVX-512 F and VNNI,
            // and the asserts bound `w` and `acc`.
            return unsafe { lanes::columns(format, w, row_bytes, x, cols, acc, m) };
        }
        (Format::Q4_0, Isa::Avx2, Some(pairs)) => {
            let o = avx2::Operands {
                x: pairs,
                w,
                row_bytes,
                blocks: x.blocks,
            };
            // SAFETY: `isa` has its features (`Isa::within`), and the asserts bound `w` and
            // `acc`; `pairs` holds `m` rows of `ceil(blocks / 2)` pairs.
            return unsafe { avx2::pair_columns::<{ avx2::Q4_0 }>(&o, cols, acc, m) };
        }
        _ => {}
    }
    unreachable!("no {format:?} tiles on {isa:?}")
}

/// The weights of one block as stored, less the format's offset: nibble plus fifth bit, or
/// Q8_0's byte.
fn stored(format: Format, block: &[u8]) -> [i32; BLOCK] {
    let (high, qs) = match format {
        Format::Q4_0 => (0u32, &block[2..18]),
        Format::Q5_0 => (
            u32::from_le_bytes([block[2], block[3], block[4], block[5]]),
            &block[6..22],
        ),
        Format::Q8_0 => {
            return std::array::from_fn(|j| i32::from(block[2 + j] as i8));
        }
    };
    let mut out = [0i32; BLOCK];
    for (j, &b) in qs.iter().enumerate() {
        let fifth = |at: usize| (((high >> at) & 1) as u8) << 4;
        out[j] = i32::from((b & 0x0f) | fifth(j));
        out[j + 16] = i32::from((b >> 4) | fifth(j + 16));
    }
    out
}

fn scale(block: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32()
}

fn scalar(format: Format, w: &[u8], q: &[i8], d: &[f32], sums: &[i32]) -> f32 {
    let mut sum = 0f32;
    let blocks = w.chunks_exact(format.block_bytes());
    for (b, block) in blocks.enumerate() {
        let ws = stored(format, block);
        let x = &q[b * BLOCK..(b + 1) * BLOCK];
        let dot: i32 = ws.iter().zip(x).map(|(&a, &y)| a * i32::from(y)).sum();
        let s = d[b] * sums[b] as f32;
        sum += scale(block) * (d[b] * dot as f32 - format.offset() * s);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::BLOCK;

    /// The formats, as the const parameter of [`dot`].
    pub(super) const Q4_0: u8 = 0;
    pub(super) const Q5_0: u8 = 1;
    pub(super) const Q8_0: u8 = 2;

    pub(super) fn detected() -> bool {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    }

    pub(super) fn vnni_detected() -> bool {
        is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl")
    }

    /// Bytes ahead of the block in hand that each step asks the cache for: a row streams from
    /// memory, and the hardware's prefetcher alone kept one thread at 11.5 GB/s where this
    /// reaches 13.8 (Zen 4, a Q4_0 matrix of 78 MB).
    const PREFETCH: usize = 512;

    /// The dot of a row of format `F` (Q4_0 here) two blocks a step in 256-bit lanes: both
    /// blocks unpack into one register of low halves and one of high halves, which meet
    /// [`super::Pairs`]' matching layout of the activations; on `VNNI`, `vpdpbusd` multiplies
    /// and sums them. 17 to 19 instructions a Q4_0 pair where one block at a time takes 28.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `w` holds `blocks` blocks; `x`, `d` and `offsets` hold
    /// `ceil(blocks / 2)` pairs.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn pairs_dot<const F: u8>(
        w: &[u8],
        blocks: usize,
        x: &[i8],
        d: &[f32],
        offsets: &[i32],
    ) -> f32 {
        pairs_dot_in::<F, false>(w, blocks, x, d, offsets)
    }

    /// [`pairs_dot`] with `vpdpbusd`, for Q4_0 and Q8_0.
    ///
    /// # Safety
    /// As [`pairs_dot`], and the CPU has AVX-512 VNNI and VL.
    #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
    pub(super) unsafe fn pairs_dot_vnni<const F: u8>(
        w: &[u8],
        blocks: usize,
        x: &[i8],
        d: &[f32],
        offsets: &[i32],
    ) -> f32 {
        pairs_dot_in::<F, true>(w, blocks, x, d, offsets)
    }

    /// The body of both, inlined into each so that it compiles with its caller's features
    /// (called apart, the VNNI sums were a function call a pair, slower than no VNNI).
    #[inline(always)]
    unsafe fn pairs_dot_in<const F: u8, const VNNI: bool>(
        w: &[u8],
        blocks: usize,
        x: &[i8],
        d: &[f32],
        offsets: &[i32],
    ) -> f32 {
        let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut p = 0;
        while 2 * p + 4 <= blocks {
            pair::<F, VNNI, true>(w, x, d, offsets, p, &mut even);
            pair::<F, VNNI, true>(w, x, d, offsets, p + 1, &mut odd);
            p += 2;
        }
        if 2 * p + 2 <= blocks {
            pair::<F, VNNI, true>(w, x, d, offsets, p, &mut even);
            p += 1;
        }
        if 2 * p < blocks {
            pair::<F, VNNI, false>(w, x, d, offsets, p, &mut odd);
        }
        reduce(_mm256_add_ps(even, odd))
    }

    /// Bytes of a block of format `F`.
    const fn block_bytes(f: u8) -> usize {
        [18, 22, 34][f as usize]
    }

    /// Pair `p` of `F` blocks into `acc`; `BOTH` is false for a row's odd last block, whose
    /// second half is neither read nor counted.
    #[inline(always)]
    unsafe fn pair<const F: u8, const VNNI: bool, const BOTH: bool>(
        w: &[u8],
        x: &[i8],
        d: &[f32],
        offsets: &[i32],
        p: usize,
        acc: &mut __m256,
    ) {
        let first = w.as_ptr().add(2 * p * block_bytes(F));
        _mm_prefetch(first.wrapping_add(PREFETCH).cast(), _MM_HINT_T0);
        let ws = unpack::<F, BOTH>(first);
        let xs = XPair::load(x.as_ptr(), d.as_ptr(), offsets.as_ptr(), p);
        *acc = accumulate::<VNNI>(&ws, &xs, *acc);
    }

    /// A pair of blocks as [`accumulate`] takes them, each weight unsigned.
    #[derive(Clone, Copy)]
    struct WPair {
        /// Both blocks' first 16 weights (Q4_0's low nibbles), then their last 16.
        lo: __m256i,
        hi: __m256i,
        /// Each block's scale in the four lanes of its sums.
        scales: __m256,
    }

    /// The pair of `F` blocks at `first`; without `BOTH`, only the first block, and zeros
    /// (Q8_0: 128s, against zeros in the activations).
    #[inline(always)]
    unsafe fn unpack<const F: u8, const BOTH: bool>(first: *const u8) -> WPair {
        let second = first.wrapping_add(block_bytes(F));
        // The 16 bytes at `at` of the first block, and of the second where there is one.
        let halves = |at: usize| {
            let a = _mm_loadu_si128(first.add(at).cast());
            if BOTH {
                _mm256_inserti128_si256(
                    _mm256_castsi128_si256(a),
                    _mm_loadu_si128(second.add(at).cast()),
                    1,
                )
            } else {
                _mm256_zextsi128_si256(a)
            }
        };
        let (lo, hi) = if F == Q8_0 {
            let unsigned = _mm256_set1_epi8(-128);
            (
                _mm256_xor_si256(halves(2), unsigned),
                _mm256_xor_si256(halves(18), unsigned),
            )
        } else {
            let nibbles = halves(2);
            let low = _mm256_set1_epi8(0x0f);
            (
                _mm256_and_si256(nibbles, low),
                _mm256_and_si256(_mm256_srli_epi16(nibbles, 4), low),
            )
        };
        let mut scale_bits = u32::from(first.cast::<u16>().read_unaligned());
        if BOTH {
            scale_bits |= u32::from(second.cast::<u16>().read_unaligned()) << 16;
        }
        let scales = _mm256_permutevar8x32_ps(
            _mm256_castps128_ps256(_mm_cvtph_ps(_mm_cvtsi32_si128(scale_bits as i32))),
            _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1),
        );
        WPair { lo, hi, scales }
    }

    /// A pair of activation blocks in [`super::Pairs`]' layout.
    #[derive(Clone, Copy)]
    struct XPair {
        lo: __m256i,
        hi: __m256i,
        offset: __m256i,
        d: __m256,
    }

    impl XPair {
        /// Pair `p` of the row whose pairs start at `x`, `d` and `offsets`.
        #[inline(always)]
        unsafe fn load(x: *const i8, d: *const f32, offsets: *const i32, p: usize) -> Self {
            let xs = x.add(p * super::PAIR);
            Self {
                lo: _mm256_loadu_si256(xs.cast()),
                hi: _mm256_loadu_si256(xs.add(BLOCK).cast()),
                offset: _mm256_loadu_si256(offsets.add(p * super::PAIR_LANES).cast()),
                d: _mm256_loadu_ps(d.add(p * super::PAIR_LANES)),
            }
        }
    }

    /// `acc` plus the pair's products, scaled, in eight lanes.
    #[inline(always)]
    unsafe fn accumulate<const VNNI: bool>(w: &WPair, x: &XPair, acc: __m256) -> __m256 {
        let sums = if VNNI {
            vnni_sums(x.offset, w.lo, x.lo, w.hi, x.hi)
        } else {
            let products = _mm256_add_epi16(
                _mm256_maddubs_epi16(w.lo, x.lo),
                _mm256_maddubs_epi16(w.hi, x.hi),
            );
            _mm256_add_epi32(_mm256_madd_epi16(products, _mm256_set1_epi16(1)), x.offset)
        };
        _mm256_fmadd_ps(_mm256_mul_ps(w.scales, x.d), _mm256_cvtepi32_ps(sums), acc)
    }

    /// The sum of the eight lanes.
    #[inline(always)]
    unsafe fn reduce(acc: __m256) -> f32 {
        let half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)))
    }

    /// Rows of activations as [`super::Pairs`] holds them, and rows of blocks, for the tiles
    /// of a prompt's product.
    pub(super) struct Operands<'a> {
        pub x: &'a super::Pairs,
        pub w: &'a [u8],
        pub row_bytes: usize,
        pub blocks: usize,
    }

    /// Rows of `x` a tile takes, and rows of `w`: each pair of `w`'s blocks unpacks once for
    /// that many rows of `x`, and each pair of `x`'s loads once for that many rows of `w`,
    /// within AVX2's 16 registers.
    const ROWS: usize = 4;
    const COLS: usize = 2;

    /// Bytes of activations that a pass over one slice of `k` reads for every row of `x`:
    /// the slice stays in L2 while the columns of a task pass it.
    const X_SLICE_BYTES: usize = 384 << 10;

    /// `acc[c * ld + i] += Σ x[i] · w[cols.start + c]` for every row `i` of `x`, in tiles of
    /// `ROWS` by `COLS` over slices of `k`.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `o.w` holds `cols.end` rows of `o.row_bytes`, each
    /// `o.blocks` blocks, and `o.x` rows of as many blocks; `acc` holds `cols.len()` columns
    /// of `ld >= o.x`'s rows.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn pair_columns<const F: u8>(
        o: &Operands,
        cols: Range<usize>,
        acc: &mut [f32],
        ld: usize,
    ) {
        let (m, per_row) = (o.x.rows(), o.x.per_row);
        let slice = (X_SLICE_BYTES / (m.max(1) * 2 * super::PAIR)).max(1);
        for first in (0..per_row).step_by(slice) {
            let pairs = first..(first + slice).min(per_row);
            let mut c = cols.start;
            while c < cols.end {
                let wide = (cols.end - c).min(COLS);
                let mut i = 0;
                while i < m {
                    let tall = (m - i).min(ROWS);
                    let at = (c - cols.start) * ld + i;
                    match (tall == ROWS, wide == COLS) {
                        (true, true) => tile::<F, ROWS, COLS>(o, &pairs, i, c, acc, at, ld),
                        (true, false) => {
                            for n in 0..wide {
                                tile::<F, ROWS, 1>(o, &pairs, i, c + n, acc, at + n * ld, ld)
                            }
                        }
                        (false, _) => {
                            for r in 0..tall {
                                for n in 0..wide {
                                    let at = at + n * ld + r;
                                    tile::<F, 1, 1>(o, &pairs, i + r, c + n, acc, at, ld)
                                }
                            }
                        }
                    }
                    i += tall;
                }
                c += wide;
            }
        }
    }

    /// A row of `x` as [`XPair::load`] takes it.
    type XRow = (*const i8, *const f32, *const i32);

    /// Pair `p` of the rows `ws` of `w` against the rows `xs` of `x`, into `sums`.
    #[inline(always)]
    unsafe fn tile_pair<const F: u8, const BOTH: bool, const R: usize, const C: usize>(
        ws: &[*const u8; C],
        xs: &[XRow; R],
        p: usize,
        sums: &mut [[__m256; C]; R],
    ) {
        let w: [WPair; C] =
            std::array::from_fn(|n| unpack::<F, BOTH>(ws[n].add(2 * p * block_bytes(F))));
        for (row, &(q, d, offsets)) in sums.iter_mut().zip(xs) {
            let x = XPair::load(q, d, offsets, p);
            for (sum, w) in row.iter_mut().zip(&w) {
                *sum = accumulate::<false>(w, &x, *sum);
            }
        }
    }

    /// Rows `i..i + R` of `x` against rows `c..c + C` of `w` over `pairs`, added to `acc`
    /// from `at` on (rows of `x` down a column, columns `ld` apart).
    #[inline(always)]
    unsafe fn tile<const F: u8, const R: usize, const C: usize>(
        o: &Operands,
        pairs: &Range<usize>,
        i: usize,
        c: usize,
        acc: &mut [f32],
        at: usize,
        ld: usize,
    ) {
        let x = o.x;
        let rows: [XRow; R] = std::array::from_fn(|r| {
            let row = (i + r) * x.per_row;
            (
                x.x.as_ptr().add(row * super::PAIR),
                x.d.as_ptr().add(row * super::PAIR_LANES),
                x.offsets.as_ptr().add(row * super::PAIR_LANES),
            )
        });
        let ws: [*const u8; C] = std::array::from_fn(|n| o.w.as_ptr().add((c + n) * o.row_bytes));
        let mut sums = [[_mm256_setzero_ps(); C]; R];
        // A row's odd last block is half a pair.
        let whole = pairs.end.min(o.blocks / 2);
        for p in pairs.start..whole {
            tile_pair::<F, true, R, C>(&ws, &rows, p, &mut sums);
        }
        if whole < pairs.end {
            tile_pair::<F, false, R, C>(&ws, &rows, whole, &mut sums);
        }
        for (r, row) in sums.iter().enumerate() {
            for (n, &s) in row.iter().enumerate() {
                *acc.get_unchecked_mut(at + n * ld + r) += reduce(s);
            }
        }
    }

    /// `offset + lo · x_lo + hi · x_hi` in fours of bytes.
    #[inline(always)]
    unsafe fn vnni_sums(
        offset: __m256i,
        lo: __m256i,
        x_lo: __m256i,
        hi: __m256i,
        x_hi: __m256i,
    ) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(offset, lo, x_lo), hi, x_hi)
    }

    /// [`super::quantize`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn quantize(x: &[f32], q: &mut [i8], d: &mut [f32], sums: &mut [i32]) {
        super::quantize(x, q, d, sums)
    }

    /// [`super::scalar`] in 256-bit lanes for the format `F`: two blocks a step, each into
    /// its own sums held in registers, so that the multiply-adds of one do not wait for the
    /// other's. (Sums in an array indexed by the block's parity were kept on the stack, where
    /// each block waited on a store and a load.)
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `w` holds `d.len()` blocks, and `q` as many blocks of
    /// 32, as does `sums`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot<const F: u8>(w: &[u8], q: &[i8], d: &[f32], sums: &[i32]) -> f32 {
        let blocks = d.len();
        let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut even_offset, mut odd_offset) = (0f32, 0f32);
        let mut b = 0;
        while b + 2 <= blocks {
            even_offset += block::<F>(w, q, d, sums, b, &mut even);
            odd_offset += block::<F>(w, q, d, sums, b + 1, &mut odd);
            b += 2;
        }
        if b < blocks {
            even_offset += block::<F>(w, q, d, sums, b, &mut even);
        }
        let acc = _mm256_add_ps(even, odd);
        let half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
        let one = _mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1));
        let offset = [8.0, 16.0, 0.0][usize::from(F)];
        _mm_cvtss_f32(one) - offset * (even_offset + odd_offset)
    }

    /// Block `b`'s eight partial sums, scaled, added to `acc`; returns its scale times the
    /// activations' sum (the term the format's offset multiplies).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block<const F: u8>(
        w: &[u8],
        q: &[i8],
        d: &[f32],
        sums: &[i32],
        b: usize,
        acc: &mut __m256,
    ) -> f32 {
        let bytes = [18, 22, 34][usize::from(F)];
        let p = w.as_ptr().add(b * bytes);
        _mm_prefetch(p.wrapping_add(PREFETCH).cast(), _MM_HINT_T0);
        // Converted in all eight lanes: from one lane, the compiler inserted the scale into
        // whichever register was at hand, and every block waited for the previous one's sums.
        let scales = _mm256_cvtph_ps(_mm_set1_epi16(p.cast::<i16>().read_unaligned()));
        let x = q.as_ptr().add(b * BLOCK);
        let products = if F == Q8_0 {
            signed_sums(p, x)
        } else {
            block_sums::<F>(p, x)
        };
        *acc = _mm256_fmadd_ps(
            _mm256_mul_ps(scales, _mm256_set1_ps(*d.get_unchecked(b))),
            _mm256_cvtepi32_ps(products),
            *acc,
        );
        if F == Q8_0 {
            0.0
        } else {
            _mm256_cvtss_f32(scales) * (*d.get_unchecked(b) * *sums.get_unchecked(b) as f32)
        }
    }

    /// The Q8_0 block at `p` times the 32 activations at `x`, as eight i32 sums of four
    /// products: `maddubs` takes one unsigned operand, so the weights' signs move onto `x`.
    #[target_feature(enable = "avx2")]
    unsafe fn signed_sums(p: *const u8, x: *const i8) -> __m256i {
        let w = _mm256_loadu_si256(p.add(2).cast());
        let x = _mm256_loadu_si256(x.cast());
        let products = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
        _mm256_madd_epi16(products, _mm256_set1_epi16(1))
    }

    /// The Q4_0 or Q5_0 block at `p` times the 32 activations at `x`, as eight i32 sums of
    /// four products.
    #[target_feature(enable = "avx2")]
    unsafe fn block_sums<const F: u8>(p: *const u8, x: *const i8) -> __m256i {
        let nib = _mm_loadu_si128(p.add(if F == Q5_0 { 6 } else { 2 }).cast());
        let low = _mm256_set1_epi8(0x0f);
        let mut ws = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(nib, 4), nib), low);
        if F == Q5_0 {
            // Byte `j` of `spread` is byte `j / 8` of the fifth bits, and `bit` picks bit
            // `j % 8` of it.
            let spread = _mm256_set_epi64x(
                0x0303_0303_0303_0303,
                0x0202_0202_0202_0202,
                0x0101_0101_0101_0101,
                0,
            );
            let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
            let high = p.add(2).cast::<i32>().read_unaligned();
            let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(high), spread);
            let set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
            ws = _mm256_or_si256(ws, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
        }
        let x = _mm256_loadu_si256(x.cast());
        _mm256_madd_epi16(_mm256_maddubs_epi16(ws, x), _mm256_set1_epi16(1))
    }
}
