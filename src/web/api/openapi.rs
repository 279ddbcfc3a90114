//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document describing every route of the API
//! (`openapi.json` beside this file, embedded at build time). It needs no token. A test checks
//! that its paths and methods are exactly [`super::routes::ROUTES`].

use actix_web::http::header;
use actix_web::HttpResponse;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// Serves [`DOCUMENT`].
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(DOCUMENT)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::DOCUMENT;
    use std::collections::BTreeSet;

    #[test]
    fn the_document_describes_exactly_the_registered_routes() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    documented.insert((method.clone(), format!("/api/v1{path}")));
                }
            }
        }
        let registered: BTreeSet<(String, String)> = super::super::routes::ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(documented, registered);
    }
}
