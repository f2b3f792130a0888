//! Strided inputs stored as a base buffer plus their layout, and rebuilt exactly on any device.
//!
//! Every Candle view is a permute, narrow and broadcast of a contiguous buffer, so a layout
//! (shape, strides, offset) over a base buffer can be rebuilt with view operations alone:
//! reshape the buffer to the dims ordered by stride, narrow each to its start, permute back,
//! then unsqueeze and broadcast the stride-0 dims. The rebuilt tensor has the same strides and
//! offset, so a backend runs the same kernel path as in the model.

use candle_core::{DType, Device, Storage, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Shape, strides and start offset of a view, in elements.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Strided {
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
    pub offset: usize,
}

impl Strided {
    pub fn of(t: &Tensor) -> Self {
        let l = t.layout();
        Self {
            shape: t.dims().to_vec(),
            stride: l.stride().to_vec(),
            offset: l.start_offset(),
        }
    }

    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1;
        for (&n, &s) in self.shape.iter().zip(&self.stride).rev() {
            if n > 1 && s != acc {
                return false;
            }
            acc *= n;
        }
        true
    }
}

/// The whole storage behind a CPU tensor, as a 1-D tensor, with the tensor's view of it.
pub fn split(t: &Tensor) -> Result<(Tensor, Strided)> {
    let (storage, _) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(Error::Layout("only CPU tensors can be stored".into()));
    };
    let base = match t.dtype() {
        DType::F32 => {
            let s = cpu.as_slice::<f32>()?;
            Tensor::from_slice(s, s.len(), &Device::Cpu)
        }
        DType::BF16 => {
            let s = cpu.as_slice::<half::bf16>()?;
            Tensor::from_slice(s, s.len(), &Device::Cpu)
        }
        DType::F16 => {
            let s = cpu.as_slice::<half::f16>()?;
            Tensor::from_slice(s, s.len(), &Device::Cpu)
        }
        DType::U32 => {
            let s = cpu.as_slice::<u32>()?;
            Tensor::from_slice(s, s.len(), &Device::Cpu)
        }
        DType::U8 => {
            let s = cpu.as_slice::<u8>()?;
            Tensor::from_slice(s, s.len(), &Device::Cpu)
        }
        other => return Err(Error::Layout(format!("dtype {other:?} is not stored"))),
    }?;
    Ok((base, Strided::of(t)))
}

/// Rebuilds the view `strided` of `base` (1-D, on the CPU) on `device`: one upload of the
/// buffer, then view operations only, so no kernel of the backend under test runs.
pub fn rebuild(base: &Tensor, strided: &Strided, device: &Device) -> Result<Tensor> {
    let Strided {
        shape,
        stride,
        offset,
    } = strided;
    let len = base.dim(0)?;
    // The dims that address memory, outermost (largest stride) first.
    let mut real: Vec<usize> = (0..shape.len())
        .filter(|&i| shape[i] > 1 && stride[i] > 0)
        .collect();
    real.sort_by(|&a, &b| stride[b].cmp(&stride[a]));

    // Without memory-addressing dims the view is one element: the whole buffer is the inner dim.
    let inner = real.last().map_or(len.max(offset + 1), |&i| stride[i]);
    let mut dims = Vec::with_capacity(real.len() + 1);
    for w in real.windows(2) {
        let (outer, next) = (stride[w[0]], stride[w[1]]);
        if outer % next != 0 || outer == next {
            return Err(Error::Layout(format!(
                "strides {stride:?} are not a view of a contiguous buffer"
            )));
        }
    }
    // Digits of the offset in the mixed radix of the strides: each real dim's start.
    let mut rest = *offset;
    let mut starts = Vec::with_capacity(real.len());
    for &i in &real {
        starts.push(rest / stride[i]);
        rest %= stride[i];
    }
    for (k, &i) in real.iter().enumerate() {
        dims.push(if k == 0 {
            0
        } else {
            stride[real[k - 1]] / stride[i]
        });
    }
    if let Some(&first) = real.first() {
        let rows = len.div_ceil(stride[first]).max(starts[0] + shape[first]);
        dims[0] = rows;
    }
    dims.push(inner);
    let padded: usize = dims.iter().product();
    // Pad on the host so that the buffer reshapes to `dims`; the view never reads the padding.
    let buf = if padded > len {
        let pad = Tensor::zeros(padded - len, base.dtype(), &Device::Cpu)?;
        Tensor::cat(&[base, &pad], 0)?
    } else {
        base.narrow(0, 0, padded)?
    };
    // Always a buffer of its own, on the CPU too: an op that writes in place must not reach a
    // golden buffer that other cases share.
    let buf = if device.is_cpu() {
        buf.copy()?
    } else {
        buf.to_device(device)?
    };
    let mut t = buf.reshape(dims.as_slice())?;
    for (k, &i) in real.iter().enumerate() {
        t = t.narrow(k, starts[k], shape[i])?;
    }
    t = t.narrow(real.len(), rest, 1)?.squeeze(real.len())?;

    // Back to the original dim order, then the size-1 and broadcast dims.
    let mut order: Vec<usize> = (0..real.len()).collect();
    order.sort_by_key(|&k| real[k]);
    if !order.is_empty() {
        t = t.permute(order.as_slice())?;
    }
    for (i, &n) in shape.iter().enumerate() {
        if n == 1 || stride[i] == 0 {
            t = t.unsqueeze(i)?;
        }
    }
    Ok(t.broadcast_as(shape.as_slice())?)
}
