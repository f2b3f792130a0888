//! AVX-512 kernels. bf16: `vdpbf16ps` multiplies bf16 pairs exactly and accumulates in f32, 32
//! products per instruction, straight from the bf16 weights. f32: fused multiply-adds, 16 lanes.
//!
//! Two shapes. Up to [`MR`] rows of `x` (a decode step): the rows of `w` stream one after
//! another past those few rows, as dot products. More rows (a prompt): `x` is packed once into
//! panels of 16 rows, and each 32-bit granule of a row of `w` (a bf16 pair, or one f32) is
//! broadcast against a panel, so one register holds the sums of 16 rows of `x` and no
//! horizontal sums are left to do.

use std::arch::x86_64::*;
use std::marker::PhantomData;
use std::ops::Range;

use half::bf16;
use rayon::prelude::*;

use super::Columns;

/// The most rows of `x` that take the dot-product path.
const MR: usize = 4;
/// Rows of `x` in a packed panel: one register of f32 sums.
const PANEL: usize = 16;
/// The register tile of the packed path: rows of `w` by panels of `x`, 24 accumulators.
const TILE_ROWS: usize = 6;
const TILE_PANELS: usize = 4;
/// The packed path works on blocks of at most this many granules of `k` by
/// [`BLOCK_PANELS`] panels of `x`: 350 KiB of packed bf16 `x` that stays in L2 while the
/// tiles' rows of `w` pass through L1.
const BLOCK_GRANULES: usize = 768;
const BLOCK_PANELS: usize = 8;

/// One element type's vector loads, broadcasts and multiply-accumulate.
pub(super) trait Lanes: Sized + Sync {
    type Elem: Copy + Default + Send + Sync;
    type Vector: Copy;
    const LANES: usize;
    /// Elements in 32 bits: what one lane of a product consumes per step.
    const GRANULE: usize;
    fn detected() -> bool;
    unsafe fn load(p: *const Self::Elem) -> Self::Vector;
    /// The first `n < LANES` elements, zeros after.
    unsafe fn load_head(p: *const Self::Elem, n: usize) -> Self::Vector;
    /// Every lane holds the granule at `p`.
    unsafe fn broadcast(p: *const Self::Elem) -> Self::Vector;
    /// Every lane holds the one element at `p` and zeros: a granule cut short by a row's end.
    unsafe fn broadcast_head(p: *const Self::Elem) -> Self::Vector;
    unsafe fn mul_add(acc: __m512, a: Self::Vector, b: Self::Vector) -> __m512;
    /// [`columns`] compiled with this type's CPU features.
    unsafe fn columns(product: &Product<Self>, cols: Range<usize>, acc: &mut [f32]);
}

pub(super) struct Bf16;

impl Lanes for Bf16 {
    type Elem = bf16;
    type Vector = __m512bh;
    const LANES: usize = 32;
    const GRANULE: usize = 2;

    fn detected() -> bool {
        has_avx512_bf16()
    }

    #[inline(always)]
    unsafe fn load(p: *const bf16) -> __m512bh {
        std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(p.cast()))
    }

    #[inline(always)]
    unsafe fn load_head(p: *const bf16, n: usize) -> __m512bh {
        let mask: __mmask32 = (1u32 << n) - 1;
        std::mem::transmute::<__m512i, __m512bh>(_mm512_maskz_loadu_epi16(mask, p.cast()))
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const bf16) -> __m512bh {
        let pair = p.cast::<i32>().read_unaligned();
        std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair))
    }

    #[inline(always)]
    unsafe fn broadcast_head(p: *const bf16) -> __m512bh {
        let low = i32::from(p.cast::<u16>().read_unaligned());
        std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(low))
    }

    #[inline(always)]
    unsafe fn mul_add(acc: __m512, a: __m512bh, b: __m512bh) -> __m512 {
        _mm512_dpbf16_ps(acc, a, b)
    }

    unsafe fn columns(product: &Product<Self>, cols: Range<usize>, acc: &mut [f32]) {
        columns_bf16(product, cols, acc)
    }
}

pub(super) struct F32;

impl Lanes for F32 {
    type Elem = f32;
    type Vector = __m512;
    const LANES: usize = 16;
    const GRANULE: usize = 1;

