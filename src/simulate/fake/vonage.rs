//! PLACEHOLDER — the fake vonage API is being built with the vonage carrier module (issue #4).

use actix_web::web;

/// Registers this carrier's routes.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
