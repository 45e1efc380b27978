//! Object keys inside a bucket or container: validation and the store's own key prefix.

use crate::{ErrorKind, StorageError};

/// Checks a key the way every backend does, so a key valid on one store is valid on all: not empty,
/// no leading or trailing `/`, no empty, `.` or `..` segment.
pub(crate) fn check_key(key: &str) -> Result<(), StorageError> {
    let clean = !key.is_empty() && key.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
    if clean { Ok(()) } else { Err(StorageError::new(ErrorKind::InvalidKey, format!("invalid object key {key:?}"))) }
}

/// A store's keys all live under this prefix ("" or "datasets/coco/"); callers never see it. (The
/// cloud backends use it; a build with none of them has no use for it.)
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(any(feature = "s3", feature = "azure", feature = "gcs")), allow(dead_code))]
pub(crate) struct KeySpace {
    prefix: String,
}

#[cfg_attr(not(any(feature = "s3", feature = "azure", feature = "gcs")), allow(dead_code))]
impl KeySpace {
    pub(crate) fn new(prefix: &str) -> Self {
        let trimmed = prefix.trim_matches('/');
        Self { prefix: if trimmed.is_empty() { String::new() } else { format!("{trimmed}/") } }
    }

    /// The full key of the caller's `key`.
    pub(crate) fn full(&self, key: &str) -> Result<String, StorageError> {
        check_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    /// The full prefix to list for the caller's `prefix` (which may end anywhere, even mid-name).
    pub(crate) fn list_prefix(&self, prefix: &str) -> String {
        format!("{}{prefix}", self.prefix)
    }

    /// The caller's key of a full key found by a listing.
    pub(crate) fn relative<'a>(&self, full: &'a str) -> Option<&'a str> {
        full.strip_prefix(&self.prefix)
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// Replaces the value of every `sig=` query parameter in `text` with `***`: SAS signatures travel in
/// URLs, and HTTP client errors quote URLs.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("sig=") {
        out.push_str(&rest[..at + 4]);
        out.push_str("***");
        let tail = &rest[at + 4..];
        let end = tail.find(|c: char| c == '&' || c == ')' || c == '"' || c == '\'' || c.is_whitespace()).unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_validates() {
        let space = KeySpace::new("/datasets/coco/");
        assert_eq!(space.full("a/b.jpg").unwrap(), "datasets/coco/a/b.jpg");
        assert_eq!(space.relative("datasets/coco/a/b.jpg"), Some("a/b.jpg"));
        assert_eq!(KeySpace::new("").full("x").unwrap(), "x");
        for bad in ["", "/a", "a/", "a//b", "../a", "a/./b"] {
            assert_eq!(space.full(bad).unwrap_err().kind, ErrorKind::InvalidKey, "{bad:?}");
        }
    }

    #[test]
    fn scrubs_signatures() {
        let text = "error sending request for url (http://h/c/b?sv=2021&sig=abc%2Bdef&se=x): refused sig=zzz";
        assert_eq!(scrub(text), "error sending request for url (http://h/c/b?sv=2021&sig=***&se=x): refused sig=***");
    }
}
