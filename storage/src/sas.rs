//! Account shared access signatures (SAS), signed here from an account key.
//!
//! Microsoft's Rust SDK has no shared-key authentication, so a user who holds an account key (and the
//! Azurite emulator, whose key is public) gets a short account SAS instead: the HMAC-SHA256, keyed with
//! the decoded account key, of the newline-joined fields of the "Create an account SAS" page
//! (service version 2020-12-06 and later).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Secret;

/// Service version of the signatures made here.
pub const SAS_VERSION: &str = "2021-08-06";

/// What an account SAS grants.
#[derive(Debug, Clone)]
pub struct AccountSas<'a> {
    pub account: &'a str,
    /// Permissions in canonical order, e.g. "rwdlac".
    pub permissions: &'a str,
    pub start: SystemTime,
    pub expiry: SystemTime,
}

impl AccountSas<'_> {
    /// Blob service, service + container + object resources, valid from five minutes ago (clock skew)
    /// for `lifetime`, with read, write, delete, list, add and create rights.
    pub fn blob_read_write(account: &str, lifetime: Duration) -> AccountSas<'_> {
        let now = SystemTime::now();
        AccountSas { account, permissions: "rwdlac", start: now - Duration::from_secs(300), expiry: now + lifetime }
    }

    /// The query string of the SAS (`sv=..&ss=b&..&sig=..`), percent-encoded.
    pub fn sign(&self, account_key: &Secret) -> Result<Secret, String> {
        let key = STANDARD.decode(account_key.expose().trim()).map_err(|_| "the account key is not valid base64".to_owned())?;
        let (start, expiry) = (iso8601(self.start), iso8601(self.expiry));
        // account, permissions, services, resource types, start, expiry, IP, protocol, version,
        // encryption scope, each followed by a newline.
        let to_sign = format!("{}\n{}\nb\nsco\n{start}\n{expiry}\n\n\n{SAS_VERSION}\n\n", self.account, self.permissions);
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| "the account key is empty".to_owned())?;
        mac.update(to_sign.as_bytes());
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("sv", SAS_VERSION)
            .append_pair("ss", "b")
            .append_pair("srt", "sco")
            .append_pair("sp", self.permissions)
            .append_pair("st", &start)
            .append_pair("se", &expiry)
            .append_pair("sig", &signature)
            .finish();
        Ok(Secret::new(query))
    }
}

/// `2026-11-28T21:55:18Z`: UTC, whole seconds, as SAS fields want (the calendar is the `time`
/// crate's; a time before 1970 reads as 1970).
pub(crate) fn iso8601(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let t = i64::try_from(secs).ok().and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(UNIX_EPOCH + Duration::from_secs(1_795_989_318)), "2026-11-29T21:55:18Z");
        assert_eq!(iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn signs_the_documented_string() {
        // Expected signature computed independently with Python's hmac over the same ten lines.
        let start = UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
        let sas = AccountSas { account: "devstoreaccount1", permissions: "rwdlac", start, expiry: start + Duration::from_secs(86_400) };
        let key = Secret::new("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==");
        let query = sas.sign(&key).unwrap();
        assert!(query.expose().starts_with("sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&st=2026-01-01T00%3A00%3A00Z&se=2026-01-02T00%3A00%3A00Z&sig="), "{}", query.expose());
        assert!(query.expose().ends_with(EXPECTED_SIG), "{}", query.expose());
        assert!(sas.sign(&Secret::new("not base64!")).is_err());
    }

    const EXPECTED_SIG: &str = "sig=Xqk1E3iItEoCfDWIY%2Boqtp5NUABMLocAfiM3xnyM1%2Fc%3D";
}