    fn detected() -> bool {
        has_avx512()
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }

    #[inline(always)]
    unsafe fn load_head(p: *const f32, n: usize) -> __m512 {
        let mask: __mmask16 = (1u16 << n) - 1;
        _mm512_maskz_loadu_ps(mask, p)
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> __m512 {
        _mm512_set1_ps(p.read())
    }

    #[inline(always)]
    unsafe fn broadcast_head(p: *const f32) -> __m512 {
        Self::broadcast(p)
    }

    #[inline(always)]
    unsafe fn mul_add(acc: __m512, a: __m512, b: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, acc)
    }

    unsafe fn columns(product: &Product<Self>, cols: Range<usize>, acc: &mut [f32]) {
        columns_f32(product, cols, acc)
    }
}

pub fn has_avx512_bf16() -> bool {
    has_avx512() && is_x86_feature_detected!("avx512bf16")
}

pub fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
}

/// `x · wᵀ` with `x` packed when it has more than [`MR`] rows.
pub(super) struct Product<'a, L: Lanes> {
    x: &'a [L::Elem],
    w: &'a [L::Elem],
    /// `x` in panels of [`PANEL`] rows, zero-padded, from `packed_at` on; empty on the
    /// dot-product path.
    packed: Vec<L::Elem>,
    packed_at: usize,
    m: usize,
    k: usize,
    lanes: PhantomData<L>,
}

impl<'a, L: Lanes> Product<'a, L> {
    pub(super) fn new(x: &'a [L::Elem], w: &'a [L::Elem], m: usize, k: usize) -> Self {
        assert!(L::detected(), "the CPU lacks the features of this kernel");
        assert_eq!(x.len(), m * k, "x is not (m, k)");
        assert_eq!(w.len() % k.max(1), 0, "w is not (n, k)");
        let (packed, packed_at) = if m > MR && k > 0 {
            let (panels, _) = split(m);
            let rows = (panels * PANEL).min(m);
            pack::<L>(&x[..rows * k], rows, k)
        } else {
            (Vec::new(), 0)
        };
        Self {
            x,
            w,
            packed,
            packed_at,
            m,
            k,
            lanes: PhantomData,
        }
    }

    fn is_packed(&self) -> bool {
        !self.packed.is_empty()
    }

    /// The packed panels of `x`, and the rows after them that take the dot-product path: a
    /// last panel of a few rows would cost as much as a full one (a 129-token prompt would
    /// pay for 144).
    fn split(&self) -> (usize, usize) {
        split(self.m)
    }
}

impl<L: Lanes> Columns for Product<'_, L> {
    fn ld(&self) -> usize {
        let (panels, tail) = self.split();
        panels * PANEL + tail
    }

    fn columns(&self, cols: Range<usize>, acc: &mut [f32]) {
        assert!(
            self.w.len() >= cols.end * self.k,
            "columns past the end of w"
        );
        assert!(acc.len() >= self.ld() * cols.len(), "acc is too short");
        // SAFETY: `new` checked the CPU features and the length of `x`, and `packed` holds
        // whole panels; the asserts above bound every row of `w` and every column of `acc`
        // the tiles touch.
        unsafe { L::columns(self, cols, acc) }
    }
}

/// See [`Product::split`].
fn split(m: usize) -> (usize, usize) {
    match m % PANEL {
        _ if m <= MR => (0, m),
        tail if tail <= MR => (m / PANEL, tail),
        _ => (m.div_ceil(PANEL), 0),
    }
}

/// An output element type of the AVX-512 stores.
pub(super) trait Sink: Copy {
    /// Writes the lanes of `v` that `mask` selects to `out[..16]`.
    unsafe fn put(out: *mut Self, v: __m512, mask: __mmask16);
}

impl Sink for bf16 {
    #[inline(always)]
    unsafe fn put(out: *mut bf16, v: __m512, mask: __mmask16) {
        let narrow = std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v));
        _mm512_mask_storeu_epi16(out.cast(), mask.into(), _mm512_castsi256_si512(narrow));
    }
}

