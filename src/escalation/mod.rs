//! Raising the drawbridge: secure links that move a conversation off SMS.
//!
//! [`links`] mints and sends a link. The verification page, one-time codes and customer sessions
//! behind `/s/{token}` are the secure page's (issue #7).

pub mod links;
