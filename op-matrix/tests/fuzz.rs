//! Random cases of every vocabulary op on every present backend, against the CPU on
//! contiguous copies. On a CPU-only machine this holds the CPU's strided kernels to its
//! contiguous ones; on a GPU machine it also compares the GPU with the CPU.

use candle_core::Device;
use inference::ops::OpKind;
use op_matrix::backend::{Backend, Kind};
use op_matrix::fuzz;
use op_matrix_core::outcome::Outcome;

fn present() -> Vec<(String, Device)> {
    Kind::ALL
        .into_iter()
        .map(Backend::open)
        .filter_map(|b| b.device().cloned().map(|d| (b.name.clone(), d)))
        .collect()
}

#[test]
fn every_op_agrees_with_the_cpu_on_random_layouts() {
    let backends = present();
    assert!(
        backends.iter().any(|(n, _)| n == "cpu"),
        "the CPU is always present"
    );
    let mut failures = Vec::new();
    for op in OpKind::ALL {
        for case in fuzz::cases(op, 48, 7) {
            for (name, device) in &backends {
                let outcome = fuzz::check(&case, device);
                if !matches!(outcome, Outcome::Pass { .. }) {
                    failures.push(format!("{name} {}: {}", case.signature(), outcome.detail()));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_generated_cases_cover_odd_sizes_and_non_contiguous_inputs() {
    let cases: Vec<_> = OpKind::ALL
        .into_iter()
        .flat_map(|op| fuzz::cases(op, 48, 7))
        .collect();
    let inputs = || cases.iter().flat_map(|c| c.inputs.iter());
    assert!(
        inputs().any(|t| !t.is_contiguous()),
        "non-contiguous inputs"
    );
    assert!(
        inputs().any(|t| t.layout().stride().contains(&0)),
        "broadcast inputs"
    );
    assert!(
        inputs().any(|t| t.layout().start_offset() > 0),
        "offset inputs"
    );
    assert!(inputs().any(|t| t.dims().contains(&1)), "size-1 dims");
    assert!(
        inputs().any(|t| t.dims().iter().any(|d| d % 2 == 1 && *d > 1)),
        "odd sizes"
    );
}

#[test]
fn a_kernel_that_rejects_a_layout_is_reported_unsupported() {
    // rope requires contiguous input; the CPU reference copies, the device run does not.
    let mut case = fuzz::cases(OpKind::Rope, 32, 3)
        .into_iter()
        .find(|c| c.inputs[0].dim(2).unwrap() > 1)
        .expect("a case with more than one position");
    let shape = case.inputs[0].dims().to_vec();
    case.inputs[0] = fuzz::tensor(&shape, case.inputs[0].dtype(), fuzz::Layout::Transposed, 1);
    match fuzz::check(&case, &Device::Cpu) {
        Outcome::Unsupported { error } => assert!(error.contains("contiguous"), "{error}"),
        other => panic!("expected unsupported, got {other:?}"),
    }
}
