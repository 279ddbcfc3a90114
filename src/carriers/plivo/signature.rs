//! Plivo's webhook signatures, exactly as Plivo's SDKs compute them (`shared/reference/carriers.md`
//! §6 and §12.2):
//!
//! - **V3** (plivo-python `plivo/utils/signature_v3.py`, plivo-go `utils.go`):
//!   base64(HMAC-SHA256(auth token, *base* + `.` + nonce)), headers `X-Plivo-Signature-V3` (or
//!   `X-Plivo-Signature-Ma-V3`, signed with the main account's token) and
//!   `X-Plivo-Signature-V3-Nonce`. The *base* starts with `scheme://host[:port]/path`:
//!   - GET: `?` and the URL's query parameters sorted by name as `k=v` joined by `&` (a repeated
//!     name contributes each value, sorted), when there are any.
//!   - POST: with form parameters, `?`, then the sorted query as for GET followed by `.` when the
//!     URL has a query, then the form parameters sorted by name as `k` + `v` with no separators
//!     (a repeated name: `k` + each value, values sorted); without form parameters, as GET.
//!
//!   The SDKs differ in one respect: plivo-python reads the URL's query decoded
//!   (`parse_qs`), plivo-go as raw text (`k=v` split on `&` and `=`). Both forms are tried; they
//!   are the same unless a query value has escapes. The header may hold several signatures
//!   separated by commas (one per auth token): any may match.
//! - **V2** (plivo-python `plivo/utils/__init__.py` `validate_signature`, plivo-go
//!   `ComputeSignatureV2`): base64(HMAC-SHA256(auth token, `scheme://host[:port]/path` + nonce)),
//!   headers `X-Plivo-Signature-V2` (or `-Ma-V2`) and `X-Plivo-Signature-V2-Nonce`. It covers
//!   neither the query nor the parameters.
//!
//! Every comparison is `Mac::verify_slice` (constant-time), over every candidate with no early
//! exit.

use crate::carriers::{form, Method};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::collections::BTreeMap;

type HmacSha256 = Hmac<Sha256>;

/// How the URL's own query string is read into the V3 base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryReading {
    /// Decoded, as plivo-python's `parse_qs` does.
    Decoded,
    /// As received, as plivo-go's `getMapFromQueryString` does.
    Raw,
}

impl QueryReading {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Decoded => "query decoded (plivo-python)",
            Self::Raw => "query as received (plivo-go)",
        }
    }
}

/// Name → values, names sorted, each name's values sorted.
fn grouped<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in pairs {
        map.entry(name).or_default().push(value);
    }
    for values in map.values_mut() {
        values.sort_unstable();
    }
    map
}

/// `k=v&k=v2&…`.
fn query_string(map: &BTreeMap<&str, Vec<&str>>) -> String {
    map.iter()
        .flat_map(|(name, values)| values.iter().map(move |value| format!("{name}={value}")))
        .collect::<Vec<_>>()
        .join("&")
}

/// `kvkv2…`.
fn params_string(map: &BTreeMap<&str, Vec<&str>>) -> String {
    map.iter()
        .flat_map(|(name, values)| values.iter().map(move |value| format!("{name}{value}")))
        .collect()
}

/// The URL's query as plivo-go reads it: raw `&`-separated pairs, sorted, those with exactly one
/// `=` kept, a later pair overriding an earlier one of the same name.
fn raw_query(query: &str) -> BTreeMap<&str, Vec<&str>> {
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for pair in pairs {
        let mut parts = pair.split('=');
        if let (Some(name), Some(value), None) = (parts.next(), parts.next(), parts.next()) {
            map.insert(name, vec![value]);
        }
    }
    map
}

/// The V3 base for a request to `url` (`scheme://host[:port]/path?query`) with form parameters
/// `params` (none for GET), or `None` when the query cannot be read that way.
#[must_use]
pub fn v3_base(
    method: Method,
    url: &str,
    params: &[(String, String)],
    reading: QueryReading,
) -> Option<String> {
    let base = url.split(['?', '#']).next().unwrap_or_default();
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or_default())
        .unwrap_or_default();
    let decoded;
    let query_map = match reading {
        QueryReading::Decoded => {
            decoded = form::parse(query.as_bytes()).ok()?;
            grouped(decoded.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        }
        QueryReading::Raw => raw_query(query),
    };
    let sorted_query = query_string(&query_map);
    let mut out = base.to_owned();
    let form_params = match method {
        Method::Get => &[][..],
        Method::Post => params,
    };
    if form_params.is_empty() {
        if !sorted_query.is_empty() {
            out.push('?');
            out.push_str(&sorted_query);
        }
    } else {
        out.push('?');
        if !sorted_query.is_empty() {
            out.push_str(&sorted_query);
            out.push('.');
        }
        out.push_str(&params_string(&grouped(
            form_params.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        )));
    }
    Some(out)
}

