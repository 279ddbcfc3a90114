//! `/healthz`, `/readyz`, `/metrics`, request ids.

use crate::both_backends;
use crate::helpers::*;

both_backends!(operations_endpoints);

async fn operations_endpoints(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let id_a = health.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_ne!(
        ready.headers()["x-request-id"].to_str().unwrap(),
        id_a,
        "request ids are unique"
    );
    let body: serde_json::Value = serde_json::from_str(&ready.text().await.unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "status": "ready", "database": "ok", "keys": "loaded" })
    );
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = metrics.text().await.unwrap();
    for family in [
        "drawbridge_webhooks_received",
        "drawbridge_webhooks_rejected",
        "drawbridge_messages_stored",
        "drawbridge_redactions",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} counter")),
            "{family} missing from\n{text}"
        );
    }
    assert_eq!(app.get("/nowhere").await.status(), 404);
}
