//! The SIMD kernels, written once over [`Lanes`]: each instruction set (`avx512`, `avx2`,
//! `neon`) supplies loads, broadcasts and a multiply-accumulate into f32 sums, and compiles
//! these loops with its own features through [`Lanes::columns`] and [`Widen::xw`].
//!
//! Two shapes. Up to [`MR`] rows of `x` (a decode step): the rows of `w` stream one after
//! another past those few rows, as dot products. More rows (a prompt): `x` is packed once into
//! panels of [`Lanes::PANEL`] rows, and each 32-bit granule of a row of `w` (a bf16 pair, or
//! one f32) is broadcast against a panel, so one register holds the sums of a panel's rows and
//! no horizontal sums are left to do.

use std::marker::PhantomData;
use std::ops::Range;

use half::bf16;
use rayon::prelude::*;

use super::Columns;

/// The most rows of `x` that take the dot-product path.
pub(super) const MR: usize = 4;
/// The packed path works on blocks of at most this many granules of `k` by
/// [`BLOCK_PANELS`] panels of `x`, so that the packed `x` stays in L2 while the tiles' rows
/// of `w` pass through L1.
const BLOCK_GRANULES: usize = 768;
const BLOCK_PANELS: usize = 8;

/// One instruction set's vectors for one element type.
///
/// # Safety
/// Every `unsafe fn` may only run on a CPU with the features that [`Lanes::detected`] checks,
/// on pointers valid for the elements it reads or writes.
pub(super) unsafe trait Lanes: Sized + Sync {
    type Elem: Copy + Default + Send + Sync;
    /// [`Lanes::LANES`] elements as the multiply-accumulate takes them.
    type Vector: Copy;
    /// f32 sums, [`Lanes::PANEL`] of them.
    type Acc: Copy;
    /// Elements per [`Lanes::Vector`].
    const LANES: usize;
    /// f32 lanes per [`Lanes::Acc`]: the rows of a packed panel of `x`.
    const PANEL: usize;
    /// Elements in 32 bits: what one lane of a product consumes per step.
    const GRANULE: usize;
    /// The register tile of the packed path: rows of `w` by panels of `x`.
    const TILE_ROWS: usize;
    const TILE_PANELS: usize;
    fn detected() -> bool;
    unsafe fn load(p: *const Self::Elem) -> Self::Vector;
    /// The first `n < LANES` elements, zeros after.
    unsafe fn load_head(p: *const Self::Elem, n: usize) -> Self::Vector;
    /// Every lane holds the granule at `p`.
    unsafe fn broadcast(p: *const Self::Elem) -> Self::Vector;
    /// Every lane holds the one element at `p` and zeros: a granule cut short by a row's end.
    unsafe fn broadcast_head(p: *const Self::Elem) -> Self::Vector;
    unsafe fn mul_add(acc: Self::Acc, a: Self::Vector, b: Self::Vector) -> Self::Acc;
    unsafe fn zero() -> Self::Acc;
    unsafe fn load_sums(p: *const f32) -> Self::Acc;
    unsafe fn store_sums(p: *mut f32, v: Self::Acc);
    unsafe fn add(a: Self::Acc, b: Self::Acc) -> Self::Acc;
    unsafe fn reduce(v: Self::Acc) -> f32;
    /// [`columns`] compiled with this instruction set's features.
    unsafe fn columns(
        product: &Product<Self>,
        w: &[Self::Elem],
        cols: Range<usize>,
        acc: &mut [f32],
    );
}

