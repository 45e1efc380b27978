//! Credentials held in memory in a wrapper that never prints them.

use std::fmt;

/// A secret value (a key, a token). `Debug` and `Display` print `***`, so a secret can sit in a
/// config struct that is logged without leaking; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that signs or sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Reads a secret from the environment variable `var` or, when `file` is given, from that file
/// (trailing newline trimmed). The error names where it looked, never the value.
pub fn secret_from(var: &str, file: Option<&std::path::Path>) -> Result<Secret, String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading secret file {}: {e}", path.display()))?;
        return Ok(Secret::new(text.trim_end_matches(['\r', '\n'])));
    }
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
        _ => Err(format!("environment variable {var} is not set")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2");
    }
}
