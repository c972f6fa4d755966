//! Secrets come from the environment (or a file it names), never from config.yaml. In development a
//! JWT key is generated once and kept in the data folder so sessions survive restarts.

use anyhow::{bail, Context};
use pulseboard_config::{Config, RunMode};
use rand::RngCore;

pub fn jwt_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Ok(secret) = std::env::var("PULSEBOARD_JWT_SECRET") {
        if secret.len() < 32 {
            bail!("PULSEBOARD_JWT_SECRET must be at least 32 characters long");
        }
        return Ok(secret.into_bytes());
    }
    if let Ok(path) = std::env::var("PULSEBOARD_JWT_SECRET_FILE") {
        let secret = std::fs::read(&path)
            .with_context(|| format!("cannot read PULSEBOARD_JWT_SECRET_FILE {path}"))?;
        let secret = secret.trim_ascii().to_vec();
        if secret.len() < 32 {
            bail!("the key in PULSEBOARD_JWT_SECRET_FILE {path} must be at least 32 bytes long");
        }
        return Ok(secret);
    }
    if config.env == RunMode::Production {
        bail!("production mode needs PULSEBOARD_JWT_SECRET (or PULSEBOARD_JWT_SECRET_FILE): a random string of 32+ characters");
    }
    let path = config.data_dir.join("jwt.key");
    match std::fs::read(&path) {
        Ok(key) if key.len() >= 32 => Ok(key),
        _ => {
            let mut key = vec![0u8; 64];
            rand::thread_rng().fill_bytes(&mut key);
            let text = hex::encode(&key).into_bytes();
            write_private(&path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(text)
        }
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)
}
