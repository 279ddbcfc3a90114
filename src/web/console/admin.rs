//! Administration: console users and API tokens (admins only).
//!
//! | route | what |
//! |---|---|
//! | `GET /console/admin/users` | users: e-mail, role, two-factor state, single sign-on, disabled; a form to add one |
//! | `POST /console/admin/users` | add a user (a generated one-time password, shown once, to be changed at first sign-in) |
//! | `POST /console/admin/users/{id}` | `action` = `role` (with `role`), `disable`, `enable`, `require_totp`, `unrequire_totp`, `reset_totp`, `reset_password` |
//! | `GET /console/admin/tokens` | API tokens: name, role, created, revoked |
//! | `POST /console/admin/tokens` | create a token (shown once) |
//! | `POST /console/admin/tokens/{id}/revoke` | revoke a token |
//!
//! Every change is audited by user or token id. Disabling a user ends their sessions, as does a
//! password reset. The last enabled admin can be neither disabled nor given another role.

use super::auth::{hash_password, page_with, record};
use super::{csrf_field, html_response, page, see_other, ConsoleError, Staff};
use crate::accounts::password;
use crate::audit::Event;
use crate::store::sessions;
use crate::store::tokens::{self, Role};
use crate::store::users::{self, NewUser, User};
use crate::web::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use secrecy::{ExposeSecret, SecretString};

const ROLES: [Role; 4] = [Role::Agent, Role::Supervisor, Role::Compliance, Role::Admin];

/// Registers the admin routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console/admin/users", web::get().to(users_page))
        .route("/console/admin/users", web::post().to(add_user))
        .route("/console/admin/users/{id}", web::post().to(change_user))
        .route("/console/admin/tokens", web::get().to(tokens_page))
        .route("/console/admin/tokens", web::post().to(create_token))
        .route(
            "/console/admin/tokens/{id}/revoke",
            web::post().to(revoke_token),
        );
}

fn admin(staff: &Staff, what: &str) -> Result<(), ConsoleError> {
    staff.require(&[Role::Admin], what)
}

fn role_label(role: Role) -> &'static str {
    match role {
        Role::Agent => "Agent",
        Role::Supervisor => "Supervisor",
        Role::Compliance => "Compliance",
        Role::Admin => "Admin",
    }
}

fn role_select(id: &str, name: &str, selected: Option<Role>) -> Markup {
    html! {
        select id=(id) name=(name) {
            @for role in ROLES {
                option value=(role.as_str()) selected[Some(role) == selected] { (role_label(role)) }
            }
        }
    }
}

fn two_factor_state(user: &User) -> &'static str {
    match (user.totp_enrolled, user.totp_required) {
        (true, true) => "On (required)",
        (true, false) => "On",
        (false, true) => "Required, not set up",
        (false, false) => "Off",
    }
}

/// A one-button form posting `action` for `user`.
fn action_button(staff: &Staff, user: &User, action: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/console/admin/users/" (user.id) } {
            (csrf_field(&staff.csrf))
            input type="hidden" name="action" value=(action);
            button type="submit" aria-label={ (label) " for " (user.email) } { (label) }
        }
    }
}

