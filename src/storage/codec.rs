//! Versioned value encoding: one version byte, then MessagePack with field names, so that fields
//! added later (with serde defaults) still read old values. Version 2 compresses values over
//! [`COMPRESS_OVER`] bytes with LZ4 (objects halve; sled copies leaves on every insert, so small
//! values make writes cheaper too). Version 1 (uncompressed) is still read.
//!
//! Objects and change records, the bulk of the store, are written positionally instead
//! ([`encode_positional`]: struct fields as arrays, no names), which the same [`decode`] reads:
//! MessagePack tells a map from an array, and serde reads a struct from either.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::StorageError;

/// Uncompressed MessagePack.
const PLAIN: u8 = 1;
/// LZ4-compressed MessagePack (with the uncompressed size in front).
const LZ4: u8 = 2;
/// Values larger than this are compressed.
pub const COMPRESS_OVER: usize = 96;

/// Encodes a value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut plain = vec![PLAIN];
    rmp_serde::encode::write_named(&mut plain, value).expect("encoding to a Vec cannot fail for our types");
    compress(plain)
}

/// [`encode`] with struct fields as arrays instead of maps: about 80 bytes less per object, and
/// cheaper to read. Only for types whose fields are always written (no `skip_serializing_if`, no
/// `flatten`) and that add fields only at the end, with `#[serde(default)]`: an array one field
/// short then still reads.
pub fn encode_positional<T: Serialize>(value: &T) -> Vec<u8> {
    let mut plain = vec![PLAIN];
    rmp_serde::encode::write(&mut plain, value).expect("encoding to a Vec cannot fail for our types");
    compress(plain)
}

/// A sequence of values written positionally one at a time, so a writer can cut it where it grows
/// too large; [`SeqWriter::finish`] encodes it like [`encode_positional`] of a `Vec`, which
/// [`decode`] reads back. (A MessagePack array is its length followed by its elements.)
#[derive(Debug, Default)]
pub struct SeqWriter {
    items: Vec<u8>,
    count: u32,
}

impl SeqWriter {
    /// Appends one value.
    pub fn push<T: Serialize>(&mut self, value: &T) {
        rmp_serde::encode::write(&mut self.items, value).expect("encoding to a Vec cannot fail for our types");
        self.count += 1;
    }

    /// Values so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Uncompressed bytes so far.
    pub fn bytes(&self) -> usize {
        self.items.len()
    }

    /// The encoded sequence; the writer starts over empty.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut plain = Vec::with_capacity(6 + self.items.len());
        plain.push(PLAIN);
        match self.count {
            n @ 0..=15 => plain.push(0x90 | n as u8),
            n @ 16..=0xffff => {
                plain.push(0xdc);
                plain.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                plain.push(0xdd);
                plain.extend_from_slice(&n.to_be_bytes());
            }
        }
        plain.append(&mut self.items);
        self.count = 0;
        compress(plain)
    }
}

fn compress(plain: Vec<u8>) -> Vec<u8> {
    if plain.len() <= COMPRESS_OVER {
        return plain;
    }
    let mut out = vec![LZ4];
    out.extend_from_slice(&lz4_flex::block::compress_prepend_size(&plain[1..]));
    if out.len() < plain.len() {
        out
    } else {
        plain
    }
}

