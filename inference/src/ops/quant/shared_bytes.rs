//! Bytes of quantized blocks that an owner keeps alive: a file's mapping, or a buffer.

use std::ops::{Deref, Range};
use std::sync::Arc;

/// What can own the bytes: a file's mapping (`memmap2::Mmap`) or an aligned buffer.
pub type Owner = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A range of the bytes an [`Owner`] holds. The weights cut from one file's mapping share it,
/// so the CPU multiplies by the blocks where the page cache holds them.
#[derive(Clone)]
pub struct SharedBytes {
    owner: Owner,
    range: Range<usize>,
}

impl SharedBytes {
    /// `range` of `owner`'s bytes; none where it lies outside them.
    pub fn new(owner: Owner, range: Range<usize>) -> Option<Self> {
        (*owner).as_ref().get(range.clone())?;
        Some(Self { owner, range })
    }

    /// A copy of `bytes` in a buffer of its own, aligned for every block type (their fields
    /// are at most 32 bits wide).
    pub fn copied(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Self {
            owner: Arc::new(Words(words)),
            range: 0..bytes.len(),
        }
    }
}

impl Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.range.clone()]
    }
}

struct Words(Vec<u64>);

impl AsRef<[u8]> for Words {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_outside_the_owner_is_refused_and_one_inside_reads_its_bytes() {
        let owner: Owner = Arc::new(vec![1u8, 2, 3, 4]);
        assert!(SharedBytes::new(owner.clone(), 2..5).is_none());
        assert_eq!(&*SharedBytes::new(owner, 1..3).unwrap(), &[2, 3]);
        let copy = SharedBytes::copied(&[9, 8, 7]);
        assert_eq!(&*copy, &[9, 8, 7]);
        assert!((copy.as_ptr() as usize).is_multiple_of(8));
    }
}