/// `x · wᵀ` with `x` packed when it has more than [`MR`] rows.
pub(super) struct Product<'a, L: Lanes> {
    x: &'a [L::Elem],
    w: &'a [L::Elem],
    /// `x` in panels of [`Lanes::PANEL`] rows, zero-padded, from `packed_at` on; empty on the
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
            let (panels, _) = split::<L>(m);
            let rows = (panels * L::PANEL).min(m);
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

    /// [`Columns::columns`] against the rows of another `w`.
    pub(super) fn columns_of(&self, w: &[L::Elem], cols: Range<usize>, acc: &mut [f32]) {
        assert!(w.len() >= cols.end * self.k, "columns past the end of w");
        assert!(acc.len() >= self.ld() * cols.len(), "acc is too short");
        // SAFETY: `new` checked the CPU features and the length of `x`, and `packed` holds
        // whole panels; the asserts above bound every row of `w` and every column of `acc`
        // the tiles touch.
        unsafe { L::columns(self, w, cols, acc) }
    }
}

impl<L: Lanes> Columns for Product<'_, L> {
    fn ld(&self) -> usize {
        let (panels, tail) = split::<L>(self.m);
        panels * L::PANEL + tail
    }

    fn columns(&self, cols: Range<usize>, acc: &mut [f32]) {
        self.columns_of(self.w, cols, acc)
    }
}

impl<L: Lanes<Elem = f32>> super::F32Rows for Product<'_, L> {
    const MIN_ROWS: usize = L::TILE_ROWS;

    fn columns_of(&self, w: &[f32], cols: Range<usize>, acc: &mut [f32]) {
        Product::columns_of(self, w, cols, acc)
    }
}

/// The packed panels of `x`, and the rows after them that take the dot-product path: a last
/// panel of a few rows would cost as much as a full one (a 129-token prompt would pay for
/// 144).
fn split<L: Lanes>(m: usize) -> (usize, usize) {
    match m % L::PANEL {
        _ if m <= MR => (0, m),
        tail if tail <= MR => (m / L::PANEL, tail),
        _ => (m.div_ceil(L::PANEL), 0),
    }
}

