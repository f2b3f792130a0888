//! Serde for Candle's `DType` as its short name (`f32`, `bf16`, ...).

use candle_core::DType;
use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(dtype: &DType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(dtype.as_str())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DType, D::Error> {
    let name = String::deserialize(d)?;
    name.parse()
        .map_err(|_| serde::de::Error::custom(format!("unknown dtype `{name}`")))
}
