//! HTTP Digest authentication (RFC 2617 / 7616, MD5 and MD5-sess,
//! `qop=auth`), which Atlas programmatic API keys require. MD5 is the
//! `md-5` crate's.

use md5::{Digest, Md5};
use std::fmt::Write as _;

/// A Digest challenge from a `WWW-Authenticate` header, and how many
/// requests have answered it (`nc`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Challenge {
    pub(super) realm: String,
    pub(super) nonce: String,
    pub(super) opaque: Option<String>,
    pub(super) qop: Option<String>,
    pub(super) algorithm: Option<String>,
    pub(super) stale: bool,
    pub(super) nc: u32,
}

/// The Digest challenge in the `WWW-Authenticate` headers, if any.
pub(super) fn challenge(headers: &reqwest::header::HeaderMap) -> Option<Challenge> {
    headers.get_all(reqwest::header::WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).find_map(parse_challenge)
}

/// Parses `Digest realm="…", nonce="…", qop="auth", algorithm=MD5, stale=false`.
fn parse_challenge(header: &str) -> Option<Challenge> {
    let h = header.trim();
    let rest = h.get(..7).filter(|p| p.eq_ignore_ascii_case("digest "))?;
    let params = auth_params(&h[rest.len()..]);
    let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    Some(Challenge {
        realm: get("realm").unwrap_or_default(),
        nonce: get("nonce")?,
        opaque: get("opaque"),
        qop: get("qop"),
        algorithm: get("algorithm"),
        stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        nc: 0,
    })
}

/// `k=v, k="quoted, \"value\""` pairs.
pub fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        let name = name.trim().to_string();
        if !name.is_empty() {
            out.push((name, value.trim().to_string()));
        }
        if chars.peek().is_none() {
            return out;
        }
    }
}

/// The lowercase hex MD5 of `data`.
pub fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data).iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The Digest `response` value (RFC 2617 3.2.2.1). `qop` None is the
/// RFC 2069 form.
#[allow(clippy::too_many_arguments)]
pub(super) fn response(
    user: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    qop: Option<&str>,
) -> String {
    let ha1 = md5_hex(format!("{user}:{realm}:{password}").as_bytes());
    let ha2 = md5_hex(format!("{method}:{uri}").as_bytes());
    match qop {
        Some(q) => md5_hex(format!("{ha1}:{nonce}:{nc}:{cnonce}:{q}:{ha2}").as_bytes()),
        None => md5_hex(format!("{ha1}:{nonce}:{ha2}").as_bytes()),
    }
}

/// The `Authorization` header value answering `ch` for one request.
pub(super) fn authorization(
    user: &str,
    password: &str,
    ch: &Challenge,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> String {
    let qop = ch.qop.as_deref().map(|q| q.split(',').map(str::trim).any(|q| q == "auth"));
    let nc = format!("{:08x}", ch.nc);
    let sess = ch.algorithm.as_deref().is_some_and(|a| a.eq_ignore_ascii_case("MD5-sess"));
    let response = if sess {
        let ha1 = md5_hex(format!("{user}:{}:{password}", ch.realm).as_bytes());
        let ha1 = md5_hex(format!("{ha1}:{}:{cnonce}", ch.nonce).as_bytes());
        let ha2 = md5_hex(format!("{method}:{uri}").as_bytes());
        md5_hex(format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", ch.nonce).as_bytes())
    } else {
        let q = if qop == Some(true) { Some("auth") } else { None };
        response(user, &ch.realm, password, method, uri, &ch.nonce, &nc, cnonce, q)
    };
    let mut h = format!(
        "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\"",
        ch.realm, ch.nonce
    );
    if let Some(a) = &ch.algorithm {
        let _ = write!(h, ", algorithm={a}");
    }
    if qop == Some(true) || sess {
        let _ = write!(h, ", qop=auth, nc={nc}, cnonce=\"{cnonce}\"");
    }
    if let Some(o) = &ch.opaque {
        let _ = write!(h, ", opaque=\"{o}\"");
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MD5 examples of RFC 2617 section 3.5 and RFC 7616 section 3.9.1.
    #[test]
    fn digest_response_matches_the_rfc_examples() {
        let table = [
            (
                "testrealm@host.com",
                "Circle Of Life",
                "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                "0a4f113b",
                "6629fae49393a05397450978507c4ef1",
            ),
            (
                "http-auth@example.org",
                "Circle of Life",
                "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                "8ca523f5e9506fed4657c9700eebdbec",
            ),
        ];
        for (realm, password, nonce, cnonce, want) in table {
            let got =
                response("Mufasa", realm, password, "GET", "/dir/index.html", nonce, "00000001", cnonce, Some("auth"));
            assert_eq!(got, want, "{realm}");
        }
    }

    #[test]
    fn authorization_answers_the_rfc_2617_challenge() {
        let ch = parse_challenge(
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .map(|ch| Challenge { nc: 1, ..ch })
        .unwrap();
        let h = authorization("Mufasa", "Circle Of Life", &ch, "GET", "/dir/index.html", "0a4f113b");
        assert_eq!(
            h,
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"6629fae49393a05397450978507c4ef1\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
        );
    }

    #[test]
    fn digest_challenge_is_parsed() {
        let ch = parse_challenge(
            r#"Digest realm="MMS Public API", domain="", nonce="a/b+c==", algorithm=MD5, qop="auth", stale=false"#,
        )
        .unwrap();
        assert_eq!(ch.realm, "MMS Public API");
        assert_eq!(ch.nonce, "a/b+c==");
        assert_eq!(ch.qop.as_deref(), Some("auth"));
        assert_eq!(ch.algorithm.as_deref(), Some("MD5"));
        assert!(!ch.stale);
        assert!(parse_challenge("Bearer realm=\"x\"").is_none());
        let params = auth_params(r#"a="x, \"y\"", b=2"#);
        assert_eq!(params, vec![("a".into(), "x, \"y\"".into()), ("b".into(), "2".into())]);
    }
}