impl Sink for f32 {
    #[inline(always)]
    unsafe fn put(out: *mut f32, v: __m512, mask: __mmask16) {
        _mm512_mask_storeu_ps(out, mask, v);
    }
}

/// [`super::Store`] for bf16 outputs; only called after [`has_avx512_bf16`].
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn store_bf16(
    acc: &[f32],
    ld: usize,
    cols: usize,
    m: usize,
    out: *mut bf16,
    n: usize,
) {
    store_impl(acc, ld, cols, m, out, n)
}

/// [`super::Store`] for f32 outputs; only called after [`has_avx512`].
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn store_f32(
    acc: &[f32],
    ld: usize,
    cols: usize,
    m: usize,
    out: *mut f32,
    n: usize,
) {
    store_impl(acc, ld, cols, m, out, n)
}

/// Each output row takes 16 columns at a time by one gather: the 16 cache lines of a group of
/// columns serve 16 consecutive rows from L1.
#[inline(always)]
unsafe fn store_impl<T: Sink>(
    acc: &[f32],
    ld: usize,
    cols: usize,
    m: usize,
    out: *mut T,
    n: usize,
) {
    const GROUP: usize = 16;
    assert!(acc.len() >= cols * ld && m <= ld, "acc is not (cols, ld)");
    let stride = i32::try_from(ld * (GROUP - 1) * 4).map(|_| ld as i32);
    let stride = stride.expect("a column group fits 32-bit offsets");
    let lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    let offsets = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(stride));
    for c0 in (0..cols).step_by(GROUP) {
        let mask: __mmask16 = (((1u32 << (cols - c0).min(GROUP)) - 1) & 0xffff) as u16;
        let base = acc.as_ptr().add(c0 * ld);
        for i in 0..m {
            let v = _mm512_mask_i32gather_ps::<4>(
                _mm512_setzero_ps(),
                mask,
                offsets,
                base.add(i).cast(),
            );
            T::put(out.add(i * n + c0), v, mask);
        }
    }
}

/// Columns of `w` per block of [`xw_bf16`]: four 16-lane sums per row of `x`.
pub(super) const XW_COLS: usize = 64;

pub(super) fn has_avx512_bf16_vl() -> bool {
    has_avx512_bf16() && is_x86_feature_detected!("avx512vl")
}

/// bf16 columns `cols` (at most [`XW_COLS`]) of `x · w` for `x: (m, k)` and `w: (k, n)`, both
/// row-major, into `out` laid out `(m, cols.len())`. Only called after [`has_avx512_bf16_vl`].
pub(super) fn xw_bf16(
    x: &[bf16],
    w: &[bf16],
    m: usize,
    n: usize,
    cols: Range<usize>,
    out: &mut [bf16],
) {
    assert!(has_avx512_bf16_vl());
    let k = x.len().checked_div(m).unwrap_or(0);
    assert!(
        x.len() == m * k && w.len() == k * n,
        "x is not (m, k) or w is not (k, n)"
    );
    assert!(cols.end <= n && cols.len() <= XW_COLS && out.len() == m * cols.len());
    // SAFETY: the features are checked and every index stays inside the asserted lengths.
    unsafe { xw_bf16_enabled(x.as_ptr(), w.as_ptr(), m, n, k, cols, out.as_mut_ptr()) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn xw_bf16_enabled(
    x: *const bf16,
    w: *const bf16,
    m: usize,
    n: usize,
    k: usize,
    cols: Range<usize>,
    out: *mut bf16,
) {
    let width = cols.len();
    let mut masks = [0 as __mmask16; XW_COLS / 16];
    for (v, mask) in masks.iter_mut().enumerate() {
        let lanes = width.saturating_sub(16 * v).min(16);
        *mask = ((1u32 << lanes) - 1) as __mmask16;
    }
    let w = w.add(cols.start);
    for r0 in (0..m).step_by(MR) {
        let (x, out) = (x.add(r0 * k), out.add(r0 * width));
        match (m - r0).min(MR) {
            1 => xw_rows::<1>(x, w, n, k, &masks, out, width),
            2 => xw_rows::<2>(x, w, n, k, &masks, out, width),
            3 => xw_rows::<3>(x, w, n, k, &masks, out, width),
            _ => xw_rows::<4>(x, w, n, k, &masks, out, width),
        }
    }
}

/// `R` rows of `x` against a block of columns of `w`: each row of `w` is widened once and
/// multiplied by the `R` values of `x` that meet it, into 16-lane f32 sums.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn xw_rows<const R: usize>(
    x: *const bf16,
    w: *const bf16,
    n: usize,
    k: usize,
    masks: &[__mmask16; XW_COLS / 16],
    out: *mut bf16,
    width: usize,
) {
    const V: usize = XW_COLS / 16;
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for t in 0..k {
        let row = w.add(t * n);
        let mut wv = [_mm512_setzero_ps(); V];
        for v in 0..V {
            let half = _mm256_maskz_loadu_epi16(masks[v], row.add(16 * v).cast());
            wv[v] = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(half)));
        }
        for r in 0..R {
            let xv = _mm512_set1_ps((*x.add(r * k + t)).to_f32());
            for v in 0..V {
                acc[r][v] = _mm512_fmadd_ps(xv, wv[v], acc[r][v]);
            }
        }
    }
    for r in 0..R {
        for v in 0..V {
            let narrow = std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(acc[r][v]));
            _mm256_mask_storeu_epi16(out.add(r * width + 16 * v).cast(), masks[v], narrow);
        }
    }
}

