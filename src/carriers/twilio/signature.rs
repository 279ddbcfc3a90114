//! `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, URL + sorted parameters)).
//!
//! Implemented as Twilio's own validator (twilio-python `request_validator.py`) does it, see
//! `shared/reference/carriers.md` §2 and §12.1:
//!
//! - The URL is the full URL Twilio called, query included, exactly as sent: we build it from the
//!   configured `public_url` plus the raw request path and query, never from a re-encoded URL.
//! - Form parameters are appended in name order; a repeated name contributes each distinct value
//!   once, in sorted order (`name + value` each).
//! - Twilio's back end is inconsistent about default ports, so the URL is tried both with and
//!   without its port (`:443` for https, `:80` for http, or whatever port it carries).
//! - JSON bodies: the URL carries `bodySHA256` (hex SHA-256 of the raw body). The signature then
//!   covers the URL alone, and the body hash is compared separately.
//!
//! Every comparison is constant-time (`Mac::verify_slice`, `subtle`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

/// The bytes Twilio signs for a form request: the URL, then `name + value` for each parameter in
/// sorted order, repeated names contributing each distinct value once, sorted.
#[must_use]
pub fn string_to_sign(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::with_capacity(
        url.len() + sorted.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>(),
    );
    out.push_str(url);
    for (name, value) in sorted {
        out.push_str(name);
        out.push_str(value);
    }
    out
}

fn mac(token: &SecretString, data: &str) -> HmacSha1 {
    // HMAC takes keys of any length.
    let mut mac = <HmacSha1 as Mac>::new_from_slice(token.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data.as_bytes());
    mac
}

/// The signature Twilio would send for this URL and form (the `simulate` command and tests).
#[must_use]
pub fn sign(token: &SecretString, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(
        mac(token, &string_to_sign(url, params))
            .finalize()
            .into_bytes(),
    )
}

/// The forms of `url` Twilio's validators accept: as given, and with the port added or removed.
#[must_use]
pub fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return variants;
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // A port is the digits after the last ':' that comes after any IPv6 literal's ']'.
    let host_end = authority.rfind(']').unwrap_or(0);
    let port_colon = authority.rfind(':').filter(|&i| {
        i > host_end
            && authority
                .get(i + 1..)
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    let other = match port_colon {
        Some(i) => format!(
            "{scheme}://{}{tail}",
            authority.get(..i).unwrap_or_default()
        ),
        None => {
            let port = if scheme.eq_ignore_ascii_case("https") {
                443
            } else {
                80
            };
            format!("{scheme}://{authority}:{port}{tail}")
        }
    };
    variants.push(other);
    variants
}

/// Verifies a form-encoded request's signature against every accepted form of `url`.
#[must_use]
pub fn verify_form(
    token: &SecretString,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let Ok(expected) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let mut valid = false;
    for candidate in url_variants(url) {
        // No early exit: every variant is checked, so timing does not tell which one matched.
        valid |= mac(token, &string_to_sign(&candidate, params))
            .verify_slice(&expected)
            .is_ok();
    }
    valid
}

/// What [`verify_form`] compares, for `drawbridge webhook verify`: for each accepted form of the
/// URL, the exact string signed and the signature it gives.
#[must_use]
pub fn explain_form(token: &SecretString, url: &str, params: &[(String, String)]) -> Vec<String> {
    url_variants(url)
        .into_iter()
        .flat_map(|candidate| {
            let signed = string_to_sign(&candidate, params);
            let expected = STANDARD.encode(mac(token, &signed).finalize().into_bytes());
            [
                format!("signed:   {signed}"),
                format!("expected: {expected}"),
            ]
        })
        .collect()
}

/// The `bodySHA256` a JSON request's URL claims, lower-cased.
#[must_use]
pub fn claimed_body_hash(url: &str) -> Option<String> {
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or_default())
        .unwrap_or_default();
    crate::carriers::form::parse(query.as_bytes())
        .ok()
        .and_then(|pairs| {
            crate::carriers::form::first(&pairs, "bodySHA256").map(str::to_ascii_lowercase)
        })
}

