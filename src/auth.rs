//! API keys: the keys file, what each route requires, and the check.
//!
//! The keys file has one key a line, `<name> <scope> <sha256 hex of the key>`;
//! `#` starts a comment. Only the hash is ever stored; a presented key is
//! hashed and compared with every stored hash in constant time, so neither
//! the answer nor its timing tells which keys exist.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may do. `Admin` includes `Write`, which includes `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope {other:?}; the scopes are read, write and admin"
            )),
        }
    }
}

/// One configured key: its name (for logs and rate limits) and scope.
#[derive(Clone)]
pub struct ApiKey {
    pub name: String,
    pub scope: Scope,
    hash: [u8; 32],
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({} {})", self.name, self.scope.as_str())
    }
}

/// The configured keys. Empty: the service runs open.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<ApiKey>,
    protect_reads: bool,
}

/// Why a keys file was refused; names the line.
#[derive(Debug, thiserror::Error)]
pub enum KeysFileError {
    #[error("cannot read the keys file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("keys file {path}, line {line}: {message} (expected `<name> <scope> <sha256 hex of the key>`)")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    #[error("keys file {path} has no keys: remove GENE_API__AUTH__KEYS_FILE to run open, or add a key (gene-api keygen)")]
    Empty { path: String },
}

/// The outcome of checking a request's key against what its route requires.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; the key's name when one was presented and valid.
    Allowed(Option<String>),
    /// No key, or one that matches none (the same answer for both).
    Unauthorized,
    /// A valid key whose scope is not enough.
    Forbidden { name: String, needed: Scope },
}

impl KeyRing {
    /// Reads and checks the keys file.
    pub fn load(path: &Path, protect_reads: bool) -> Result<Self, KeysFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeysFileError::Read {
            path: shown.clone(),
            source,
        })?;
        let ring =
            Self::parse(&text, protect_reads).map_err(|(line, message)| KeysFileError::Line {
                path: shown.clone(),
                line,
                message,
            })?;
        if ring.keys.is_empty() {
            return Err(KeysFileError::Empty { path: shown });
        }
        Ok(ring)
    }

    /// Parses the file's text; an error is `(line number, what is wrong)`.
    pub fn parse(text: &str, protect_reads: bool) -> Result<Self, (usize, String)> {
        let mut keys: Vec<ApiKey> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let n = i + 1;
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, scope, hash] = fields[..] else {
                return Err((n, format!("{} fields, not 3", fields.len())));
            };
            let scope: Scope = scope.parse().map_err(|e| (n, e))?;
            let bytes = hex::decode(hash)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    (
                        n,
                        "the third field is not a SHA-256 in hex (64 hex digits); \
                         gene-api keygen prints the line to use"
                            .to_string(),
                    )
                })?;
            if keys.iter().any(|k| k.name == name) {
                return Err((n, format!("the name {name:?} is used twice")));
            }
            if keys.iter().any(|k| k.hash == bytes) {
                return Err((n, "the same key is listed twice".into()));
            }
            keys.push(ApiKey {
                name: name.to_string(),
                scope,
                hash: bytes,
            });
        }
        Ok(Self {
            keys,
            protect_reads,
        })
    }

    /// True when keys are configured (else the service is open).
    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    pub fn protect_reads(&self) -> bool {
        self.protect_reads
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The scope of the key named `name`.
    pub fn scope_of(&self, name: &str) -> Option<Scope> {
        self.keys.iter().find(|k| k.name == name).map(|k| k.scope)
    }

    /// The key matching `presented`, compared with every stored hash in
    /// constant time (no early exit).
    pub fn find(&self, presented: &str) -> Option<&ApiKey> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.hash.ct_eq(&digest)) {
                found = Some(key);
            }
        }
        found
    }

    /// Checks a request needing `needed` (None: open to all) that carried
    /// the `Authorization` header `authorization`.
    pub fn check(&self, needed: Option<Scope>, authorization: Option<&str>) -> Verdict {
        let key = authorization.and_then(bearer).and_then(|k| self.find(k));
        let name = key.map(|k| k.name.clone());
        let Some(needed) = needed else {
            return Verdict::Allowed(name);
        };
        if !self.is_enabled() || (needed == Scope::Read && !self.protect_reads) {
            return Verdict::Allowed(name);
        }
        match key {
            None => Verdict::Unauthorized,
            Some(k) if k.scope >= needed => Verdict::Allowed(name),
            Some(k) => Verdict::Forbidden {
                name: k.name.clone(),
                needed,
            },
        }
    }
}

