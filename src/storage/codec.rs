//! Versioned value encoding: one version byte, then MessagePack with field names, so that fields
//! added later (with serde defaults) still read old values. Version 2 compresses values over
//! [`COMPRESS_OVER`] bytes with LZ4 (objects halve; sled copies leaves on every insert, so small
//! values make writes cheaper too). Version 1 (uncompressed) is still read.

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

/// Decodes a value written by [`encode`].
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
        fn change_records_round_trip(o in object(), seq in any::<u64>()) {
            let rec = ChangeRecord { seq, op: ChangeOp::Updated, klass: o.klass.clone(), num: o.num, id: o.id.clone(), at: 5,
                before: Some(o.clone()), after: Some(o), changed: vec!["custom.x".into()], depth: 0 };
            let back: ChangeRecord = decode(&encode(&rec), "change").unwrap();
            prop_assert_eq!(back, rec);
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
    fn unknown_versions_are_reported_not_misread() {
        let mut bytes = encode(&5u64);
        bytes[0] = 9;
        assert!(matches!(decode::<u64>(&bytes, "n"), Err(StorageError::Corrupt { .. })));
        assert!(decode::<u64>(&[], "n").is_err());
    }
}
