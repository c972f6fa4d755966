//! Password checks counted by the login throttle (`storage::throttle`): logging in, and confirming
//! a sensitive action (deleting the account) with the password. Each attempt is reserved before
//! Argon2 runs, so parallel guesses count; a full counter answers 429.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use pulseboard_domain::{Email, Password, Timestamp};
use pulseboard_storage::throttle::{self, Limit};
use std::net::IpAddr;

/// The counters one password check counts against.
pub struct Attempt {
    /// Per (account, client address): the tight limit.
    pair: String,
    /// Per client address over all accounts; None where the account is already known to the
    /// caller (a logged-in confirmation), so only the account's own counters apply.
    address: Option<String>,
    /// Per account over all addresses: the high ceiling.
    account: String,
}

impl Attempt {
    pub fn login(email: &Email, ip: IpAddr) -> Self {
        Self {
            address: Some(format!("ip:{ip}")),
            ..Self::confirmation(email, ip)
        }
    }

    pub fn confirmation(email: &Email, ip: IpAddr) -> Self {
        Self {
            pair: format!("pair:{}|{ip}", email.as_str()),
            address: None,
            account: format!("account:{}", email.as_str()),
        }
    }

    fn keys(&self) -> Vec<String> {
        [Some(&self.pair), self.address.as_ref(), Some(&self.account)]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Reserves the attempt (429 with `refused` when a counter is full), then checks `password`
    /// against `stored` (the dummy hash when None). A check that never ran (the server was busy)
    /// gives its reservation back; a wrong password keeps it.
    pub async fn verify(
        &self,
        state: &AppState,
        password: Password,
        stored: Option<String>,
        refused: &str,
    ) -> ApiResult<bool> {
        let auth = &state.config.auth;
        let max = [
            auth.login_max_failures,
            auth.login_ip_max_failures,
            auth.login_account_max_failures,
        ];
        let limits = [Some(&self.pair), self.address.as_ref(), Some(&self.account)]
            .into_iter()
            .zip(max)
            .filter_map(|(key, max)| {
                key.map(|key| Limit {
                    key: key.clone(),
                    max,
                })
            })
            .collect();
        let now = Timestamp::now();
        let window_ms = auth.login_window_secs as i64 * 1000;
        if let Err(until) = throttle::reserve(&state.db, limits, now, window_ms).await? {
            tracing::info!(key = %self.pair, "password check refused: too many failed attempts");
            return Err(ApiError::TooManyRequests {
                message: refused.to_owned(),
                retry_after_secs: ((until - now).max(1000) / 1000) as u64,
            });
        }
        match state.passwords.verify(password, stored).await {
            Ok(ok) => Ok(ok),
            Err(e) => {
                throttle::give_back(&state.db, self.keys(), None).await?;
                Err(e)
            }
        }
    }

    /// The password was right: the attempt is given back, and the (account, address) counter
    /// forgotten.
    pub async fn succeeded(self, state: &AppState) -> ApiResult<()> {
        let wider = [self.address, Some(self.account)]
            .into_iter()
            .flatten()
            .collect();
        throttle::give_back(&state.db, wider, Some(self.pair)).await?;
        Ok(())
    }
}