/// `x` in panels of [`PANEL`] rows: granule `g` of row `t` of a panel at `(g * PANEL + t)`
/// granules from the panel's start, so one load gives the same granule of 16 rows. The panels
/// start at the returned index, on a cache line: a load that straddles two lines costs two.
fn pack<L: Lanes>(x: &[L::Elem], m: usize, k: usize) -> (Vec<L::Elem>, usize) {
    const { assert!(L::GRANULE > 0) };
    const LINE: usize = 64;
    let panel_len = panel_len::<L>(k);
    let whole = k / L::GRANULE;
    let len = m.div_ceil(PANEL) * panel_len;
    let mut packed = vec![L::Elem::default(); len + LINE / std::mem::size_of::<L::Elem>()];
    let at = packed.as_ptr().align_offset(LINE);
    packed[at..at + len]
        .par_chunks_mut(panel_len)
        .zip(x.par_chunks(PANEL * k))
        .for_each(|(panel, rows)| {
            let rows: Vec<&[L::Elem]> = rows.chunks_exact(k).collect();
            // Granule by granule, so that the writes are sequential and the reads are 16
            // sequential streams.
            for (g, slots) in panel.chunks_exact_mut(PANEL * L::GRANULE).enumerate() {
                let from = g * L::GRANULE;
                for (slot, row) in slots.chunks_exact_mut(L::GRANULE).zip(&rows) {
                    if g < whole {
                        slot.copy_from_slice(&row[from..from + L::GRANULE]);
                    } else {
                        slot[..k - from].copy_from_slice(&row[from..]);
                    }
                }
            }
        });
    (packed, at)
}

fn panel_len<L: Lanes>(k: usize) -> usize {
    k.div_ceil(L::GRANULE) * PANEL * L::GRANULE
}

#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn columns_bf16(product: &Product<Bf16>, cols: Range<usize>, acc: &mut [f32]) {
    columns_impl(product, cols, acc)
}

#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn columns_f32(product: &Product<F32>, cols: Range<usize>, acc: &mut [f32]) {
    columns_impl(product, cols, acc)
}