/// The V3 bases to try, deduplicated (plivo-python's reading first).
#[must_use]
pub fn v3_bases(
    method: Method,
    url: &str,
    params: &[(String, String)],
) -> Vec<(QueryReading, String)> {
    let mut bases: Vec<(QueryReading, String)> = Vec::new();
    for reading in [QueryReading::Decoded, QueryReading::Raw] {
        if let Some(base) = v3_base(method, url, params, reading) {
            if !bases.iter().any(|(_, b)| *b == base) {
                bases.push((reading, base));
            }
        }
    }
    bases
}

/// What V3 signs: the base, `.`, the nonce.
#[must_use]
pub fn v3_string_to_sign(base: &str, nonce: &str) -> String {
    format!("{base}.{nonce}")
}

/// What V2 signs: the URL without its query, then the nonce.
#[must_use]
pub fn v2_string_to_sign(url: &str, nonce: &str) -> String {
    format!(
        "{}{nonce}",
        url.split(['?', '#']).next().unwrap_or_default()
    )
}

fn mac(token: &SecretString, data: &str) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(token.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data.as_bytes());
    mac
}

/// base64(HMAC-SHA256(token, signed)).
#[must_use]
pub fn sign(token: &SecretString, signed: &str) -> String {
    STANDARD.encode(mac(token, signed).finalize().into_bytes())
}