/// The key of `Authorization: Bearer <key>` (the scheme is case-insensitive).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, key) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty())
}

/// Every operation the gate knows: its method, its route template (see
/// `routes::route_template`) and the scope it needs (None: open to all, for
/// the probes, the dashboard page and `/whoami`). `HEAD` is asked as `GET`.
///
/// Deny by default: [`required_scope`] answers `admin` for anything not in
/// this table, so a route added to the router and forgotten here is closed to
/// all but admin keys, never open to everyone (the security test walks the
/// router and fails on it). A method or path that no route takes needs admin
/// too: with keys on, it is 401 without an admin key, and the router's 404 or
/// 405 with one.
pub const OPERATIONS: &[(&str, &str, Option<Scope>)] = {
    use Scope::{Admin, Read, Write};
    &[
        ("GET", "/", None),
        ("GET", "/health", None),
        ("GET", "/ready", None),
        ("GET", "/whoami", None),
        ("GET", "/metrics", Some(Read)),
        ("GET", "/openapi.json", Some(Read)),
        ("GET", "/docs", Some(Read)),
        ("GET", "/docs/{file}", Some(Read)),
        ("GET", "/data", Some(Read)),
        ("POST", "/data", Some(Write)),
        ("DELETE", "/data", Some(Admin)),
        ("GET", "/data/info", Some(Read)),
        ("GET", "/schedules", Some(Read)),
        ("GET", "/genes", Some(Read)),
        ("GET", "/genes/{hgnc_id}", Some(Read)),
        ("GET", "/genes/symbol/{symbol}", Some(Read)),
        // A read sent as POST: the terms are too many for a query string.
        ("POST", "/genes/lookup", Some(Read)),
        ("GET", "/search", Some(Read)),
        ("GET", "/info", Some(Read)),
        ("GET", "/hgnc/info", Some(Read)),
        ("GET", "/hgnc/fetch/{field}/{term}", Some(Read)),
        ("GET", "/hgnc/search/{query}", Some(Read)),
        ("GET", "/hgnc/search/{field}/{query}", Some(Read)),
        // HGNC's paths, asked through gene-api as an HTTP proxy (`/info` is above).
        ("GET", "/fetch/{field}/{term}", Some(Read)),
        ("GET", "/search/{query}", Some(Read)),
        ("GET", "/search/{field}/{query}", Some(Read)),
        ("GET", "/releases", Some(Read)),
        ("GET", "/releases/{release}", Some(Read)),
        ("GET", "/releases/{from}/diff/{to}", Some(Read)),
        ("GET", "/genes/{hgnc_id}/history", Some(Read)),
        ("GET", "/genes/symbol/{symbol}/history", Some(Read)),
        ("GET", "/jobs", Some(Read)),
        ("POST", "/jobs", Some(Write)),
        ("GET", "/jobs/stats", Some(Read)),
        ("POST", "/jobs/pause", Some(Admin)),
        ("POST", "/jobs/resume", Some(Admin)),
        ("GET", "/jobs/{job_id}", Some(Read)),
        ("DELETE", "/jobs/{job_id}", Some(Write)),
        ("POST", "/jobs/{job_id}/retry", Some(Write)),
        ("GET", "/jobs/{job_id}/events", Some(Read)),
        ("GET", "/jobs/dead", Some(Read)),
        ("POST", "/jobs/dead/{entry_id}/requeue", Some(Admin)),
        ("DELETE", "/jobs/dead/{entry_id}", Some(Admin)),
        ("GET", "/events", Some(Read)),
        ("GET", "/image", Some(Read)),
        ("POST", "/image", Some(Write)),
        ("DELETE", "/image", Some(Admin)),
        ("GET", "/image/{job_id}", Some(Read)),
        ("DELETE", "/image/{job_id}", Some(Admin)),
    ]
};

