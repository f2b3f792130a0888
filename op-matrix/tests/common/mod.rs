//! Shared by the integration tests.

#![allow(dead_code, unused_macros, unused_imports)]

use candle_core::Device;
use inference::ops::OpKind;
use op_matrix::backend::{Backend, Kind};

/// Every kind of kernel the forward pass of the traced (safetensors) checkpoints launches: the
/// vocabulary but `tanh` (logit soft-capping, which Gemma 3's configs turn off), `cat` (the KV
/// cache appends with `write_at`), `qlinear` and `qembed` (quantized checkpoints only).
pub fn forward_pass_ops() -> impl Iterator<Item = OpKind> {
    OpKind::ALL.into_iter().filter(|op| {
        !matches!(
            op,
            OpKind::Tanh | OpKind::Cat | OpKind::QLinear | OpKind::QEmbed
        )
    })
}

/// Device 0 of `kind`; a backend compiled in whose device does not open fails the test that
/// asked for it, since a skip must never read as a pass.
pub fn device(kind: Kind) -> Device {
    let backend = Backend::open(kind);
    match backend.device() {
        Some(device) => device.clone(),
        None => panic!("{} is {}", backend.name, backend.status()),
    }
}

/// `on_every_backend!(check)` makes the tests `check::cpu`, and `check::cuda` and
/// `check::metal` in builds with those features, each calling `check(&Device)` on device 0 of
/// its backend (in the manner of candle's `test_device!`).
macro_rules! on_every_backend {
    ($check:ident) => {
        mod $check {
            use op_matrix::backend::Kind;

            #[test]
            fn cpu() {
                super::$check(&$crate::common::device(Kind::Cpu));
            }

            #[cfg(feature = "cuda")]
            #[test]
            fn cuda() {
                super::$check(&$crate::common::device(Kind::Cuda));
            }

            #[cfg(feature = "metal")]
            #[test]
            fn metal() {
                super::$check(&$crate::common::device(Kind::Metal));
            }
        }
    };
}
pub(crate) use on_every_backend;