/// Whether any of the comma-separated signatures in `header` is the signature of `signed`.
/// Every candidate is checked in constant time; there is no early exit.
#[must_use]
pub fn matches(token: &SecretString, signed: &str, header: &str) -> bool {
    let mut valid = false;
    for candidate in header.split(',') {
        if let Ok(expected) = STANDARD.decode(candidate.trim()) {
            valid |= mac(token, signed).verify_slice(&expected).is_ok();
        }
    }
    valid
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn token(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    /// The V3 vectors: plivo-go `utils_test.go` `TestValidateSignatureV3Pass1..4` (§12.2 quotes
    /// the first).
    mod published_v3 {
        use super::*;

        const TOKEN: &str = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4";
        const NONCE: &str = "31627761595286130198";
        const WITH_QUERY: &str =
            "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml/?a=b&c=d";
        const WITHOUT_QUERY: &str =
            "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml";
        const UUID: &str = "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36";

        fn params() -> Vec<(String, String)> {
            pairs(&[
                ("Direction", "outbound"),
                ("From", "19792014278"),
                ("ALegUUID", UUID),
                ("CallStatus", "in-progress"),
                ("BillRate", "0.002"),
                ("ParentAuthID", "MANWVLYTK4ZWU1YTY4QA"),
                (
                    "To",
                    "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com",
                ),
                ("ALegRequestUUID", UUID),
                ("CallUUID", UUID),
                ("RequestUUID", UUID),
                (
                    "SIP-H-To",
                    "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1",
                ),
                ("SessionStart", "2020-04-08 11:34:33.238707"),
                ("Event", "StartApp"),
            ])
        }

        /// A GET carries its parameters in the URL: the vector's parameters appended to it,
        /// encoded as a carrier would send them.
        fn get_url(url: &str) -> String {
            let params = params();
            let encoded = form::encode(
                &params
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            );
            let joiner = if url.contains('?') { '&' } else { '?' };
            format!("{url}{joiner}{encoded}")
        }

        fn check(method: Method, url: &str, params: &[(String, String)], signature: &str) {
            let bases = v3_bases(method, url, params);
            let valid = bases
                .iter()
                .any(|(_, b)| matches(&token(TOKEN), &v3_string_to_sign(b, NONCE), signature));
            assert!(valid, "{method:?} {url}: {bases:?}");
            // One byte changed in the signature, the token, a parameter or the nonce.
            let mut altered = signature.to_owned();
            altered.replace_range(..1, if signature.starts_with('A') { "B" } else { "A" });
            for (tok, sig, nonce) in [
                (TOKEN, altered.as_str(), NONCE),
                ("Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc5", signature, NONCE),
                (TOKEN, signature, "31627761595286130199"),
            ] {
                assert!(!bases.iter().any(|(_, b)| matches(
                    &token(tok),
                    &v3_string_to_sign(b, nonce),
                    sig
                )));
            }
        }

        #[test]
        fn pass1_post_with_query() {
            check(
                Method::Post,
                WITH_QUERY,
                &params(),
                "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c=",
            );
            assert_eq!(
                v3_base(Method::Post, WITH_QUERY, &params(), QueryReading::Decoded).unwrap_or_default(),
                "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml/?a=b&c=d.\
                 ALegRequestUUID3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36ALegUUID3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36\
                 BillRate0.002CallStatusin-progressCallUUID3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36DirectionoutboundEventStartApp\
                 From19792014278ParentAuthIDMANWVLYTK4ZWU1YTY4QARequestUUID3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36\
                 SIP-H-To<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1\
                 SessionStart2020-04-08 11:34:33.238707Tosip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com"
            );
            let mut tampered = params();
            tampered[1].1 = "19792014279".to_owned();
            assert!(!v3_bases(Method::Post, WITH_QUERY, &tampered)
                .iter()
                .any(|(_, b)| matches(
                    &token(TOKEN),
                    &v3_string_to_sign(b, NONCE),
                    "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c="
                )));
        }

        #[test]
        fn pass2_get_with_query() {
            check(
                Method::Get,
                &get_url(WITH_QUERY),
                &[],
                "UBq8jAtd32wR8EK9VgxbBn4n5rpI/l1H9iN4WfSEHFQ=",
            );
        }

        #[test]
        fn pass3_post_without_query() {
            check(
                Method::Post,
                WITHOUT_QUERY,
                &params(),
                "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0=",
            );
        }

        #[test]
        fn pass4_get_without_query() {
            check(
                Method::Get,
                &get_url(WITHOUT_QUERY),
                &[],
                "i/MQsaQSAd6fiKhOh2qeeeLHZ9faldADSb3/7+Akfbc=",
            );
        }
    }

    /// §12.2 V2: plivo-python `tests/resources/test_signature.py`, plivo-node.
    #[test]
    fn published_v2() {
        let tok = token("my_auth_token");
        let signed = v2_string_to_sign("https://answer.url", "12345");
        assert_eq!(signed, "https://answer.url12345");
        assert!(matches(
            &tok,
            &signed,
            "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
        ));
        assert!(!matches(
            &tok,
            &signed,
            "fhV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
        ));
        assert!(!matches(
            &token("my_auth_tokens"),
            &signed,
            "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
        ));
        // The port is signed; the query is not.
        let signed = v2_string_to_sign("https://answer.url:8000?x=1", "24725744043720739450");
        assert_eq!(signed, "https://answer.url:800024725744043720739450");
        assert!(matches(
            &tok,
            &signed,
            "LDphWoWimP4QM5AoWI1uwP6WmlWtt5ITPZjXIWYvCNU="
        ));
        assert!(!matches(
            &tok,
            &v2_string_to_sign("https://answer.url", "24725744043720739450"),
            "LDphWoWimP4QM5AoWI1uwP6WmlWtt5ITPZjXIWYvCNU="
        ));
    }

    // Own vectors below: computed with a Python 3 transcription of plivo-python's
    // `signature_v3.py` (`construct_get_url`/`construct_post_url`/`get_signature_v3`, which
    // reproduces the four published vectors above) and, for the raw reading, of plivo-go's
    // `GenerateUrl`: `base64.b64encode(hmac.new(token, (base + '.' + nonce).encode(),
    // hashlib.sha256).digest())`.
    const OWN_TOKEN: &str = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4";
    const OWN_NONCE: &str = "05429567804466091622";

    fn own(method: Method, url: &str, params: &[(String, String)]) -> Vec<(QueryReading, String)> {
        v3_bases(method, url, params)
    }

    fn verifies(bases: &[(QueryReading, String)], signature: &str) -> Option<QueryReading> {
        bases
            .iter()
            .find(|(_, b)| {
                matches(
                    &token(OWN_TOKEN),
                    &v3_string_to_sign(b, OWN_NONCE),
                    signature,
                )
            })
            .map(|(r, _)| *r)
    }

    #[test]
    fn get_inbound_message_both_readings() {
        let url = "https://sms.example.com/webhooks/plivo?From=15551234567&To=15550001111&Type=sms&Text=Hello+there%21&MessageUUID=7a242edc-2f57-11e7-98c9-06ab0bf64327";
        let bases = own(Method::Get, url, &[]);
        assert_eq!(
            bases,
            [
                (
                    QueryReading::Decoded,
                    "https://sms.example.com/webhooks/plivo?From=15551234567&MessageUUID=7a242edc-2f57-11e7-98c9-06ab0bf64327&Text=Hello there!&To=15550001111&Type=sms".to_owned()
                ),
                (
                    QueryReading::Raw,
                    "https://sms.example.com/webhooks/plivo?From=15551234567&MessageUUID=7a242edc-2f57-11e7-98c9-06ab0bf64327&Text=Hello+there%21&To=15550001111&Type=sms".to_owned()
                ),
            ]
        );
        assert_eq!(
            verifies(&bases, "JhGUcCH8fd8RHMDdssYEprcH/CHDb9XZG+TQYoIFYeg="),
            Some(QueryReading::Decoded)
        );
        assert_eq!(
            verifies(&bases, "DKB4j1xQVblVdbeAU+JxC+nBLjqub3DcnspkLJK/h5M="),
            Some(QueryReading::Raw)
        );
        // A GET's form parameters are its query: anything passed as a body is ignored.
        assert_eq!(own(Method::Get, url, &pairs(&[("Extra", "1")])), bases);
    }

    #[test]
    fn post_signs_the_port_and_decoded_parameters() {
        let params = pairs(&[
            ("From", "15551234567"),
            ("To", "15550001111"),
            ("Type", "sms"),
            ("Text", "Café & more"),
            ("MessageUUID", "7a242edc-2f57-11e7-98c9-06ab0bf64327"),
        ]);
        let bases = own(
            Method::Post,
            "https://sms.example.com:8443/webhooks/plivo",
            &params,
        );
        assert_eq!(bases.len(), 1);
        assert_eq!(
            bases[0].1,
            "https://sms.example.com:8443/webhooks/plivo?From15551234567MessageUUID7a242edc-2f57-11e7-98c9-06ab0bf64327TextCafé & moreTo15550001111Typesms"
        );
        assert!(verifies(&bases, "UFKkziL4QZhBB15gXDgEZKtdKo3ypSfYhI6tRVMf4HA=").is_some());
        let without_port = own(
            Method::Post,
            "https://sms.example.com/webhooks/plivo",
            &params,
        );
        assert!(verifies(
            &without_port,
            "UFKkziL4QZhBB15gXDgEZKtdKo3ypSfYhI6tRVMf4HA="
        )
        .is_none());
        // V2 of the same URL (the query is not signed).
        assert!(matches(
            &token(OWN_TOKEN),
            &v2_string_to_sign("https://sms.example.com:8443/webhooks/plivo?x=1", OWN_NONCE),
            "KEbIoFCBrN7M2Y2gp/KgPotQrfvnU1jyQ3imyIC9iRY="
        ));
    }

    #[test]
    fn repeated_names_and_empty_values() {
        let params = pairs(&[("x", "2"), ("Text", "hi"), ("x", "1"), ("Empty", "")]);
        let bases = own(
            Method::Post,
            "https://sms.example.com/webhooks/plivo?tenant=acme&a=2&a=1",
            &params,
        );
        assert_eq!(
            bases[0].1,
            "https://sms.example.com/webhooks/plivo?a=1&a=2&tenant=acme.EmptyTexthix1x2"
        );
        assert!(verifies(&bases, "JFMAn5V4f8LvWBQ5GCqX3Exo2/AbyLyG2Nu5KCjp33A=").is_some());
        let get = own(
            Method::Get,
            "https://sms.example.com/webhooks/plivo?b=2&a=1&a=0",
            &[],
        );
        assert_eq!(
            get[0].1,
            "https://sms.example.com/webhooks/plivo?a=0&a=1&b=2"
        );
        assert!(verifies(&get, "je88KOjjugMDvYnYFFbF5/MVC+hynzwOLxcCXNYeBdM=").is_some());
    }

    #[test]
    fn posts_without_parameters() {
        let bare = own(
            Method::Post,
            "https://sms.example.com/webhooks/plivo/status",
            &[],
        );
        assert_eq!(bare[0].1, "https://sms.example.com/webhooks/plivo/status");
        assert!(verifies(&bare, "YLxhTQSiPJ6QK12pSflaw71Kusvvf3TljI/bN2EaZak=").is_some());
        let query = own(
            Method::Post,
            "https://sms.example.com/webhooks/plivo/status?k=v",
            &[],
        );
        assert_eq!(
            query[0].1,
            "https://sms.example.com/webhooks/plivo/status?k=v"
        );
        assert!(verifies(&query, "65th/Nz8WZo5vkKUFfN+5SZ/tEVArgssc0VtUs6EwuE=").is_some());
    }

    #[test]
    fn several_signatures_in_one_header() {
        let tok = token("my_auth_token");
        let signed = v2_string_to_sign("https://answer.url", "12345");
        assert!(matches(
            &tok,
            &signed,
            "bm90IGl0=, ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
        ));
        assert!(matches(
            &tok,
            &signed,
            "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc=,garbage!"
        ));
        assert!(!matches(&tok, &signed, "bm90IGl0,,"));
        assert!(!matches(&tok, &signed, ""));
    }

    #[test]
    fn raw_reading_follows_plivo_go() {
        // Pairs without exactly one `=` are dropped; a later sorted pair wins.
        let map = raw_query("b=2&a&c=1=2&b=1&d=");
        assert_eq!(query_string(&map), "b=2&d=");
        // An undecodable query has no decoded reading, only the raw one.
        let bases = v3_bases(Method::Get, "https://x.example/p?a=%zz", &[]);
        assert_eq!(
            bases,
            [(QueryReading::Raw, "https://x.example/p?a=%zz".to_owned())]
        );
    }
}