/// What a request needs, by method and route template: its line of
/// [`OPERATIONS`], else `admin` (deny by default).
pub fn required_scope(method: &str, template: &str) -> Option<Scope> {
    let method = if method == "HEAD" { "GET" } else { method };
    OPERATIONS
        .iter()
        .find(|(m, t, _)| *m == method && *t == template)
        .map_or(Some(Scope::Admin), |(_, _, scope)| *scope)
}

/// A new random key (256 bits) and its keys-file line.
pub fn generate(name: &str, scope: Scope) -> Result<(String, String), String> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '#') {
        return Err(format!(
            "the name {name:?} must be non-empty, without spaces or '#'"
        ));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let key = format!("gak_{}", hex::encode(bytes));
    let line = format!(
        "{name} {} {}",
        scope.as_str(),
        hex::encode(Sha256::digest(key.as_bytes()))
    );
    Ok((key, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(protect_reads: bool) -> (KeyRing, String, String) {
        let (w, wl) = generate("ci", Scope::Write).unwrap();
        let (a, al) = generate("ops", Scope::Admin).unwrap();
        let text = format!("# keys\n\n{wl}\n  {al}   # the operators\n");
        (KeyRing::parse(&text, protect_reads).unwrap(), w, a)
    }

    #[test]
    fn scopes_order_and_routes() {
        let (r, w, a) = ring(false);
        assert_eq!(r.len(), 2);
        let bw = format!("Bearer {w}");
        let ba = format!("bearer {a}");
        let post_image = required_scope("POST", "/image");
        assert_eq!(r.check(post_image, None), Verdict::Unauthorized);
        assert_eq!(
            r.check(post_image, Some("Bearer nope")),
            Verdict::Unauthorized
        );
        assert_eq!(
            r.check(post_image, Some(&w)),
            Verdict::Unauthorized,
            "scheme needed"
        );
        assert_eq!(
            r.check(post_image, Some(&bw)),
            Verdict::Allowed(Some("ci".into()))
        );
        assert_eq!(
            r.check(post_image, Some(&ba)),
            Verdict::Allowed(Some("ops".into()))
        );
        let delete_data = required_scope("DELETE", "/data");
        assert_eq!(
            r.check(delete_data, Some(&bw)),
            Verdict::Forbidden {
                name: "ci".into(),
                needed: Scope::Admin
            }
        );
        assert_eq!(
            r.check(delete_data, Some(&ba)),
            Verdict::Allowed(Some("ops".into()))
        );
        // Reads are open unless protected; probes and the page always are.
        let get_genes = required_scope("GET", "/genes");
        assert_eq!(r.check(get_genes, None), Verdict::Allowed(None));
        let (p, w2, _) = ring(true);
        assert_eq!(p.check(get_genes, None), Verdict::Unauthorized);
        assert_eq!(
            p.check(get_genes, Some(&format!("Bearer {w2}"))),
            Verdict::Allowed(Some("ci".into()))
        );
        assert_eq!(
            p.check(required_scope("GET", "/ready"), None),
            Verdict::Allowed(None)
        );
        assert_eq!(
            p.check(required_scope("GET", "/"), None),
            Verdict::Allowed(None)
        );
    }

    #[test]
    fn every_write_route_needs_a_scope() {
        for (m, t, s) in [
            ("POST", "/data", Scope::Write),
            ("POST", "/jobs", Scope::Write),
            ("POST", "/image", Scope::Write),
            ("DELETE", "/jobs/{job_id}", Scope::Write),
            ("POST", "/jobs/{job_id}/retry", Scope::Write),
            ("DELETE", "/data", Scope::Admin),
            ("DELETE", "/image", Scope::Admin),
            ("DELETE", "/image/{job_id}", Scope::Admin),
            ("POST", "/jobs/dead/{entry_id}/requeue", Scope::Admin),
            ("DELETE", "/jobs/dead/{entry_id}", Scope::Admin),
            ("GET", "/metrics", Scope::Read),
            ("GET", "/events", Scope::Read),
        ] {
            assert_eq!(required_scope(m, t), Some(s), "{m} {t}");
        }
    }

    #[test]
    fn open_without_keys() {
        let r = KeyRing::default();
        assert!(!r.is_enabled());
        assert_eq!(
            r.check(required_scope("DELETE", "/data"), None),
            Verdict::Allowed(None)
        );
    }

    #[test]
    fn what_the_gate_does_not_know_needs_admin() {
        // A write route left out of the table, a method no route takes, a
        // path no route takes: closed to all but admin keys, never open.
        for (m, t) in [
            ("POST", "/genes/{hgnc_id}"),
            ("PUT", "/data"),
            ("PATCH", "/jobs/{job_id}"),
            ("POST", "/whoami"),
            ("DELETE", "/health"),
            ("GET", "unmatched"),
            ("POST", "unmatched"),
            ("GET", "/admin/new-route"),
        ] {
            assert_eq!(required_scope(m, t), Some(Scope::Admin), "{m} {t}");
        }
        let (r, w, a) = ring(false);
        let needed = required_scope("POST", "/something/new");
        assert_eq!(r.check(needed, None), Verdict::Unauthorized);
        assert_eq!(
            r.check(needed, Some(&format!("Bearer {w}"))),
            Verdict::Forbidden {
                name: "ci".into(),
                needed: Scope::Admin
            }
        );
        assert_eq!(
            r.check(needed, Some(&format!("Bearer {a}"))),
            Verdict::Allowed(Some("ops".into()))
        );
        // HEAD is asked as GET; each operation is listed once.
        assert_eq!(required_scope("HEAD", "/genes"), Some(Scope::Read));
        assert_eq!(required_scope("HEAD", "/health"), None);
        for (i, (m, t, _)) in OPERATIONS.iter().enumerate() {
            assert!(
                !OPERATIONS[..i].iter().any(|(m2, t2, _)| m2 == m && t2 == t),
                "{m} {t} is listed twice"
            );
        }
    }

    #[test]
    fn malformed_files_name_the_line() {
        let good = "a".repeat(64);
        for (text, line, needle) in [
            (format!("x write {good}\ny write"), 2, "2 fields"),
            (format!("\n\nx owner {good}"), 3, "unknown scope"),
            ("x write abc".to_string(), 1, "SHA-256"),
            (
                format!("x write {good}\nx admin {}", "b".repeat(64)),
                2,
                "twice",
            ),
            (format!("x write {good}\ny admin {good}"), 2, "twice"),
        ] {
            let (n, msg) = KeyRing::parse(&text, false).unwrap_err();
            assert_eq!(n, line, "{text}");
            assert!(msg.contains(needle), "{msg}");
        }
    }

    #[test]
    fn generated_keys_are_distinct_and_verify() {
        let (k1, l1) = generate("a", Scope::Write).unwrap();
        let (k2, _) = generate("a", Scope::Write).unwrap();
        assert_ne!(k1, k2);
        assert!(!l1.contains(&k1), "the line must not carry the key");
        let r = KeyRing::parse(&l1, false).unwrap();
        assert_eq!(r.find(&k1).map(|k| k.name.as_str()), Some("a"));
        assert!(r.find(&k2).is_none());
        assert!(generate("two words", Scope::Write).is_err());
    }
}