#[inline(always)]
unsafe fn columns_impl<L: Lanes>(product: &Product<L>, cols: Range<usize>, acc: &mut [f32]) {
    let (x, w, k, m) = (product.x.as_ptr(), product.w.as_ptr(), product.k, product.m);
    if k == 0 {
        return;
    }
    let acc = acc.as_mut_ptr();
    if !product.is_packed() {
        // A few rows of `x` stay in L1 while the rows of `w` are read one after another: one
        // sequential stream, which the prefetchers follow best. Interleaving rows of `w` in
        // register tiles halved the bandwidth of a decode step.
        for j in cols.clone() {
            let out = acc.add((j - cols.start) * m);
            let wj = w.add(j * k);
            match m {
                1 => *out = dot::<L>(x, wj, k),
                _ => few_rows::<L>(m, x, k, wj, k, out, false),
            }
        }
        return;
    }
    let ld = product.ld();
    let (panels, tail) = product.split();
    let tail_x = x.add(panels * PANEL * k);
    let granules = k.div_ceil(L::GRANULE);
    let panel_len = panel_len::<L>(k);
    // Equal blocks: a short last block would cost a pass over the sums for little work.
    let block = granules.div_ceil(granules.div_ceil(BLOCK_GRANULES));
    for g0 in (0..granules).step_by(block) {
        let pass = Pass {
            granules: (granules - g0).min(block),
            cut: g0 + block >= granules && k % L::GRANULE != 0,
            first: g0 == 0,
            panel_len,
            k,
            ld,
        };
        for b0 in (0..panels).step_by(BLOCK_PANELS) {
            let b1 = (b0 + BLOCK_PANELS).min(panels);
            for j in cols.clone().step_by(TILE_ROWS) {
                let wj = w.add(j * k + g0 * L::GRANULE);
                for p0 in (b0..b1).step_by(TILE_PANELS) {
                    let xp = product
                        .packed
                        .as_ptr()
                        .add(product.packed_at + p0 * panel_len + g0 * PANEL * L::GRANULE);
                    let out = acc.add((j - cols.start) * ld + p0 * PANEL);
                    let n_panels = (b1 - p0).min(TILE_PANELS);
                    match (cols.end - j).min(TILE_ROWS) {
                        1 => tile_rows::<L, 1>(n_panels, xp, wj, out, &pass),
                        2 => tile_rows::<L, 2>(n_panels, xp, wj, out, &pass),
                        3 => tile_rows::<L, 3>(n_panels, xp, wj, out, &pass),
                        4 => tile_rows::<L, 4>(n_panels, xp, wj, out, &pass),
                        5 => tile_rows::<L, 5>(n_panels, xp, wj, out, &pass),
                        _ => tile_rows::<L, 6>(n_panels, xp, wj, out, &pass),
                    }
                }
                if tail > 0 && b1 == panels {
                    // The rows of `w` just used are still in cache.
                    let len = (pass.granules * L::GRANULE).min(k - g0 * L::GRANULE);
                    for jj in j..(j + TILE_ROWS).min(cols.end) {
                        let out = acc.add((jj - cols.start) * ld + panels * PANEL);
                        let xt = tail_x.add(g0 * L::GRANULE);
                        let wt = w.add(jj * k + g0 * L::GRANULE);
                        few_rows::<L>(tail, xt, k, wt, len, out, !pass.first);
                    }
                }
            }
        }
    }
}

/// One pass of the packed path over a block of `k`.
struct Pass {
    /// Granules in this block.
    granules: usize,
    /// Whether the block's last granule is cut short by the end of an odd-length row.
    cut: bool,
    /// Whether the sums start from zero rather than from the earlier blocks' sums.
    first: bool,
    panel_len: usize,
    k: usize,
    ld: usize,
}

#[inline(always)]
unsafe fn tile_rows<L: Lanes, const R: usize>(
    panels: usize,
    x: *const L::Elem,
    w: *const L::Elem,
    out: *mut f32,
    pass: &Pass,
) {
    match panels {
        1 => tile::<L, R, 1>(x, w, out, pass),
        2 => tile::<L, R, 2>(x, w, out, pass),
        3 => tile::<L, R, 3>(x, w, out, pass),
        _ => tile::<L, R, 4>(x, w, out, pass),
    }
}

/// Sums of `R` rows of `w` against `P` panels of packed `x` over one block of `k`, into
/// `out[r * ld + p * PANEL + t]`.
// Index loops over the const-sized register arrays are what unrolls into registers.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn tile<L: Lanes, const R: usize, const P: usize>(
    x: *const L::Elem,
    w: *const L::Elem,
    out: *mut f32,
    pass: &Pass,
) {
    let mut acc = [[_mm512_setzero_ps(); P]; R];
    if !pass.first {
        for r in 0..R {
            for p in 0..P {
                acc[r][p] = _mm512_loadu_ps(out.add(r * pass.ld + p * PANEL));
            }
        }
    }
    let whole = pass.granules - usize::from(pass.cut);
    for g in 0..whole {
        granule::<L, R, P>(&mut acc, x, w, g, pass, false);
    }
    if pass.cut {
        granule::<L, R, P>(&mut acc, x, w, whole, pass, true);
    }
    for r in 0..R {
        for p in 0..P {
            _mm512_storeu_ps(out.add(r * pass.ld + p * PANEL), acc[r][p]);
        }
    }
}

