//! Password hashing with Argon2id, bounded so that a login flood neither exhausts memory nor
//! starves other requests.

use crate::error::{ApiError, ApiResult};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use pulseboard_config::Config;
use pulseboard_domain::Password;
use rand::RngCore;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

fn argon2(config: &Config) -> Argon2<'static> {
    let params = Params::new(
        config.auth.argon2_memory_kib,
        config.auth.argon2_iterations,
        1,
        None,
    )
    .expect("argon2 parameters were validated with the configuration");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Password hashing, bounded: each Argon2 run takes `auth.argon2_memory_kib` of memory and a core
/// for tens of milliseconds, so a burst of logins must neither exhaust memory nor starve other
/// requests. At most `hash_concurrency` runs at once on the blocking pool, at most `hash_queue`
/// more wait for a slot, and anything beyond gets 503 with `Retry-After` at once.
pub struct Passwords {
    argon: Argon2<'static>,
    /// A hash of a random password with the configured parameters, made at start-up: an unknown
    /// email is verified against it, so it costs exactly what a wrong password costs.
    dummy: String,
    slots: Arc<Semaphore>,
    /// Requests holding or waiting for a slot.
    admitted: AtomicUsize,
    capacity: usize,
}

/// Gives the admission back when the request finishes or is dropped.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Passwords {
    pub fn new(config: &Config) -> Self {
        let argon = argon2(config);
        let mut random = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut random);
        let dummy = argon
            .hash_password(&random, &SaltString::generate(&mut OsRng))
            .expect("argon2 parameters were validated with the configuration")
            .to_string();
        let slots = config.hash_concurrency();
        Self {
            argon,
            dummy,
            slots: Arc::new(Semaphore::new(slots)),
            admitted: AtomicUsize::new(0),
            capacity: slots + config.auth.hash_queue,
        }
    }

    /// Runs `f` with a hashing slot on the blocking pool. The slot travels into the blocking task,
    /// so a request dropped mid-way (client gone, timeout) still holds it until Argon2 returns.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> ApiResult<T> {
        let admission = Admission(&self.admitted);
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            drop(admission);
            return Err(ApiError::Busy {
                message: "The server is busy checking other passwords; please try again in a \
                          moment"
                    .into(),
                retry_after_secs: 1,
            });
        }
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let argon = self.argon.clone();
        let out = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&argon)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()));
        drop(admission);
        out
    }

    pub async fn hash(&self, password: Password) -> ApiResult<String> {
        self.run(move |argon| {
            argon
                .hash_password(
                    password.expose().as_bytes(),
                    &SaltString::generate(&mut OsRng),
                )
                .map(|h| h.to_string())
                .map_err(|e| ApiError::Internal(format!("hashing password: {e}")))
        })
        .await?
    }

    /// Whether `password` matches `stored`. Without a stored hash (unknown email) the password is
    /// checked against the start-up dummy, so the answer takes the same time and is always false.
    pub async fn verify(&self, password: Password, stored: Option<String>) -> ApiResult<bool> {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy.clone());
        let ok = self
            .run(move |argon| {
                PasswordHash::new(&stored).is_ok_and(|parsed| {
                    argon
                        .verify_password(password.expose().as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Yaml};

    fn config(extra: &str) -> Config {
        Config::from_figment(
            figment::Figment::from(Yaml::string(pulseboard_config::DEFAULTS_YAML))
                .merge(Yaml::string(extra)),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn unknown_emails_are_checked_against_a_hash_with_the_configured_cost() {
        let cfg = config("auth:\n  argon2_memory_kib: 64\n  argon2_iterations: 3");
        let passwords = Passwords::new(&cfg);
        // Same algorithm and cost as a real account's hash, so the same work.
        assert!(passwords.dummy.starts_with("$argon2id$v=19$m=64,t=3,p=1$"));
        let real = passwords
            .hash(Password::parse_login("right").unwrap())
            .await
            .unwrap();
        assert_eq!(real.split('$').nth(3), passwords.dummy.split('$').nth(3));
        let pw = || Password::parse_login("right").unwrap();
        assert!(passwords.verify(pw(), Some(real)).await.unwrap());
        assert!(!passwords.verify(pw(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_hashing_queue_answers_busy_with_retry_after() {
        let cfg = config(
            "auth:\n  argon2_memory_kib: 4096\n  argon2_iterations: 4\n  hash_concurrency: 1\n  hash_queue: 1",
        );
        let passwords = Arc::new(Passwords::new(&cfg));
        let attempts: Vec<_> = (0..12)
            .map(|_| {
                let p = passwords.clone();
                tokio::spawn(
                    async move { p.verify(Password::parse_login("x").unwrap(), None).await },
                )
            })
            .collect();
        let mut busy = 0;
        for a in attempts {
            match a.await.unwrap() {
                Ok(ok) => assert!(!ok),
                Err(ApiError::Busy {
                    retry_after_secs, ..
                }) => {
                    assert!(retry_after_secs >= 1);
                    busy += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        // One running and one waiting at most: of twelve at once, at least ten were turned away.
        assert!(busy >= 10, "only {busy} of 12 refused");
        assert_eq!(passwords.admitted.load(Ordering::Acquire), 0);
    }
}
