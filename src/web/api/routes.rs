//! The API's routes (see [`super`]).

use actix_web::web;

pub fn configure(_cfg: &mut web::ServiceConfig) {}