/// Decodes a value written by [`encode`] or [`encode_positional`].
///
/// # Errors
/// [`StorageError::Corrupt`] when the bytes are not a value of this version and type.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, StorageError> {
    match bytes.split_first() {
        Some((&PLAIN, rest)) => rmp_serde::from_slice(rest).map_err(|e| StorageError::Corrupt {
            what,
            detail: e.to_string(),
        }),
        Some((&LZ4, rest)) => {
            let plain = lz4_flex::block::decompress_size_prepended(rest).map_err(|e| StorageError::Corrupt {
                what,
                detail: e.to_string(),
            })?;
            rmp_serde::from_slice(&plain).map_err(|e| StorageError::Corrupt {
                what,
                detail: e.to_string(),
            })
        }
        Some((v, _)) => Err(StorageError::Corrupt {
            what,
            detail: format!("unknown encoding version {v}"),
        }),
        None => Err(StorageError::Corrupt {
            what,
            detail: "empty value".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChangeOp, ChangeRecord, Object, Value};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn object() -> impl Strategy<Value = Object> {
        (
            any::<u64>(),
            "[a-z0-9-]{1,20}",
            prop::option::of("[ -~]{0,12}"),
            prop::collection::btree_map("[a-z]{1,6}", any::<i64>(), 0..4),
            any::<i64>(),
        )
            .prop_map(|(num, id, ext, custom, t)| Object {
                num,
                id,
                klass: "order".into(),
                external_id: ext,
                fields: BTreeMap::new(),
                custom: custom.into_iter().map(|(k, v)| (k, Value::Int(v))).collect(),
                relationships: BTreeMap::new(),
                tags: vec!["a".into()],
                created_at: t,
                updated_at: t,
                rev: 1,
                links: BTreeMap::new(),
            })
    }

    proptest! {
        #[test]
        fn objects_round_trip(o in object()) {
            let back: Object = decode(&encode(&o), "object").unwrap();
            prop_assert_eq!(back, o);
        }

        #[test]
        fn objects_round_trip_positionally_and_named_ones_still_read(o in object()) {
            let positional = encode_positional(&o);
            let back: Object = decode(&positional, "object").unwrap();
            prop_assert_eq!(&back, &o);
            let named = encode(&o);
            prop_assert!(positional.len() < named.len());
            prop_assert_eq!(decode::<Object>(&named, "object").unwrap(), o);
        }

        #[test]
        fn change_records_round_trip_positionally(o in object(), seq in any::<u64>(), depth in any::<u8>()) {
            let rec = ChangeRecord { seq, op: ChangeOp::Created, klass: o.klass.clone(), num: o.num, id: o.id.clone(), at: 5,
                before: None, after: Some(o), changed: vec![], depth };
            let back: ChangeRecord = decode(&encode_positional(&rec), "change").unwrap();
            prop_assert_eq!(back, rec);
        }

        #[test]
        fn change_records_round_trip(o in object(), seq in any::<u64>()) {
            let rec = ChangeRecord { seq, op: ChangeOp::Updated, klass: o.klass.clone(), num: o.num, id: o.id.clone(), at: 5,
                before: Some(o.clone()), after: Some(o), changed: vec!["custom.x".into()], depth: 0 };
            let back: ChangeRecord = decode(&encode(&rec), "change").unwrap();
            prop_assert_eq!(back, rec);
        }
    }

    #[test]
    fn a_sequence_written_one_value_at_a_time_reads_as_a_vec() {
        for n in [0usize, 1, 15, 16, 300, 70_000] {
            let values: Vec<String> = (0..n).map(|i| format!("value {i}")).collect();
            let mut w = SeqWriter::default();
            for v in &values {
                w.push(v);
            }
            assert_eq!(w.len(), n);
            let bytes = w.finish();
            assert!(w.is_empty() && w.bytes() == 0);
            assert_eq!(decode::<Vec<String>>(&bytes, "seq").unwrap(), values);
            assert_eq!(bytes, encode_positional(&values), "the same bytes as a Vec at once");
        }
    }

    #[test]
    fn large_values_are_compressed_and_plain_ones_still_read() {
        let long = "refund delayed ".repeat(40);
        let bytes = encode(&long);
        assert_eq!(bytes[0], LZ4);
        assert!(bytes.len() < long.len() / 2);
        assert_eq!(decode::<String>(&bytes, "s").unwrap(), long);
        let mut v1 = vec![PLAIN];
        rmp_serde::encode::write_named(&mut v1, &long).unwrap();
        assert_eq!(decode::<String>(&v1, "s").unwrap(), long);
    }

    #[test]
    fn a_positional_value_reads_into_a_later_version_with_a_defaulted_field_at_the_end() {
        #[derive(Serialize)]
        struct V1 {
            a: u64,
            b: String,
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct V2 {
            a: u64,
            b: String,
            #[serde(default)]
            c: Vec<u64>,
        }
        let bytes = encode_positional(&V1 {
            a: 7,
            b: "x".repeat(200),
        });
        assert_eq!(bytes[0], LZ4);
        assert_eq!(
            decode::<V2>(&bytes, "v").unwrap(),
            V2 {
                a: 7,
                b: "x".repeat(200),
                c: vec![]
            }
        );
    }

    #[test]
    fn unknown_versions_are_reported_not_misread() {
        let mut bytes = encode(&5u64);
        bytes[0] = 9;
        assert!(matches!(decode::<u64>(&bytes, "n"), Err(StorageError::Corrupt { .. })));
        assert!(decode::<u64>(&[], "n").is_err());
    }
}
