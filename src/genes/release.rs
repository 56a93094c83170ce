//! A release: one successful load, immutable, with the facts that make a
//! result citable (where it came from, its bytes and sha256, the date the
//! data is as of) and the withdrawn file loaded with it.

use serde::{Deserialize, Serialize};

/// What a release is. Stored as the release's `meta` part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ReleaseInfo {
    /// `<as_of>-<first 8 hex digits of the content hash>`, e.g.
    /// `2024-07-23-5f0c2a9e`: the same files always get the same id.
    pub id: String,
    /// The date the data is as of (`YYYY-MM-DD`); `as_of_from` says how it was found.
    pub as_of: String,
    pub as_of_from: AsOfSource,
    /// Gene records in the release.
    pub records: u64,
    /// Where the complete set was read from.
    pub source: String,
    /// Size of the complete set, in bytes.
    pub source_bytes: u64,
    /// SHA-256 of the complete set, hex.
    pub sha256: String,
    /// The source's HTTP `ETag`, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The source's HTTP `Last-Modified`, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// When it was stored (RFC 3339, UTC).
    pub loaded_at: String,
    /// The load job that stored it.
    pub job_id: String,
    /// The withdrawn file loaded with it (absent when the server reads none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<WithdrawnFile>,
    /// Length of `GET /data`'s body for this release.
    pub data_bytes: u64,
    /// The same as `id`: the name clients of 0.2 read.
    pub version: String,
}

/// The withdrawn file's own facts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct WithdrawnFile {
    pub source: String,
    pub bytes: u64,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// Rows (withdrawn ids) in all.
    pub records: u64,
    /// Rows with status `Entry Withdrawn`.
    pub entry_withdrawn: u64,
    /// Rows with status `Merged/Split`.
    pub merged_split: u64,
}

/// How a release's `as_of` date was found, in this order of preference.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AsOfSource {
    /// A `_YYYY-MM-DD` in the source's file name, as in HGNC's archive.
    FileName,
    /// The source's HTTP `Last-Modified`.
    LastModified,
    /// The newest `date_modified` among the records.
    DateModified,
    /// None of those: the day it was loaded.
    LoadedAt,
}

/// The date a release is as of, and how it was found.
pub fn as_of(
    source: &str,
    last_modified: Option<&str>,
    newest_date_modified: Option<&str>,
    loaded_at: &str,
) -> (String, AsOfSource) {
    if let Some(d) = date_in_name(source) {
        return (d, AsOfSource::FileName);
    }
    if let Some(d) = last_modified.and_then(http_date_day) {
        return (d, AsOfSource::LastModified);
    }
    if let Some(d) = newest_date_modified.filter(|d| is_date(d)) {
        return (d.to_string(), AsOfSource::DateModified);
    }
    (loaded_at[..10].to_string(), AsOfSource::LoadedAt)
}

/// A release's id: its date and the first 8 hex digits of the hash of both files.
pub fn release_id(as_of: &str, set_sha256: &str, withdrawn_sha256: Option<&str>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(set_sha256.as_bytes());
    h.update(b"\n");
    h.update(withdrawn_sha256.unwrap_or("").as_bytes());
    let hash = hex::encode(h.finalize());
    format!("{as_of}-{}", &hash[..8])
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// True for `YYYY-MM-DD` with a plausible month and day.
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4) && digits(5..7) && digits(8..10)) {
        return false;
    }
    let month: u32 = s[5..7].parse().unwrap_or(0);
    let day: u32 = s[8..10].parse().unwrap_or(0);
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// The last `_YYYY-MM-DD` in the source's last path segment.
fn date_in_name(source: &str) -> Option<String> {
    let name = source
        .split(['?', '#'])
        .next()
        .unwrap_or(source)
        .rsplit('/')
        .next()?;
    name.rmatch_indices('_')
        .filter_map(|(i, _)| name.get(i + 1..i + 11))
        .find(|d| is_date(d))
        .map(str::to_string)
}

/// The day of an HTTP date (`Tue, 23 Jul 2024 10:00:00 GMT`).
fn http_date_day(value: &str) -> Option<String> {
    let t = httpdate::parse_http_date(value).ok()?;
    Some(humantime::format_rfc3339(t).to_string()[..10].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_prefers_the_file_name_then_last_modified_then_records() {
        let at = "2026-12-07T10:00:00.000Z";
        assert_eq!(
            as_of(
                "https://x/archive/hgnc_complete_set_2024-07-23.json",
                Some("Tue, 01 Oct 2024 10:00:00 GMT"),
                Some("2024-09-01"),
                at
            ),
            ("2024-07-23".into(), AsOfSource::FileName)
        );
        assert_eq!(
            as_of(
                "https://x/hgnc_complete_set.json",
                Some("Tue, 01 Oct 2024 10:00:00 GMT"),
                Some("2024-09-01"),
                at
            ),
            ("2024-10-01".into(), AsOfSource::LastModified)
        );
        assert_eq!(
            as_of("data/hgnc_sample.json", None, Some("2026-10-01"), at),
            ("2026-10-01".into(), AsOfSource::DateModified)
        );
        assert_eq!(
            as_of("data/x_2024-13-01.json", Some("garbage"), None, at),
            ("2026-12-07".into(), AsOfSource::LoadedAt)
        );
    }

    #[test]
    fn ids_name_the_date_and_change_with_either_file() {
        let a = release_id("2024-07-23", "aa", Some("bb"));
        assert!(a.starts_with("2024-07-23-") && a.len() == 19, "{a}");
        assert_eq!(a, release_id("2024-07-23", "aa", Some("bb")));
        assert_ne!(a, release_id("2024-07-23", "aa", Some("bc")));
        assert_ne!(a, release_id("2024-07-23", "ab", Some("bb")));
        assert_ne!(a, release_id("2024-07-23", "aa", None));
    }
}
