//! The roofline: the decode floor that the memory bandwidth sets (every weight and the KV
//! cache read once per token), and the ratios derived from it and from ours.

use super::data::{Floor, Metrics, Ratios, Report};

/// The KV cache's shape, which decides how many cache bytes one decode step reads.
#[derive(Clone, Debug, PartialEq)]
pub struct KvShape {
    pub kv_heads: usize,
    pub head_dim: usize,
    pub sliding_window: usize,
    /// One entry per layer: true for a global (full-context) layer.
    pub global: Vec<bool>,
}

impl KvShape {
    /// Gemma 3's layer pattern: every `pattern`-th layer is global, the rest slide.
    pub fn gemma3(
        layers: usize,
        kv_heads: usize,
        head_dim: usize,
        window: usize,
        pattern: usize,
    ) -> Self {
        KvShape {
            kv_heads,
            head_dim,
            sliding_window: window,
            global: (0..layers).map(|i| (i + 1) % pattern.max(1) == 0).collect(),
        }
    }

    /// Bytes of keys and values one decode step reads at `context` positions: every position
    /// on a global layer, at most the window on a sliding one.
    pub fn bytes_read(&self, context: usize, elem_bytes: u64) -> u64 {
        let per_position = 2 * (self.kv_heads * self.head_dim) as u64 * elem_bytes;
        self.global
            .iter()
            .map(|&g| {
                let seen = if g {
                    context
                } else {
                    context.min(self.sliding_window)
                };
                seen as u64 * per_position
            })
            .sum()
    }
}

/// The decode floor: one step reads every weight once (the tied LM head included, in full)
/// and the KV cache at that context, so tokens/s cannot beat bandwidth / those bytes.
pub fn floor(
    weight_bytes: u64,
    kv: &KvShape,
    elem_bytes: u64,
    context: usize,
    read_gb_s: f64,
) -> Floor {
    let kv_bytes = kv.bytes_read(context, elem_bytes);
    Floor {
        context,
        weight_bytes,
        kv_bytes,
        tok_s: read_gb_s * 1e9 / (weight_bytes + kv_bytes) as f64,
    }
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (a.is_finite() && b.is_finite() && b > 0.0).then(|| a / b)
}

impl Report {
    /// Fills in the ratios: each engine against ours (see [`super::ModelRun::reference`]), each
    /// engine against the floor.
    pub fn derive(&mut self) {
        for run in &mut self.runs {
            let references: Vec<Option<(String, Metrics)>> = (0..run.engines.len())
                .map(|i| {
                    let r = &run.engines[run.reference(i)?];
                    Some((r.label(), r.metrics.clone()?))
                })
                .collect();
            let bytes = (run.floor.weight_bytes + run.floor.kv_bytes) as f64;
            for (e, ours) in run.engines.iter_mut().zip(references) {
                let Some(m) = &e.metrics else {
                    e.ours_over_this = None;
                    e.decode_over_floor = None;
                    continue;
                };
                let floor = match e.read_gb_s {
                    Some(bw) => bw * 1e9 / bytes,
                    None => run.floor.tok_s,
                };
                e.decode_over_floor = ratio(m.decode_tok_s, floor).filter(|_| run.bandwidth_bound);
                e.ours_over_this = ours.map(|(label, o)| Ratios {
                    ours: label,
                    prefill: ratio(o.prefill_tok_s, m.prefill_tok_s),
                    decode: ratio(o.decode_tok_s, m.decode_tok_s),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::fixture::{fixture, kv_1b};

    #[test]
    fn the_1b_has_four_global_layers() {
        let kv = kv_1b();
        let globals: Vec<usize> = (0..26).filter(|&i| kv.global[i]).collect();
        assert_eq!(globals, vec![5, 11, 17, 23]);
    }

    #[test]
    fn kv_bytes_count_the_window_on_sliding_layers_only() {
        let kv = kv_1b();
        // bf16, context 1000: 4 global layers read 1000 positions, 22 sliding ones 512; each
        // position is a key and a value of 256 elements of 2 bytes.
        let expected = (4 * 1000 + 22 * 512) * 2 * 256 * 2;
        assert_eq!(kv.bytes_read(1000, 2), expected);
        // Below the window every layer reads the whole context.
        assert_eq!(kv.bytes_read(100, 4), 26 * 100 * 2 * 256 * 4);
    }

    #[test]
    fn the_floor_is_bandwidth_over_bytes_per_token() {
        let kv = kv_1b();
        // 999,885,952 parameters in bf16, at context 160, with 40 GB/s.
        let weights = 999_885_952u64 * 2;
        let f = floor(weights, &kv, 2, 160, 40.0);
        let kv_bytes = 26 * 160 * 2 * 256 * 2;
        assert_eq!(f.kv_bytes, kv_bytes);
        let want = 40e9 / (weights + kv_bytes) as f64;
        assert!((f.tok_s - want).abs() < 1e-9);
        // About 20 tokens/s: the order of magnitude the issue quotes for this machine.
        assert!((19.5..20.1).contains(&f.tok_s), "{}", f.tok_s);
    }

    #[test]
    fn ratios_are_ours_over_the_peer_and_each_engine_over_the_floor() {
        let mut r = fixture();
        r.derive();
        let bf16 = &r.runs[0];
        let tf = &bf16.engines[1];
        let ratios = tf.ours_over_this.as_ref().unwrap();
        assert!((ratios.prefill.unwrap() - 34.0 / 335.0).abs() < 1e-12);
        assert!((ratios.decode.unwrap() - 1.25 / 19.8).abs() < 1e-12);
        assert!(bf16.engines[0].ours_over_this.is_none());
        let ours_floor = bf16.engines[0].decode_over_floor.unwrap();
        assert!((ours_floor - 1.25 / bf16.floor.tok_s).abs() < 1e-12);
        // An engine measured while the bandwidth was 20 GB/s is held to half the floor.
        let mut r = fixture();
        r.runs[0].engines[1].read_gb_s = Some(20.0);
        r.derive();
        let half = r.runs[0].floor.tok_s / 2.0;
        let got = r.runs[0].engines[1].decode_over_floor.unwrap();
        assert!((got - 19.8 / half).abs() < 1e-9, "{got}");
        // A skipped peer has no numbers and no ratios.
        assert!(bf16.engines[2].ours_over_this.is_none());
        assert!(bf16.engines[2].decode_over_floor.is_none());
    }
}
