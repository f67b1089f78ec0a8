//! Configuration: flag, then `SHOPGROWTH_*` environment, then a TOML file, then defaults.
//! With no configuration at all the server runs on SQLite in `./data`.

use anyhow::{bail, Context};
use clap::Args;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Options every command that opens the store shares.
#[derive(Debug, Clone, Args, Default)]
pub struct StoreArgs {
    /// TOML configuration file (see config/shopgrowth.example.toml).
    #[arg(long, env = "SHOPGROWTH_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// PostgreSQL URL (postgres://…); without it the embedded store in --data-dir is used.
    #[arg(long, env = "SHOPGROWTH_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Folder of the embedded store.
    #[arg(long, env = "SHOPGROWTH_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Do not apply pending migrations at start.
    #[arg(long, global = true)]
    pub no_migrate: bool,
}

/// The configuration file. Unknown keys are refused so a typo is not silently ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub timezone: Option<String>,
    pub pii_key: Option<String>,
    pub body_limit_bytes: Option<usize>,
    pub max_batch_items: Option<usize>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config {}", path.display()))
    }
}

/// Where the store lives, resolved from flags, environment, file and defaults.
pub fn store_location(
    args: &StoreArgs,
    file: &FileConfig,
) -> anyhow::Result<shopgrowth_store::Location> {
    if let Some(url) = args.database_url.as_ref().or(file.database_url.as_ref()) {
        let location = shopgrowth_store::Location::parse(url)
            .map_err(|e| anyhow::anyhow!("database_url: {e}"))?;
        return Ok(location);
    }
    let dir = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("data"));
    Ok(shopgrowth_store::Location::Sqlite(
        dir.join("shopgrowth.db"),
    ))
}

pub fn timezone(flag: Option<&str>, file: &FileConfig) -> anyhow::Result<chrono_tz::Tz> {
    let name = flag
        .map(str::to_owned)
        .or_else(|| file.timezone.clone())
        .unwrap_or_else(|| shopgrowth_core::time::DEFAULT_SHOP_TZ.to_owned());
    shopgrowth_core::time::parse_tz(&name).map_err(|e| anyhow::anyhow!("timezone: {e}"))
}

/// The personal-data key: `SHOPGROWTH_PII_KEY` or `pii_key` in the file; required to serve.
pub fn pii_cipher(
    flag: Option<&str>,
    file: &FileConfig,
) -> anyhow::Result<shopgrowth_core::pii::PiiCipher> {
    let Some(key) = flag.map(str::to_owned).or_else(|| file.pii_key.clone()) else {
        bail!(
            "no personal-data key: set SHOPGROWTH_PII_KEY (or pii_key in the config file) to 32 random bytes in \
             base64; `shopgrowth pii-key generate` makes one. Phone, email and name are encrypted with it."
        );
    };
    shopgrowth_core::pii::PiiCipher::from_base64(&key)
        .map_err(|e| anyhow::anyhow!("SHOPGROWTH_PII_KEY: {e}"))
}

pub async fn open_store(
    args: &StoreArgs,
    file: &FileConfig,
) -> anyhow::Result<shopgrowth_store::Store> {
    let location = store_location(args, file)?;
    let store = shopgrowth_store::Store::open(&location)
        .await
        .with_context(|| format!("opening the store at {}", describe(&location)))?;
    if !args.no_migrate {
        store.migrate().await.context("applying migrations")?;
    }
    Ok(store)
}

/// A location for messages: the file path, or the URL without its password.
pub fn describe(location: &shopgrowth_store::Location) -> String {
    match location {
        shopgrowth_store::Location::Sqlite(p) => p.display().to_string(),
        shopgrowth_store::Location::Postgres(url) => match url.split_once('@') {
            Some((head, tail)) => {
                let scheme_user = head
                    .rsplit_once(':')
                    .filter(|(s, _)| s.contains("//"))
                    .map_or(head, |(s, _)| s);
                format!("{scheme_user}:***@{tail}")
            }
            None => url.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_sqlite_in_data() {
        let loc = store_location(&StoreArgs::default(), &FileConfig::default()).ok();
        assert_eq!(
            loc,
            Some(shopgrowth_store::Location::Sqlite(PathBuf::from(
                "data/shopgrowth.db"
            )))
        );
    }

    #[test]
    fn flags_beat_the_file() {
        let file = FileConfig {
            data_dir: Some("from-file".into()),
            ..Default::default()
        };
        let args = StoreArgs {
            data_dir: Some("from-flag".into()),
            ..Default::default()
        };
        let loc = store_location(&args, &file).ok();
        assert_eq!(
            loc,
            Some(shopgrowth_store::Location::Sqlite(PathBuf::from(
                "from-flag/shopgrowth.db"
            )))
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("listen = \"x\"\nlisten_port = 1").is_err());
    }

    #[test]
    fn passwords_are_hidden() {
        let loc =
            shopgrowth_store::Location::Postgres("postgres://app:hunter2@db:5432/shop".into());
        assert_eq!(describe(&loc), "postgres://app:***@db:5432/shop");
    }

    #[test]
    fn missing_pii_key_says_what_to_do() {
        let err = pii_cipher(None, &FileConfig::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("SHOPGROWTH_PII_KEY"));
    }
}
