//! Operations endpoints: liveness, readiness, metrics.

use super::AppState;
use actix_web::{web, HttpResponse};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

/// 200 while the process serves HTTP.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 when the database answers and the keys are loaded; 503 otherwise, with which check failed.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    // The vault is built from the master key before the server starts, so keys are loaded when
    // the state exists; the key check against the database ran at start-up.
    let database = match state.db.ping().await {
        Ok(()) => "ok",
        Err(error) => {
            tracing::warn!(error = %error, "readiness: database check failed");
            "unavailable"
        }
    };
    let body = serde_json::json!({ "status": if database == "ok" { "ready" } else { "not_ready" }, "database": database, "keys": "loaded" });
    if database == "ok" {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}