fn users_markup(staff: &Staff, list: &[User], shown_once: Option<(&str, &str, &str)>) -> Markup {
    let body = html! {
        h1 { "Users" }
        @if let Some((heading, email, secret)) = shown_once {
            div.notice role="status" {
                p { (heading) " for " strong { (email) } ":" }
                p { code #one-time-password { (secret) } }
                p { "It is shown only this once. Give it to the user privately; they must change it when they first sign in." }
            }
        }
        div.table-wrap {
            table.table #users {
                caption { "Console users" }
                thead {
                    tr {
                        th scope="col" { "E-mail" }
                        th scope="col" { "Role" }
                        th scope="col" { "Two-factor" }
                        th scope="col" { "Single sign-on" }
                        th scope="col" { "Status" }
                        th scope="col" { "Actions" }
                    }
                }
                tbody {
                    @for user in list {
                        tr data-user-id=(user.id) {
                            td { (user.email) }
                            td { (role_label(user.role)) }
                            td { (two_factor_state(user)) }
                            td { @if user.sso_linked { "Linked" } @else { "—" } }
                            td { @if user.disabled { "Disabled" } @else { "Active" } }
                            td.actions {
                                form.inline method="post" action={ "/console/admin/users/" (user.id) } {
                                    (csrf_field(&staff.csrf))
                                    input type="hidden" name="action" value="role";
                                    label for={ "role-" (user.id) } { "Role for " (user.email) }
                                    (role_select(&format!("role-{}", user.id), "role", Some(user.role)))
                                    button type="submit" { "Change role" }
                                }
                                @if user.disabled {
                                    (action_button(staff, user, "enable", "Enable"))
                                } @else {
                                    (action_button(staff, user, "disable", "Disable"))
                                }
                                @if user.totp_required {
                                    (action_button(staff, user, "unrequire_totp", "Stop requiring two-factor"))
                                } @else {
                                    (action_button(staff, user, "require_totp", "Require two-factor"))
                                }
                                @if user.totp_enrolled {
                                    (action_button(staff, user, "reset_totp", "Reset two-factor"))
                                }
                                @if user.password_hash.is_some() {
                                    (action_button(staff, user, "reset_password", "Reset password"))
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add a user" }
        form #add-user .form method="post" action="/console/admin/users" {
            (csrf_field(&staff.csrf))
            div.field {
                label for="new-email" { "E-mail address" }
                input #new-email type="email" name="email" required autocomplete="off";
            }
            div.field {
                label for="new-role" { "Role" }
                (role_select("new-role", "role", Some(Role::Agent)))
            }
            button #add-user-submit type="submit" { "Add user" }
        }
        p { "A one-time password is generated and shown once; the user changes it at first sign-in." }
    };
    page(staff, "Users", &body)
}

async fn all_users(state: &AppState) -> Result<Vec<User>, ConsoleError> {
    let mut conn = state.db.pool().acquire().await?;
    Ok(users::list(&mut conn, &state.vault).await?)
}

async fn users_page(
    state: web::Data<AppState>,
    staff: Staff,
) -> Result<HttpResponse, ConsoleError> {
    admin(&staff, "manage users")?;
    let list = all_users(&state).await?;
    Ok(html_response(&users_markup(&staff, &list, None)))
}

/// `POST /console/admin/users`.
#[derive(Debug, serde::Deserialize)]
pub struct AddUserForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    csrf_token: String,
}

/// Whether `email` looks like an address (the identity provider or the user proves the rest).
fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn parse_role(text: &str) -> Result<Role, ConsoleError> {
    Role::parse(text).ok_or_else(|| {
        ConsoleError::Refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose a role: agent, supervisor, compliance or admin.".to_owned(),
        )
    })
}

async fn add_user(
    state: web::Data<AppState>,
    staff: Staff,
    form: web::Form<AddUserForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin(&staff, "manage users")?;
    staff.check_csrf(&state, &form.csrf_token)?;
    let email = form.email.trim().to_lowercase();
    if !plausible_email(&email) {
        return Err(ConsoleError::Refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter an e-mail address such as name@example.com.".to_owned(),
        ));
    }
    let role = parse_role(&form.role)?;
    let generated = password::generate();
    let hash = hash_password(generated.clone()).await?;
    let at = state.clock.timestamp();
    let mut tx = state.db.pool().begin().await?;
    let created = users::create(
        &mut tx,
        &state.vault,
        &NewUser {
            email: &email,
            role,
            password_hash: Some(&hash),
            must_change_password: true,
        },
        &at,
    )
    .await?;
    let Some(id) = created else {
        tx.rollback().await.ok();
        return Err(ConsoleError::Refused(
            StatusCode::CONFLICT,
            "That e-mail address already has an account.".to_owned(),
        ));
    };
    record(
        &mut tx,
        &state,
        &Event::new(staff.principal().actor(), "user.create")
            .subject("user", &id)
            .detail("role", role.as_str()),
    )
    .await?;
    tx.commit().await?;
    let list = all_users(&state).await?;
    Ok(page_with(
        StatusCode::OK,
        &users_markup(
            &staff,
            &list,
            Some(("One-time password", &email, generated.expose_secret())),
        ),
    ))
}

/// `POST /console/admin/users/{id}`.
#[derive(Debug, serde::Deserialize)]
pub struct ChangeUserForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    csrf_token: String,
}

fn last_admin() -> ConsoleError {
    ConsoleError::Refused(
        StatusCode::CONFLICT,
        "This is the last enabled admin: add or enable another admin first.".to_owned(),
    )
}

async fn change_user(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
    form: web::Form<ChangeUserForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin(&staff, "manage users")?;
    staff.check_csrf(&state, &form.csrf_token)?;
    let id = path.into_inner();
    let target = {
        let mut conn = state.db.pool().acquire().await?;
        users::get(&mut conn, &state.vault, &id).await?
    }
    .ok_or(ConsoleError::NotFound("user"))?;
    let principal = staff.principal();
    let actor = principal.actor();
    let at = state.clock.timestamp();
    let was_active_admin = target.role == Role::Admin && !target.disabled;
    let mut shown_once: Option<SecretString> = None;
    let mut tx = state.db.pool().begin().await?;
    match form.action.as_str() {
        "role" => {
            let role = parse_role(&form.role)?;
            users::set_role(&mut tx, &id, role, &at).await?;
            if was_active_admin
                && role != Role::Admin
                && users::other_active_admins(&mut tx, &id).await? == 0
            {
                tx.rollback().await.ok();
                return Err(last_admin());
            }
            record(
                &mut tx,
                &state,
                &Event::new(actor, "user.role")
                    .subject("user", &id)
                    .detail("from", target.role.as_str())
                    .detail("to", role.as_str()),
            )
            .await?;
        }
        "disable" => {
            users::set_disabled(&mut tx, &id, true, &at).await?;
            if was_active_admin && users::other_active_admins(&mut tx, &id).await? == 0 {
                tx.rollback().await.ok();
                return Err(last_admin());
            }
            let ended = sessions::delete_for_user(&mut tx, &id, None).await?;
            record(
                &mut tx,
                &state,
                &Event::new(actor, "user.disable")
                    .subject("user", &id)
                    .detail("sessions_ended", ended),
            )
            .await?;
        }
        "enable" => {
            users::set_disabled(&mut tx, &id, false, &at).await?;
            record(
                &mut tx,
                &state,
                &Event::new(actor, "user.enable").subject("user", &id),
            )
            .await?;
        }
        "require_totp" | "unrequire_totp" => {
            let required = form.action == "require_totp";
            users::set_totp_required(&mut tx, &id, required, &at).await?;
            record(
                &mut tx,
                &state,
                &Event::new(actor, "user.totp_require")
                    .subject("user", &id)
                    .detail("required", required),
            )
            .await?;
        }
        "reset_totp" => {
            users::clear_totp(&mut tx, &id, &at).await?;
            record(
                &mut tx,
                &state,
                &Event::new(actor, "user.totp_reset").subject("user", &id),
            )
            .await?;
        }
        "reset_password" => {
            if target.password_hash.is_none() {
                tx.rollback().await.ok();
                return Err(ConsoleError::Refused(
                    StatusCode::CONFLICT,
                    "This user signs in with single sign-on; their password is managed by the identity provider.".to_owned(),
                ));
            }
            let generated = password::generate();
            let hash = hash_password(generated.clone()).await?;
            users::set_password(&mut tx, &id, &hash, true, &at).await?;
            let ended = sessions::delete_for_user(&mut tx, &id, None).await?;
            record(
                &mut tx,
                &state,
                &Event::new(actor, "user.password_reset")
                    .subject("user", &id)
                    .detail("sessions_ended", ended),
            )
            .await?;
            shown_once = Some(generated);
        }
        _ => {
            tx.rollback().await.ok();
            return Err(ConsoleError::Refused(
                StatusCode::BAD_REQUEST,
                "Unknown action.".to_owned(),
            ));
        }
    }
    tx.commit().await?;
    match shown_once {
        Some(secret) => {
            let list = all_users(&state).await?;
            Ok(page_with(
                StatusCode::OK,
                &users_markup(
                    &staff,
                    &list,
                    Some((
                        "New one-time password",
                        &target.email,
                        secret.expose_secret(),
                    )),
                ),
            ))
        }
        None => Ok(see_other("/console/admin/users")),
    }
}

fn tokens_markup(
    staff: &Staff,
    list: &[tokens::TokenRecord],
    shown_once: Option<(&str, &str)>,
) -> Markup {
    let body = html! {
        h1 { "API tokens" }
        @if let Some((name, token)) = shown_once {
            div.notice role="status" {
                p { "The new token " strong { (name) } ":" }
                p { code #new-token { (token) } }
                p { "It is shown only this once; only its hash is stored. Keep it like a password." }
            }
        }
        div.table-wrap {
            table.table #tokens {
                caption { "API tokens" }
                thead {
                    tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Role" }
                        th scope="col" { "Created" }
                        th scope="col" { "Revoked" }
                        th scope="col" { "Actions" }
                    }
                }
                tbody {
                    @for token in list {
                        tr data-token-id=(token.id) {
                            td { (token.name) }
                            td { (role_label(token.role)) }
                            td { time datetime=(token.created_at) { (token.created_at.get(..16).unwrap_or(&token.created_at).replace('T', " ")) } }
                            td {
                                @if let Some(revoked) = &token.revoked_at {
                                    time datetime=(revoked) { (revoked.get(..16).unwrap_or(revoked).replace('T', " ")) }
                                } @else { "—" }
                            }
                            td {
                                @if token.revoked_at.is_none() {
                                    form.inline method="post" action={ "/console/admin/tokens/" (token.id) "/revoke" } {
                                        (csrf_field(&staff.csrf))
                                        button type="submit" aria-label={ "Revoke " (token.name) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Create a token" }
        form #create-token .form method="post" action="/console/admin/tokens" {
            (csrf_field(&staff.csrf))
            div.field {
                label for="token-name" { "Name (what it is for, e.g. crm)" }
                input #token-name type="text" name="name" required maxlength="64" pattern="[A-Za-z0-9._-]+" autocomplete="off";
            }
            div.field {
                label for="token-role" { "Role" }
                (role_select("token-role", "role", Some(Role::Agent)))
            }
            button #create-token-submit type="submit" { "Create token" }
        }
    };
    page(staff, "API tokens", &body)
}

async fn all_tokens(state: &AppState) -> Result<Vec<tokens::TokenRecord>, ConsoleError> {
    let mut conn = state.db.pool().acquire().await?;
    Ok(tokens::list(&mut conn).await?)
}

async fn tokens_page(
    state: web::Data<AppState>,
    staff: Staff,
) -> Result<HttpResponse, ConsoleError> {
    admin(&staff, "manage API tokens")?;
    let list = all_tokens(&state).await?;
    Ok(html_response(&tokens_markup(&staff, &list, None)))
}

/// `POST /console/admin/tokens`.
#[derive(Debug, serde::Deserialize)]
pub struct CreateTokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    csrf_token: String,
}

async fn create_token(
    state: web::Data<AppState>,
    staff: Staff,
    form: web::Form<CreateTokenForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin(&staff, "manage API tokens")?;
    staff.check_csrf(&state, &form.csrf_token)?;
    let role = parse_role(&form.role)?;
    let name = form.name.trim();
    let principal = staff.principal();
    let well_formed = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let probe = Event::new(principal.actor(), "token.create")
        .subject("api_token", "probe")
        .detail("name", name);
    if !well_formed || probe.validate().is_err() {
        return Err(ConsoleError::Refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "A token's name is 1 to 64 letters, digits, '-', '_' or '.', without long numbers."
                .to_owned(),
        ));
    }
    let at = state.clock.timestamp();
    let mut tx = state.db.pool().begin().await?;
    let (id, token) = tokens::create(&mut tx, name, role, &at).await?;
    record(
        &mut tx,
        &state,
        &Event::new(principal.actor(), "token.create")
            .subject("api_token", &id)
            .detail("role", role.as_str())
            .detail("name", name),
    )
    .await?;
    tx.commit().await?;
    let list = all_tokens(&state).await?;
    Ok(page_with(
        StatusCode::OK,
        &tokens_markup(&staff, &list, Some((name, token.as_str()))),
    ))
}

/// A form with only its CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf_token: String,
}

async fn revoke_token(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, ConsoleError> {
    admin(&staff, "manage API tokens")?;
    staff.check_csrf(&state, &form.csrf_token)?;
    let id = path.into_inner();
    let principal = staff.principal();
    let mut tx = state.db.pool().begin().await?;
    if !tokens::revoke(&mut tx, &id, &state.clock.timestamp()).await? {
        tx.rollback().await.ok();
        return Err(ConsoleError::NotFound("token"));
    }
    record(
        &mut tx,
        &state,
        &Event::new(principal.actor(), "token.revoke").subject("api_token", &id),
    )
    .await?;
    tx.commit().await?;
    Ok(see_other("/console/admin/tokens"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(plausible_email("ana@example.com"));
        assert!(!plausible_email("ana"));
        assert!(!plausible_email("@example.com"));
        assert!(!plausible_email("ana@localhost"));
        assert!(!plausible_email("ana @example.com"));
        assert!(!plausible_email("a@b@example.com"));
    }
}
