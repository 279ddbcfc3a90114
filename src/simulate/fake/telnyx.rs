//! PLACEHOLDER — the fake telnyx API is being built with the telnyx carrier module (issue #4).

use actix_web::web;

/// Registers this carrier's routes.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
