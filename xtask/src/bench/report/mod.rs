//! What `cargo xtask bench` measured and what it makes of it: the data model that
//! `report.json` holds ([`data`]), the decode floor from the memory bandwidth and every ratio
//! ([`roofline`]), and the renderings: the terminal tables, Markdown and the decode-vs-context
//! SVG (`render/`).

mod data;
#[cfg(test)]
mod fixture;
mod render;
mod roofline;

pub use data::*;
pub use roofline::{floor, KvShape};
