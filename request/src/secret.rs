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

/// Reads a secret, the one rule every credential of the system follows: from `file` when one is
/// given (whitespace around it trimmed: editors and `kubectl create secret` add newlines), else from
/// the environment variable `var`. An empty or unreadable file is an error naming the file; an
/// unset or empty variable is `Ok(None)`. Errors name where they looked, never a value.
pub fn read_secret(var: Option<&str>, file: Option<&std::path::Path>) -> Result<Option<Secret>, String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading secret file {}: {e}", path.display()))?;
        let value = text.trim();
        if value.is_empty() {
            return Err(format!("secret file {} is empty", path.display()));
        }
        return Ok(Some(Secret::new(value)));
    }
    Ok(var.and_then(|v| std::env::var(v).ok()).filter(|v| !v.is_empty()).map(Secret::new))
}

/// [`read_secret`] for a secret that must be there: an unset variable is an error naming it.
pub fn secret_from(var: &str, file: Option<&std::path::Path>) -> Result<Secret, String> {
    read_secret(Some(var), file)?.ok_or_else(|| format!("environment variable {var} is not set"))
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

    #[test]
    fn one_rule_for_files_and_variables() {
        let dir = tempfile::tempdir().unwrap();
        let (padded, empty) = (dir.path().join("padded"), dir.path().join("empty"));
        std::fs::write(&padded, "  s3cr3t\r\n").unwrap();
        std::fs::write(&empty, "\n").unwrap();
        assert_eq!(read_secret(None, Some(&padded)).unwrap().unwrap().expose(), "s3cr3t");
        let err = read_secret(None, Some(&empty)).unwrap_err();
        assert!(err.contains("is empty") && err.contains(&empty.display().to_string()), "{err}");
        assert!(read_secret(None, Some(&dir.path().join("missing"))).unwrap_err().contains("reading secret file"));
        assert!(read_secret(Some("CLOUDBENCH_TEST_SECRET_SURELY_UNSET"), None).unwrap().is_none());
        assert!(secret_from("CLOUDBENCH_TEST_SECRET_SURELY_UNSET", None).unwrap_err().contains("CLOUDBENCH_TEST_SECRET_SURELY_UNSET is not set"));
    }
}
