//! JUnit XML: one test suite per backend, one test case per case result.

use std::error::Error as _;

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use super::backend_names;
use crate::report::{CaseResult, Report};
use op_matrix_core::outcome::Outcome;

/// Renders the report as JUnit XML. Test cases are named `{dtype} {signature}` with the op
/// as class name; failures carry the outcome label as type and the detail as message.
pub fn render(report: &Report) -> Result<String, String> {
    let mut junit = quick_junit::Report::new("op-matrix");
    for backend in backend_names(report) {
        let mut suite = TestSuite::new(backend);
        if let Some(info) = report.backends.iter().find(|b| b.name == backend) {
            suite.add_property(Property::new("status", info.status.as_str()));
            suite.add_property(Property::new("device", info.device.as_str()));
        }
        suite.add_property(Property::new("candle", report.candle_version.as_str()));
        suite.add_test_cases(
            report
                .cases
                .iter()
                .filter(|c| c.backend == backend)
                .map(test_case),
        );
        junit.add_test_suite(suite);
    }
    junit.to_string().map_err(|e| match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    })
}

fn test_case(c: &CaseResult) -> TestCase {
    let o = &c.outcome;
    let status = match o {
        Outcome::Skipped { reason } => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(reason.as_str());
            s
        }
        _ if o.is_failure() => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_type(o.label()).set_message(o.detail());
            s
        }
        // An expected failure is reported as passed with a note, not skipped: it did run, and
        // `skipped` keeps meaning "did not run", as in the Markdown and terminal tables.
        _ => TestCaseStatus::success(),
    };
    let mut tc = TestCase::new(format!("{} {}", c.dtype, c.signature), status);
    tc.set_classname(c.op.as_str());
    tc.add_property(Property::new("phase", c.phase.as_str()));
    if matches!(o, Outcome::ExpectedFailure { .. }) {
        tc.set_system_out(o.detail());
    }
    tc
}