/// `x` in panels of [`Lanes::PANEL`] rows: granule `g` of row `t` of a panel at
/// `(g * PANEL + t)` granules from the panel's start, so one load gives the same granule of a
/// panel's rows. The panels start at the returned index, on a cache line: a load that
/// straddles two lines costs two.
fn pack<L: Lanes>(x: &[L::Elem], m: usize, k: usize) -> (Vec<L::Elem>, usize) {
    const LINE: usize = 64;
    let panel_len = panel_len::<L>(k);
    let whole = k / L::GRANULE;
    let len = m.div_ceil(L::PANEL) * panel_len;
    let mut packed = vec![L::Elem::default(); len + LINE / std::mem::size_of::<L::Elem>()];
    let at = packed.as_ptr().align_offset(LINE);
    packed[at..at + len]
        .par_chunks_mut(panel_len)
        .zip(x.par_chunks(L::PANEL * k))
        .for_each(|(panel, rows)| {
            let rows: Vec<&[L::Elem]> = rows.chunks_exact(k).collect();
            // Granule by granule, so that the writes are sequential and the reads are one
            // sequential stream per row.
            for (g, slots) in panel.chunks_exact_mut(L::PANEL * L::GRANULE).enumerate() {
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
    k.div_ceil(L::GRANULE) * L::PANEL * L::GRANULE
}

/// The `#[target_feature]` functions of one instruction set, `$features` enabled: the loops of
/// this module compiled for its `Bf16` and `F32` lanes, which its [`Lanes::columns`] and
/// [`Widen::xw`] call.
macro_rules! entry_points {
    ($features:literal) => {
        #[target_feature(enable = $features)]
        unsafe fn columns_bf16(
            product: &Product<Bf16>,
            w: &[bf16],
            cols: Range<usize>,
            acc: &mut [f32],
        ) {
            simd::columns(product, w, cols, acc)
        }

        #[target_feature(enable = $features)]
        unsafe fn columns_f32(
            product: &Product<F32>,
            w: &[f32],
            cols: Range<usize>,
            acc: &mut [f32],
        ) {
            simd::columns(product, w, cols, acc)
        }

        #[target_feature(enable = $features)]
        unsafe fn xw_bf16(
            x: *const bf16,
            w: *const bf16,
            m: usize,
            n: usize,
            k: usize,
            cols: Range<usize>,
            out: *mut bf16,
        ) {
            simd::xw::<Bf16>(x, w, m, n, k, cols, out)
        }
    };
}
pub(super) use entry_points;

/// The body of every [`Lanes::columns`].
///
/// # Safety
/// As [`Lanes`]; `product`, `cols` and `acc` as checked by [`Product`]'s `columns`.
#[inline(always)]
pub(super) unsafe fn columns<L: Lanes>(
    product: &Product<L>,
    w: &[L::Elem],
    cols: Range<usize>,
    acc: &mut [f32],
) {
    let (x, w, k, m) = (product.x.as_ptr(), w.as_ptr(), product.k, product.m);
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
    let (panels, tail) = split::<L>(m);
    let tail_x = x.add(panels * L::PANEL * k);
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
            for j in cols.clone().step_by(L::TILE_ROWS) {
                let wj = w.add(j * k + g0 * L::GRANULE);
                for p0 in (b0..b1).step_by(L::TILE_PANELS) {
                    let xp = product
                        .packed
                        .as_ptr()
                        .add(product.packed_at + p0 * panel_len + g0 * L::PANEL * L::GRANULE);
                    let out = acc.add((j - cols.start) * ld + p0 * L::PANEL);
                    let n_panels = (b1 - p0).min(L::TILE_PANELS);
                    match (cols.end - j).min(L::TILE_ROWS) {
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
                    for jj in j..(j + L::TILE_ROWS).min(cols.end) {
                        let out = acc.add((jj - cols.start) * ld + panels * L::PANEL);
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
    let mut acc = [[L::zero(); P]; R];
    if !pass.first {
        for r in 0..R {
            for p in 0..P {
                acc[r][p] = L::load_sums(out.add(r * pass.ld + p * L::PANEL));
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
            L::store_sums(out.add(r * pass.ld + p * L::PANEL), acc[r][p]);
        }
    }
}

/// Granule `g` of [`tile`]: the panels' loads, then each row's broadcast against them; `cut`:
/// the granule is cut short by the end of an odd-length row.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn granule<L: Lanes, const R: usize, const P: usize>(
    acc: &mut [[L::Acc; P]; R],
    x: *const L::Elem,
    w: *const L::Elem,
    g: usize,
    pass: &Pass,
    cut: bool,
) {
    // Overwritten below; a panel holds at least one vector at `x`.
    let mut xv = [L::load(x); P];
    for p in 0..P {
        xv[p] = L::load(x.add(p * pass.panel_len + g * L::PANEL * L::GRANULE));
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
    let mut acc = [L::zero(); CHAINS];
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
    L::reduce(L::add(L::add(acc[0], acc[1]), L::add(acc[2], acc[3])))
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
    let mut acc = [L::zero(); R];
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
        let sum = L::reduce(acc[r]);
        *out.add(r) = if add { *out.add(r) + sum } else { sum };
    }
}

/// bf16 rows widened to f32 sums and sums narrowed back: what [`xw`] needs beyond [`Lanes`].
///
/// # Safety
/// As [`Lanes`].
pub(super) unsafe trait Widen: Lanes {
    /// The first `n <= PANEL` bf16 at `p`, widened; zeros after.
    unsafe fn load_widened(p: *const bf16, n: usize) -> Self::Acc;
    /// Every lane holds `v`.
    unsafe fn splat(v: f32) -> Self::Acc;
    unsafe fn fma(a: Self::Acc, b: Self::Acc, acc: Self::Acc) -> Self::Acc;
    /// Rounds the first `n <= PANEL` lanes of `v` to bf16 at `p`.
    unsafe fn store_narrowed(p: *mut bf16, v: Self::Acc, n: usize);
    /// [`xw`] compiled with this instruction set's features.
    unsafe fn xw(
        x: *const bf16,
        w: *const bf16,
        m: usize,
        n: usize,
        k: usize,
        cols: Range<usize>,
        out: *mut bf16,
    );
}

/// Accumulators per row of `x` in [`xw`]: its block is `XW_ACCS * PANEL` columns of `w`.
pub(super) const XW_ACCS: usize = 4;

/// The columns of a block of [`xw`] for `L`.
pub(super) const fn xw_cols<L: Lanes>() -> usize {
    XW_ACCS * L::PANEL
}

/// bf16 columns `cols` (at most [`xw_cols`]) of `x · w` for `x: (m, k)` and `w: (k, n)`, both
/// row-major, into `out` laid out `(m, cols.len())`.
pub(super) fn xw_block<L: Widen>(
    x: &[bf16],
    w: &[bf16],
    m: usize,
    n: usize,
    cols: Range<usize>,
    out: &mut [bf16],
) {
    assert!(L::detected(), "the CPU lacks the features of this kernel");
    let k = x.len().checked_div(m).unwrap_or(0);
    assert!(
        x.len() == m * k && w.len() == k * n,
        "x is not (m, k) or w is not (k, n)"
    );
    assert!(cols.end <= n && cols.len() <= xw_cols::<L>() && out.len() == m * cols.len());
    // SAFETY: the features are checked and every index stays inside the asserted lengths.
    unsafe { L::xw(x.as_ptr(), w.as_ptr(), m, n, k, cols, out.as_mut_ptr()) }
}

/// The body of every [`Widen::xw`].
///
/// # Safety
/// As [`Widen`]; the pointers and sizes as checked by [`xw_block`].
#[inline(always)]
pub(super) unsafe fn xw<L: Widen>(
    x: *const bf16,
    w: *const bf16,
    m: usize,
    n: usize,
    k: usize,
    cols: Range<usize>,
    out: *mut bf16,
) {
    let width = cols.len();
    let mut lanes = [0; XW_ACCS];
    for (v, l) in lanes.iter_mut().enumerate() {
        *l = width.saturating_sub(L::PANEL * v).min(L::PANEL);
    }
    let w = w.add(cols.start);
    for r0 in (0..m).step_by(MR) {
        let (x, out) = (x.add(r0 * k), out.add(r0 * width));
        match (m - r0).min(MR) {
            1 => xw_rows::<L, 1>(x, w, n, k, &lanes, out, width),
            2 => xw_rows::<L, 2>(x, w, n, k, &lanes, out, width),
            3 => xw_rows::<L, 3>(x, w, n, k, &lanes, out, width),
            _ => xw_rows::<L, 4>(x, w, n, k, &lanes, out, width),
        }
    }
}

/// `R` rows of `x` against a block of columns of `w`: each row of `w` is widened once and
/// multiplied by the `R` values of `x` that meet it, into f32 sums.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn xw_rows<L: Widen, const R: usize>(
    x: *const bf16,
    w: *const bf16,
    n: usize,
    k: usize,
    lanes: &[usize; XW_ACCS],
    out: *mut bf16,
    width: usize,
) {
    let mut acc = [[L::zero(); XW_ACCS]; R];
    for t in 0..k {
        let row = w.add(t * n);
        let mut wv = [L::zero(); XW_ACCS];
        for v in 0..XW_ACCS {
            // A block narrower than the accumulators reads nothing past its columns.
            wv[v] = L::load_widened(row.wrapping_add(L::PANEL * v), lanes[v]);
        }
        for r in 0..R {
            let xv = L::splat((*x.add(r * k + t)).to_f32());
            for v in 0..XW_ACCS {
                acc[r][v] = L::fma(xv, wv[v], acc[r][v]);
            }
        }
    }
    for r in 0..R {
        for v in 0..XW_ACCS {
            let at = out.wrapping_add(r * width + L::PANEL * v);
            L::store_narrowed(at, acc[r][v], lanes[v]);
        }
    }
}
