//! Personal API tokens: `POST /tokens` (the secret is in this one response only), `GET /tokens`,
//! `DELETE /tokens/{id}`. Managed from a browser session only: a token cannot mint or revoke tokens.

use crate::auth::{self, CurrentUser, Scope, Scopes};
use crate::error::{ApiError, ApiResult};
use crate::extract::Input;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use pulseboard_domain::{FieldError, Role, Timestamp};
use pulseboard_storage::tokens::{self, ApiToken};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest allowed lifetime; a longer one is almost certainly a typo (days for hours…).
pub const MAX_EXPIRES_IN_DAYS: i64 = 3650;
const MAX_NAME_CHARS: usize = 100;
/// Tokens one user may hold at once; enough for every script, small enough to list on one page.
pub const MAX_TOKENS_PER_USER: i64 = 100;

/// A token as listed: never its secret.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ApiToken)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<&'static str>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            scopes: Scopes::from_db(&t.scopes).names(),
            created_at: Timestamp::rfc3339(t.created_at),
            expires_at: t.expires_at.map(Timestamp::rfc3339),
            last_used_at: t.last_used_at.map(Timestamp::rfc3339),
        }
    }
}

/// The answer to `POST /tokens`: the only time the secret is shown.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CreatedApiToken)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub view: TokenView,
    pub token: String,
}

/// `scopes` and `expires_in_days` are taken as raw JSON so that a value of the wrong type is
/// refused naming its field, as a wrong value is.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    #[schema(value_type = Vec<String>, example = json!(["tasks:read"]))]
    scopes: Value,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    expires_in_days: Option<Value>,
}

fn parse_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldError::new("name", "Name the token (what will use it)"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(FieldError::new(
            "name",
            format!("The name is too long: at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "The name must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

fn parse_scopes(raw: &Value, role: Role) -> Result<Scopes, FieldError> {
    let known = || {
        Scope::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(items) = raw.as_array() else {
        return Err(FieldError::new(
            "scopes",
            format!("scopes must be a list of scope names ({})", known()),
        ));
    };
    let mut scopes = Scopes::default();
    for item in items {
        let scope = item.as_str().and_then(Scope::parse).ok_or_else(|| {
            FieldError::new(
                "scopes",
                format!("Unknown scope {item}: use one of {}", known()),
            )
        })?;
        scopes = scopes.with(scope);
    }
    if scopes.is_empty() {
        return Err(FieldError::new(
            "scopes",
            "Choose at least one scope: a token without scopes can do nothing",
        ));
    }
    if scopes.contains(Scope::Admin) && role != Role::Admin {
        return Err(FieldError::new(
            "scopes",
            "The admin scope is for administrators only",
        ));
    }
    Ok(scopes)
}

fn parse_expiry(raw: Option<&Value>) -> Result<Option<i64>, FieldError> {
    let days = match raw {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v.as_i64(),
    };
    match days {
        Some(d) if (1..=MAX_EXPIRES_IN_DAYS).contains(&d) => Ok(Some(d)),
        _ => Err(FieldError::new(
            "expires_in_days",
            format!(
                "expires_in_days must be a whole number of days from 1 to {MAX_EXPIRES_IN_DAYS}, \
                 or left out for a token that does not expire"
            ),
        )),
    }
}

/// `POST /tokens {name, scopes, expires_in_days?}` → 201 with the secret, shown this once.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    request_body(description = "name, scopes (a list of scope names) and, optionally, expires_in_days", content((NewToken = "application/json"), (NewToken = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "created; the secret `token` is shown this once", body = CreatedToken),
        (status = 403, description = "an API token (this needs a signed-in session), or a cross-site request", body = crate::openapi::ErrorBody),
        (status = 409, description = "the user already holds the most tokens allowed", body = crate::openapi::ErrorBody)
    )
)]
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Input(body): Input<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    user.require_session()?;
    let name = parse_name(&body.name)?;
    let scopes = parse_scopes(&body.scopes, user.role)?;
    let days = parse_expiry(body.expires_in_days.as_ref())?;
    if tokens::count(&state.db, user.id).await? >= MAX_TOKENS_PER_USER {
        return Err(ApiError::Conflict(format!(
            "You already have {MAX_TOKENS_PER_USER} tokens: revoke one you no longer use first"
        )));
    }
    let now = Timestamp::now();
    let expires_at = days.map(|d| now + d * 86_400_000);
    let (secret, hash) = auth::new_api_token();
    let token = tokens::insert(
        &state.db,
        user.id,
        &name,
        &scopes.to_db(),
        &hash,
        now,
        expires_at,
    )
    .await?;
    tracing::info!(user_id = user.id, token_id = token.id, scopes = %scopes.to_db(), "API token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            view: token.into(),
            token: secret,
        }),
    ))
}

/// `GET /tokens`: the user's tokens, newest first, without secrets.
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    responses(
        (status = 200, description = "the user's tokens, newest first, without secrets", body = [TokenView]),
        (status = 403, description = "an API token (this needs a signed-in session), or a cross-site request", body = crate::openapi::ErrorBody)
    )
)]
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
) -> ApiResult<Json<Vec<TokenView>>> {
    user.require_session()?;
    let list = tokens::list(&state.db, user.id).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// `DELETE /tokens/{id}`: revokes the token at once (the next request with it gets 401).
#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    tag = "tokens",
    params(("id" = String, Path, description = "the token's id")),
    responses(
        (status = 204, description = "revoked"),
        (status = 403, description = "an API token (this needs a signed-in session), or a cross-site request", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such token of this user", body = crate::openapi::ErrorBody)
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    user.require_session()?;
    let not_found = || ApiError::NotFound("Token not found".into());
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(not_found)?;
    if !tokens::delete(&state.db, user.id, id).await? {
        return Err(not_found());
    }
    tracing::info!(user_id = user.id, token_id = id, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_are_a_list_of_known_names_and_admin_needs_the_role() {
        let s = parse_scopes(
            &json!(["tasks:read", "tasks:read", "status:write"]),
            Role::User,
        )
        .unwrap();
        assert_eq!(s.names(), ["tasks:read", "status:write"]);
        for bad in [json!("tasks:read"), json!([]), json!(["tasks"]), json!([1])] {
            assert_eq!(parse_scopes(&bad, Role::User).unwrap_err().field, "scopes");
        }
        assert!(parse_scopes(&json!(["admin"]), Role::User).is_err());
        assert!(parse_scopes(&json!(["admin"]), Role::Admin).is_ok());
    }

    #[test]
    fn expiry_is_one_day_to_ten_years_or_none() {
        assert_eq!(parse_expiry(None).unwrap(), None);
        assert_eq!(parse_expiry(Some(&Value::Null)).unwrap(), None);
        assert_eq!(parse_expiry(Some(&json!(30))).unwrap(), Some(30));
        for bad in [json!(0), json!(-1), json!(3651), json!(1.5), json!("30")] {
            let e = parse_expiry(Some(&bad)).unwrap_err();
            assert_eq!(e.field, "expires_in_days", "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  ci  ").unwrap(), "ci");
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(101)).is_err());
        assert!(parse_name("a\nb").is_err());
    }
}
