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

use half::f16;

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

    /// What a stored weight is above the value it holds, in steps of the block's scale.
    fn offset(self) -> f32 {
        match self {
            Self::Q4_0 => 8.0,
            Self::Q5_0 => 16.0,
            Self::Q8_0 => 0.0,
        }
    }
}

/// Rows of activations in blocks of 32: `q · d` is the value, and `s` is `d · Σ q`, the term
/// that the weights' offset multiplies.
pub(super) struct Q8 {
    q: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
    blocks: usize,
}

impl Q8 {
    /// The `m` rows of `x`, `k` each (a multiple of [`BLOCK`]), on the widest instruction set
    /// the CPU has unless `portable`: every path rounds alike.
    pub(super) fn new(x: &[f32], m: usize, k: usize, portable: bool) -> Self {
        let blocks = k / BLOCK;
        let mut q8 = Self {
            q: vec![0i8; m * k],
            d: vec![0f32; m * blocks],
            s: vec![0f32; m * blocks],
            blocks,
        };
        let x = &x[..m * k];
        #[cfg(target_arch = "x86_64")]
        if !portable && avx2::detected() {
            // SAFETY: the features are checked above.
            unsafe { avx2::quantize(x, &mut q8.q, &mut q8.d, &mut q8.s) };
            return q8;
        }
        let _ = portable;
        quantize(x, &mut q8.q, &mut q8.d, &mut q8.s);
        q8
    }

    fn row(&self, i: usize) -> (&[i8], &[f32], &[f32]) {
        let b = self.blocks;
        (
            &self.q[i * b * BLOCK..(i + 1) * b * BLOCK],
            &self.d[i * b..(i + 1) * b],
            &self.s[i * b..(i + 1) * b],
        )
    }
}

/// Each block of 32 in `x` rounded to 8 bits under its own scale, into `q`, with the scale
/// in `d` and the scale times the block's sum in `s`. Inlined into each instruction set's
/// caller, where the compiler vectorizes the rounding (a library call per value otherwise).
#[inline(always)]
fn quantize(x: &[f32], q: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    let blocks = x.chunks_exact(BLOCK).zip(q.chunks_exact_mut(BLOCK));
    for ((src, dst), (d, s)) in blocks.zip(d.iter_mut().zip(s.iter_mut())) {
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
        *s = scale * sum as f32;
    }
}

/// Σ w·x for one row `w` of `format` blocks and row `i` of `x`, on the widest instruction set
/// the CPU has unless `portable`.
pub(super) fn dot(format: Format, w: &[u8], x: &Q8, i: usize, portable: bool) -> f32 {
    let (q, d, s) = x.row(i);
    assert_eq!(
        w.len(),
        x.blocks * format.block_bytes(),
        "w is not a row of x's length"
    );
    #[cfg(target_arch = "x86_64")]
    if !portable && avx2::detected() {
        // SAFETY: the features are checked above, `w` is `x.blocks` blocks (asserted), and
        // `Q8::row` gives that many blocks of `q`, `d` and `s`.
        return unsafe {
            match format {
                Format::Q4_0 => avx2::dot::<{ avx2::Q4_0 }>(w, q, d, s),
                Format::Q5_0 => avx2::dot::<{ avx2::Q5_0 }>(w, q, d, s),
                Format::Q8_0 => avx2::dot::<{ avx2::Q8_0 }>(w, q, d, s),
            }
        };
    }
    let _ = portable;
    scalar(format, w, q, d, s)
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

fn scalar(format: Format, w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let mut sum = 0f32;
    let blocks = w.chunks_exact(format.block_bytes());
    for (b, block) in blocks.enumerate() {
        let ws = stored(format, block);
        let x = &q[b * BLOCK..(b + 1) * BLOCK];
        let dot: i32 = ws.iter().zip(x).map(|(&a, &y)| a * i32::from(y)).sum();
        sum += scale(block) * (d[b] * dot as f32 - format.offset() * s[b]);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

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

    /// [`super::quantize`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn quantize(x: &[f32], q: &mut [i8], d: &mut [f32], s: &mut [f32]) {
        super::quantize(x, q, d, s)
    }

    /// [`super::scalar`] in 256-bit lanes for the format `F`: two blocks a step, each into
    /// its own sums held in registers, so that the multiply-adds of one do not wait for the
    /// other's. (Sums in an array indexed by the block's parity were kept on the stack, where
    /// each block waited on a store and a load.)
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `w` holds `d.len()` blocks, and `q` as many blocks of
    /// 32, as does `s`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot<const F: u8>(w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32 {
        let blocks = d.len();
        let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut even_offset, mut odd_offset) = (0f32, 0f32);
        let mut b = 0;
        while b + 2 <= blocks {
            even_offset += block::<F>(w, q, d, s, b, &mut even);
            odd_offset += block::<F>(w, q, d, s, b + 1, &mut odd);
            b += 2;
        }
        if b < blocks {
            even_offset += block::<F>(w, q, d, s, b, &mut even);
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
        s: &[f32],
        b: usize,
        acc: &mut __m256,
    ) -> f32 {
        let bytes = [18, 22, 34][usize::from(F)];
        let p = w.as_ptr().add(b * bytes);
        // Converted in all eight lanes: from one lane, the compiler inserted the scale into
        // whichever register was at hand, and every block waited for the previous one's sums.
        let scales = _mm256_cvtph_ps(_mm_set1_epi16(p.cast::<i16>().read_unaligned()));
        let x = q.as_ptr().add(b * BLOCK);
        let sums = if F == Q8_0 {
            signed_sums(p, x)
        } else {
            block_sums::<F>(p, x)
        };
        *acc = _mm256_fmadd_ps(
            _mm256_mul_ps(scales, _mm256_set1_ps(*d.get_unchecked(b))),
            _mm256_cvtepi32_ps(sums),
            *acc,
        );
        if F == Q8_0 {
            0.0
        } else {
            _mm256_cvtss_f32(scales) * *s.get_unchecked(b)
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
