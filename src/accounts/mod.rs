//! Staff accounts: users, passwords, one-time codes and single sign-on. The HTTP side (sign-in
//! pages, sessions, CSRF) is in `crate::web::console`; the queries in `crate::store::users` and
//! `crate::store::sessions`.

pub mod oidc;
pub mod password;
pub mod totp;

use crate::store::tokens::Role;

/// Who is asking: a signed-in console user or an API token, with its role. Every operation on
/// conversations takes one and checks it (see `crate::inbox`), so no route can forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// The user's or the token's id.
    pub id: String,
    pub role: Role,
}

/// What kind of principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    User,
    ApiToken,
}

impl Principal {
    /// A console user.
    #[must_use]
    pub fn user(id: &str, role: Role) -> Self {
        Self {
            kind: PrincipalKind::User,
            id: id.to_owned(),
            role,
        }
    }

    /// An API token.
    #[must_use]
    pub fn token(id: &str, role: Role) -> Self {
        Self {
            kind: PrincipalKind::ApiToken,
            id: id.to_owned(),
            role,
        }
    }

    /// The audit trail's actor.
    #[must_use]
    pub fn actor(&self) -> crate::audit::Actor<'_> {
        match self.kind {
            PrincipalKind::User => crate::audit::Actor::User(&self.id),
            PrincipalKind::ApiToken => crate::audit::Actor::ApiToken(&self.id),
        }
    }

    /// `user:<id>` or `api_token:<id>`: how records outside the audit trail name who acted.
    #[must_use]
    pub fn actor_string(&self) -> String {
        match self.kind {
            PrincipalKind::User => format!("user:{}", self.id),
            PrincipalKind::ApiToken => format!("api_token:{}", self.id),
        }
    }

    /// The user id, for a console user.
    #[must_use]
    pub fn user_id(&self) -> Option<&str> {
        (self.kind == PrincipalKind::User).then_some(self.id.as_str())
    }
}
