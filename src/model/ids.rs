//! Identifier rules: supplied ids, names of klasses and attributes, generated ids.

/// Why a name or id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// An id outside `[A-Za-z0-9._:-]{1,64}`.
    #[error("`{0}` is not a valid id (1-64 characters of A-Za-z0-9._:-)")]
    Id(String),
    /// A name outside `[A-Za-z][A-Za-z0-9_]{0,63}`.
    #[error("`{0}` is not a valid name (a letter, then up to 63 letters, digits or _)")]
    Name(String),
}

/// Checks a caller-supplied id: 1-64 characters of `A-Za-z0-9._:-`.
///
/// ```
/// assert!(kindred::model::ids::check_id("customer-123").is_ok());
/// assert!(kindred::model::ids::check_id("a b").is_err());
/// ```
pub fn check_id(id: &str) -> Result<(), IdError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(IdError::Id(id.to_string()))
    }
}

/// Checks a klass, attribute or relationship name: `[A-Za-z][A-Za-z0-9_]{0,63}`.
pub fn check_name(name: &str) -> Result<(), IdError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if ok {
        Ok(())
    } else {
        Err(IdError::Name(name.to_string()))
    }
}

/// A new server-assigned id: a UUID v7 (time-ordered).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_allow_the_documented_alphabet_only() {
        assert!(check_id("ORD-1.2:3_x").is_ok());
        assert!(check_id(&"a".repeat(64)).is_ok());
        assert!(check_id(&"a".repeat(65)).is_err());
        assert!(check_id("").is_err());
        assert!(check_id("a/b").is_err());
        assert!(check_id("é").is_err());
    }

    #[test]
    fn names_start_with_a_letter() {
        assert!(check_name("totalNum").is_ok());
        assert!(check_name("a_1").is_ok());
        assert!(check_name("1a").is_err());
        assert!(check_name("a-b").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn generated_ids_are_valid_ids() {
        assert!(check_id(&new_id()).is_ok());
    }
}
