//! Shared by the integration tests.

/// Every kind of kernel the Gemma 3 forward pass launches, by op name.
pub const FORWARD_PASS_OPS: [&str; 13] = [
    "matmul",
    "rope",
    "softmax_last_dim",
    "cast",
    "contiguous",
    "index_select",
    "broadcast_add",
    "gelu_tanh",
    "rms_norm",
    "write_at",
    "add",
    "mul",
    "affine",
];
