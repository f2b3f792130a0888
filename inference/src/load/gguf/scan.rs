//! A walk over a GGUF header to its tensor table, for what Candle's reader cannot say when it
//! stops: which tensor holds a type that it does not know.

use std::io::{Read, Seek, SeekFrom};

/// GGUF's magic, `GGUF` read as a little-endian u32.
const MAGIC: u32 = 0x4655_4747;

/// The metadata value types of the GGUF specification.
const STRING: u32 = 8;
const ARRAY: u32 = 9;

/// The name of the first tensor of ggml type `code` in the GGUF header `r` holds (version 2 or
/// later); none if there is none or the header cannot be walked. `len` (the file's length)
/// bounds every count, so a hostile header cannot make it loop or allocate without end.
pub(super) fn first_tensor_of_type<R: Read + Seek>(
    r: &mut R,
    len: u64,
    code: u32,
) -> Option<String> {
    let mut header = Header { r, len };
    if header.u32()? != MAGIC || header.u32()? < 2 {
        return None;
    }
    let tensors = header.count()?;
    let kvs = header.count()?;
    for _ in 0..kvs {
        header.skip_string()?;
        let kind = header.u32()?;
        header.skip_value(kind)?;
    }
    for _ in 0..tensors {
        let name = header.string()?;
        let dims = header.u32()?;
        header.skip(8 * u64::from(dims))?;
        if header.u32()? == code {
            return Some(name);
        }
        header.skip(8)?;
    }
    None
}

struct Header<'a, R> {
    r: &'a mut R,
    len: u64,
}

impl<R: Read + Seek> Header<'_, R> {
    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut b = [0; N];
        self.r.read_exact(&mut b).ok()?;
        Some(b)
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes().map(u32::from_le_bytes)
    }

    /// A count or length, which no file of `len` bytes can exceed.
    fn count(&mut self) -> Option<u64> {
        let n = u64::from_le_bytes(self.bytes()?);
        (n <= self.len).then_some(n)
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        let n = i64::try_from(n).ok()?;
        self.r.seek(SeekFrom::Current(n)).ok()?;
        Some(())
    }

    fn skip_string(&mut self) -> Option<()> {
        let n = self.count()?;
        self.skip(n)
    }

    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.count()?).ok()?;
        let mut s = vec![0; n.min(1 << 16)];
        self.r.read_exact(&mut s).ok()?;
        (s.len() == n).then(|| String::from_utf8_lossy(&s).into_owned())
    }

    fn skip_value(&mut self, kind: u32) -> Option<()> {
        match kind {
            0 | 1 | 7 => self.skip(1),
            2 | 3 => self.skip(2),
            4..=6 => self.skip(4),
            10..=12 => self.skip(8),
            STRING => self.skip_string(),
            ARRAY => {
                let item = self.u32()?;
                let n = self.count()?;
                match item {
                    STRING | ARRAY => (0..n).try_for_each(|_| self.skip_value(item)),
                    _ => {
                        let size = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8];
                        let each = *size.get(usize::try_from(item).ok()?)?;
                        self.skip(n.checked_mul(each)?)
                    }
                }
            }
            _ => None,
        }
    }
}