/// Granule `g` of [`tile`]: the panels' loads, then each row's broadcast against them; `cut`:
/// the granule is cut short by the end of an odd-length row.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn granule<L: Lanes, const R: usize, const P: usize>(
    acc: &mut [[__m512; P]; R],
    x: *const L::Elem,
    w: *const L::Elem,
    g: usize,
    pass: &Pass,
    cut: bool,
) {
    let mut xv = [L::load_head(x, 0); P];
    for p in 0..P {
        xv[p] = L::load(x.add(p * pass.panel_len + g * PANEL * L::GRANULE));
    }
    for r in 0..R {
        let at = w.add(r * pass.k + g * L::GRANULE);
        let wv = if cut {
            L::broadcast_head(at)
        } else {
            L::broadcast(at)
        };
        for p in 0..P {
            acc[r][p] = L::mul_add(acc[r][p], wv, xv[p]);
        }
    }
}

/// `x · w` over `k` elements, row by row: consecutive rows of `w` are one sequential stream.
#[inline(always)]
unsafe fn dot<L: Lanes>(x: *const L::Elem, w: *const L::Elem, k: usize) -> f32 {
    const CHAINS: usize = 4;
    let mut acc = [_mm512_setzero_ps(); CHAINS];
    let step = L::LANES * CHAINS;
    let full = k / step * step;
    let mut p = 0;
    while p < full {
        for (c, a) in acc.iter_mut().enumerate() {
            let o = p + c * L::LANES;
            *a = L::mul_add(*a, L::load(x.add(o)), L::load(w.add(o)));
        }
        p += step;
    }
    while p + L::LANES <= k {
        acc[0] = L::mul_add(acc[0], L::load(x.add(p)), L::load(w.add(p)));
        p += L::LANES;
    }
    if p < k {
        let n = k - p;
        acc[1] = L::mul_add(acc[1], L::load_head(x.add(p), n), L::load_head(w.add(p), n));
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(sum)
}

/// [`dots`] for `rows` (1 to [`MR`]) rows of `x`.
#[inline(always)]
unsafe fn few_rows<L: Lanes>(
    rows: usize,
    x: *const L::Elem,
    x_stride: usize,
    w: *const L::Elem,
    len: usize,
    out: *mut f32,
    add: bool,
) {
    match rows {
        1 => dots::<L, 1>(x, x_stride, w, len, out, add),
        2 => dots::<L, 2>(x, x_stride, w, len, out, add),
        3 => dots::<L, 3>(x, x_stride, w, len, out, add),
        _ => dots::<L, 4>(x, x_stride, w, len, out, add),
    }
}

/// `out[r] (+)= x[r] · w` over `len` elements for `R` rows of `x`, `x_stride` apart, against
/// one row of `w`; `add` adds to the sums in `out` instead of overwriting them.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn dots<L: Lanes, const R: usize>(
    x: *const L::Elem,
    x_stride: usize,
    w: *const L::Elem,
    len: usize,
    out: *mut f32,
    add: bool,
) {
    let mut acc = [_mm512_setzero_ps(); R];
    let full = len / L::LANES * L::LANES;
    let mut p = 0;
    while p < full {
        let wv = L::load(w.add(p));
        for r in 0..R {
            acc[r] = L::mul_add(acc[r], L::load(x.add(r * x_stride + p)), wv);
        }
        p += L::LANES;
    }
    if p < len {
        let n = len - p;
        let wv = L::load_head(w.add(p), n);
        for r in 0..R {
            acc[r] = L::mul_add(acc[r], L::load_head(x.add(r * x_stride + p), n), wv);
        }
    }
    for r in 0..R {
        let sum = _mm512_reduce_add_ps(acc[r]);
        *out.add(r) = if add { *out.add(r) + sum } else { sum };
    }
}
