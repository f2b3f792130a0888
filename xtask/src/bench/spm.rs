//! A SentencePiece `tokenizer.model` (a serialized `ModelProto`) for the bench checkpoints,
//! written by hand: llama.cpp's converter reads a Gemma 3 vocabulary from this file.
//!
//! The pieces mirror the word-level `tokenizer.json`: id `i` is `t<i>`, except the specials
//! that Gemma keeps at the front (`<pad>` 0, `<eos>` 1, `<bos>` 2, `<unk>` 3). Field numbers are
//! those of sentencepiece's `sentencepiece_model.proto`.

/// `ModelProto.SentencePiece.Type`.
const NORMAL: u64 = 1;
const UNKNOWN: u64 = 2;
const CONTROL: u64 = 3;
/// `TrainerSpec.ModelType.UNIGRAM`.
const UNIGRAM: u64 = 1;

const SPECIALS: [(&str, u64); 4] = [
    ("<pad>", CONTROL),
    ("<eos>", CONTROL),
    ("<bos>", CONTROL),
    ("<unk>", UNKNOWN),
];

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn uint_field(out: &mut Vec<u8>, field: u64, v: u64) {
    key(out, field, 0);
    varint(out, v);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn float_field(out: &mut Vec<u8>, field: u64, v: f32) {
    key(out, field, 5);
    out.extend_from_slice(&v.to_le_bytes());
}

/// The piece text and type of token `id`.
pub fn piece(id: usize) -> (String, u64) {
    match SPECIALS.get(id) {
        Some((p, t)) => (p.to_string(), *t),
        None => (format!("t{id}"), NORMAL),
    }
}

/// The serialized model for a vocabulary of `vocab` ids.
pub fn model_proto(vocab: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(vocab * 16);
    let mut p = Vec::new();
    for id in 0..vocab {
        let (text, kind) = piece(id);
        p.clear();
        bytes_field(&mut p, 1, text.as_bytes());
        float_field(&mut p, 2, if kind == NORMAL { -(id as f32) } else { 0.0 });
        uint_field(&mut p, 3, kind);
        bytes_field(&mut out, 1, &p);
    }
    let mut trainer = Vec::new();
    uint_field(&mut trainer, 3, UNIGRAM);
    uint_field(&mut trainer, 4, vocab as u64);
    uint_field(&mut trainer, 40, 3); // unk_id
    uint_field(&mut trainer, 41, 2); // bos_id
    uint_field(&mut trainer, 42, 1); // eos_id
    uint_field(&mut trainer, 43, 0); // pad_id
    for (field, (text, _)) in [48, 47, 46, 45].into_iter().zip(SPECIALS) {
        bytes_field(&mut trainer, field, text.as_bytes()); // pad/eos/bos/unk_piece
    }
    bytes_field(&mut out, 2, &trainer);
    let mut normalizer = Vec::new();
    bytes_field(&mut normalizer, 1, b"identity");
    uint_field(&mut normalizer, 3, 0); // add_dummy_prefix
    uint_field(&mut normalizer, 4, 0); // remove_extra_whitespaces
    uint_field(&mut normalizer, 5, 1); // escape_whitespaces
    bytes_field(&mut out, 3, &normalizer);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads (field, wire type, payload) triples of one message level.
    fn fields(mut b: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
        let mut out = Vec::new();
        let read = |b: &mut &[u8]| {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                shift += 7;
                if byte < 0x80 {
                    return v;
                }
            }
        };
        while !b.is_empty() {
            let k = read(&mut b);
            let payload = match k & 7 {
                0 => read(&mut b).to_le_bytes().to_vec(),
                2 => {
                    let n = read(&mut b) as usize;
                    let (p, rest) = b.split_at(n);
                    b = rest;
                    p.to_vec()
                }
                5 => {
                    let (p, rest) = b.split_at(4);
                    b = rest;
                    p.to_vec()
                }
                w => panic!("unexpected wire type {w}"),
            };
            out.push((k >> 3, k & 7, payload));
        }
        out
    }

    #[test]
    fn the_proto_lists_every_piece_then_the_specs() {
        let model = fields(&model_proto(300));
        let pieces: Vec<_> = model.iter().filter(|f| f.0 == 1).collect();
        assert_eq!(pieces.len(), 300);
        let first = fields(&pieces[3].2);
        assert_eq!(first[0].2, b"<unk>");
        assert_eq!(first[2].2[0], UNKNOWN as u8);
        let p = fields(&pieces[299].2);
        assert_eq!(p[0].2, b"t299");
        assert_eq!(f32::from_le_bytes(p[1].2[..4].try_into().unwrap()), -299.0);
        let trainer = fields(&model.iter().find(|f| f.0 == 2).unwrap().2);
        let get = |n: u64| trainer.iter().find(|f| f.0 == n).unwrap().2[0];
        assert_eq!((get(40), get(41), get(42), get(43)), (3, 2, 1, 0));
        // 300 as a varint is two bytes: 0xac 0x02.
        assert_eq!(trainer.iter().find(|f| f.0 == 4).unwrap().2[..2], [44, 1]);
        assert_eq!(model.last().unwrap().0, 3);
    }
}
