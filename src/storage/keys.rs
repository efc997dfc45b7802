//! Key layout of the one sled tree.
//!
//! Every key starts with a space byte: `G` (0x47) for platform-wide entries, `O` (0x4f) followed by
//! the org num (8 bytes, big-endian) and a kind byte for org entries. Numbers are big-endian so
//! that byte order is numeric order and a prefix scan walks an org's objects or log in order.

/// Platform-wide entries.
pub const GLOBAL: u8 = b'G';
/// Org entries.
pub const ORG: u8 = b'O';

/// Kinds of global entries.
pub mod global {
    /// `G o <org num>` -> Org.
    pub const ORG: u8 = b'o';
    /// `G i <org id>` -> org num.
    pub const ORG_ID: u8 = b'i';
    /// `G n <org name>` -> org num.
    pub const ORG_NAME: u8 = b'n';
    /// `G k <sha256 of key>` -> ApiKey.
    pub const API_KEY: u8 = b'k';
    /// `G c <name>` -> u64 counter.
    pub const COUNTER: u8 = b'c';
    /// `G m <name>` -> bytes (platform metadata).
    pub const META: u8 = b'm';
}

/// Kinds of org entries.
pub mod org {
    /// `O <org> O <num>` -> Object.
    pub const OBJECT: u8 = b'O';
    /// `O <org> I <id>` -> num.
    pub const ID: u8 = b'I';
    /// `O <org> X <klass> 0x00 <externalId>` -> num.
    pub const EXTERNAL_ID: u8 = b'X';
    /// `O <org> E <lowercased email>` -> num.
    pub const EMAIL: u8 = b'E';
    /// `O <org> L <seq>` -> ChangeRecord (one record per key, as written before log blocks).
    pub const LOG: u8 = b'L';
    /// `O <org> B <first seq> <last seq>` -> the change records first..=last of one write, in order.
    pub const LOG_BLOCK: u8 = b'B';
    /// `O <org> C <name>` -> u64 counter.
    pub const COUNTER: u8 = b'C';
    /// `O <org> R <consumer>` -> u64 cursor.
    pub const CURSOR: u8 = b'R';
    /// `O <org> D <collection> <id>` -> document.
    pub const DOC: u8 = b'D';
}

/// Key of a platform-wide entry.
pub fn global_key(kind: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + rest.len());
    k.push(GLOBAL);
    k.push(kind);
    k.extend_from_slice(rest);
    k
}

/// Prefix of every entry of one org.
pub fn org_prefix(org: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(ORG);
    k.extend_from_slice(&org.to_be_bytes());
    k
}

/// Key of an org entry.
pub fn org_key(org: u64, kind: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + rest.len());
    k.push(ORG);
    k.extend_from_slice(&org.to_be_bytes());
    k.push(kind);
    k.extend_from_slice(rest);
    k
}

/// Key of an org entry whose rest is one big-endian u64 (objects, log).
pub fn org_num_key(org: u64, kind: u8, n: u64) -> Vec<u8> {
    org_key(org, kind, &n.to_be_bytes())
}

/// Key of a document in a collection.
pub fn doc_key(org: u64, collection: u8, id: &str) -> Vec<u8> {
    let mut rest = Vec::with_capacity(1 + id.len());
    rest.push(collection);
    rest.extend_from_slice(id.as_bytes());
    org_key(org, org::DOC, &rest)
}

/// Key of an externalId lookup; the 0x00 separator cannot occur in a klass name.
pub fn external_id_key(org: u64, klass: &str, external_id: &str) -> Vec<u8> {
    let mut rest = Vec::with_capacity(klass.len() + 1 + external_id.len());
    rest.extend_from_slice(klass.as_bytes());
    rest.push(0);
    rest.extend_from_slice(external_id.as_bytes());
    org_key(org, org::EXTERNAL_ID, &rest)
}

/// Key of a change-log block holding the records `first..=last`.
pub fn log_block_key(org: u64, first: u64, last: u64) -> Vec<u8> {
    let mut rest = [0u8; 16];
    rest[..8].copy_from_slice(&first.to_be_bytes());
    rest[8..].copy_from_slice(&last.to_be_bytes());
    org_key(org, org::LOG_BLOCK, &rest)
}

/// The `(first, last)` seqs of a change-log block's key.
pub fn log_block_range(key: &[u8]) -> Option<(u64, u64)> {
    let first = trailing_u64(key.get(..key.len().checked_sub(8)?)?)?;
    Some((first, trailing_u64(key)?))
}

/// Reads the trailing big-endian u64 of a key.
pub fn trailing_u64(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// Encodes a u64 value.
pub fn u64_value(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Decodes a u64 value.
pub fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn num_keys_sort_like_their_numbers(org_a in any::<u64>(), org_b in any::<u64>(), a in any::<u64>(), b in any::<u64>()) {
            let ka = org_num_key(org_a, org::OBJECT, a);
            let kb = org_num_key(org_b, org::OBJECT, b);
            prop_assert_eq!(ka.cmp(&kb), (org_a, a).cmp(&(org_b, b)));
            prop_assert_eq!(trailing_u64(&ka), Some(a));
        }

        #[test]
        fn org_keys_stay_inside_their_org_prefix(org in any::<u64>(), id in "[A-Za-z0-9._:-]{1,64}") {
            let k = doc_key(org, b'u', &id);
            prop_assert!(k.starts_with(&org_prefix(org)));
            let next = org.checked_add(1);
            if let Some(next) = next {
                prop_assert!(k < org_prefix(next));
            }
        }

        #[test]
        fn external_ids_of_different_klasses_never_collide(k1 in "[a-z]{1,8}", k2 in "[a-z]{1,8}", e1 in "[ -~]{0,10}", e2 in "[ -~]{0,10}") {
            prop_assume!((&k1, &e1) != (&k2, &e2));
            prop_assert_ne!(external_id_key(1, &k1, &e1), external_id_key(1, &k2, &e2));
        }
    }

    #[test]
    fn log_block_keys_sort_by_first_seq_and_give_back_their_range() {
        let k = log_block_key(3, 10, 20);
        assert_eq!(log_block_range(&k), Some((10, 20)));
        assert!(k < log_block_key(3, 21, 21));
        assert!(log_block_key(3, 9, u64::MAX) < k);
        assert!(k.starts_with(&org_key(3, org::LOG_BLOCK, &[])));
        assert_eq!(log_block_range(&[1, 2]), None);
    }

    #[test]
    fn u64_values_round_trip() {
        assert_eq!(read_u64(&u64_value(42)), Some(42));
        assert_eq!(read_u64(&[1, 2]), None);
    }
}