/// Verifies a JSON request: the URL's `bodySHA256` must equal the hex SHA-256 of the raw body, and
/// the signature covers the URL alone.
#[must_use]
pub fn verify_json(token: &SecretString, url: &str, body: &[u8], signature: &str) -> bool {
    let Some(claimed) = claimed_body_hash(url) else {
        return false;
    };
    let actual = hex::encode(Sha256::digest(body));
    let body_ok: bool = actual.as_bytes().ct_eq(claimed.as_bytes()).into();
    let signature_ok = verify_form(token, url, &[], signature);
    body_ok & signature_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> SecretString {
        SecretString::from("12345".to_owned())
    }

    /// §12.1: twilio-python `tests/unit/test_request_validator.py`.
    fn vector_params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
    }
    const VECTOR_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    #[test]
    fn published_vector_string_to_sign() {
        assert_eq!(
            string_to_sign(VECTOR_URL, &vector_params()),
            "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675309Digits1234From+14158675309To+18005551212"
        );
    }

    #[test]
    fn published_vector_signature() {
        assert_eq!(
            sign(&token(), VECTOR_URL, &vector_params()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert!(verify_form(
            &token(),
            VECTOR_URL,
            &vector_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn published_vector_rejects_changes() {
        let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        let mut params = vector_params();
        params[1].1 = "1235".to_owned();
        assert!(!verify_form(&token(), VECTOR_URL, &params, good));
        assert!(!verify_form(
            &token(),
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &vector_params(),
            good
        ));
        assert!(!verify_form(
            &SecretString::from("54321".to_owned()),
            VECTOR_URL,
            &vector_params(),
            good
        ));
        assert!(!verify_form(&token(), VECTOR_URL, &vector_params(), ""));
        assert!(!verify_form(
            &token(),
            VECTOR_URL,
            &vector_params(),
            "not base64!"
        ));
        assert!(!verify_form(
            &token(),
            VECTOR_URL,
            &vector_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8"
        ));
    }

    #[test]
    fn port_variants_are_accepted_both_ways() {
        // Signed without a port, received with one (as twilio-python's test_validation_removes_port_on_https).
        assert!(verify_form(
            &token(),
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &vector_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        // Signed with :443 (self-computed with Python hmac), received without it.
        assert!(verify_form(
            &token(),
            VECTOR_URL,
            &vector_params(),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        assert_eq!(
            url_variants("http://h:8080/p?q=1"),
            vec!["http://h:8080/p?q=1", "http://h/p?q=1"]
        );
        assert_eq!(
            url_variants("http://h/p"),
            vec!["http://h/p", "http://h:80/p"]
        );
        assert_eq!(
            url_variants("https://[::1]/p"),
            vec!["https://[::1]/p", "https://[::1]:443/p"]
        );
        assert_eq!(
            url_variants("https://h?x=a:1"),
            vec!["https://h?x=a:1", "https://h:443?x=a:1"]
        );
    }

    #[test]
    fn repeated_parameters_sign_each_distinct_value_sorted() {
        let params: Vec<(String, String)> = [
            ("MediaUrl", "b"),
            ("MediaUrl", "a"),
            ("MediaUrl", "a"),
            ("Body", "x y"),
            ("To", "+15550001111"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
        let url = "https://example.com/webhooks/twilio";
        assert_eq!(
            string_to_sign(url, &params),
            "https://example.com/webhooks/twilioBodyx yMediaUrlaMediaUrlbTo+15550001111"
        );
        // Self-computed with Python hmac over the same algorithm.
        assert!(verify_form(
            &token(),
            url,
            &params,
            "pcCWS/gyZrMlX4HI6lJP7h/3+Zc="
        ));
    }

    #[test]
    fn json_body_with_body_sha256() {
        // twilio-python's JSON-body case: the body hash rides in the URL, the signature covers the URL.
        let body = br#"{"property": "value", "boolean": true}"#;
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert!(verify_json(
            &token(),
            url,
            body,
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        // A forged body under a replayed signature fails on the hash.
        assert!(!verify_json(
            &token(),
            url,
            br#"{"property": "evil", "boolean": true}"#,
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        // No hash in the URL: refused.
        assert!(!verify_json(
            &token(),
            VECTOR_URL,
            body,
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
    }
}
