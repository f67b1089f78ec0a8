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
    #[serde(default)]
    pub audience: AudienceFile,
    /// `[recommend]`: feedback weights, model settings and each scene's blend (see
    /// docs/recommendations.md); unset keys keep their defaults.
    #[serde(default)]
    pub recommend: shopgrowth_recommend::engine::EngineConfig,
    /// How often the server retrains the recommender (default 60).
    pub recommend_retrain_minutes: Option<u64>,
}

/// `[audience]`: how profiles and built-in tags are derived.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceFile {
    pub half_life_days: Option<f64>,
    pub active_days: Option<i64>,
    pub churn_days: Option<i64>,
    pub rfm_recency_thresholds: Option<[i64; 4]>,
    pub rfm_frequency_thresholds: Option<[i64; 4]>,
    pub rfm_monetary_thresholds: Option<[i64; 4]>,
    pub value_tiers: Option<[f64; 2]>,
    pub interest_min_weight: Option<f64>,
}

/// The audience settings from the file, in the shop's time zone.
pub fn audience_config(
    tz: chrono_tz::Tz,
    file: &FileConfig,
) -> anyhow::Result<shopgrowth_profile::audience::AudienceConfig> {
    use shopgrowth_profile::audience::AudienceConfig;
    let a = &file.audience;
    let mut c = AudienceConfig::default();
    c.features.tz = tz;
    c.rfm.tz = tz;
    if let Some(h) = a.half_life_days {
        anyhow::ensure!(
            h > 0.0 && h.is_finite(),
            "audience.half_life_days must be above 0"
        );
        c.features.half_life_days = h;
    }
    c.active_days = a.active_days;
    c.churn_days = a.churn_days;
    if let (Some(active), Some(churn)) = (a.active_days, a.churn_days) {
        anyhow::ensure!(
            0 < active && active < churn,
            "audience: active_days must be above 0 and below churn_days"
        );
    }
    for (name, t) in [
        ("rfm_recency_thresholds", a.rfm_recency_thresholds),
        ("rfm_frequency_thresholds", a.rfm_frequency_thresholds),
        ("rfm_monetary_thresholds", a.rfm_monetary_thresholds),
    ] {
        if let Some(t) = t {
            anyhow::ensure!(
                t.windows(2).all(|w| w[0] <= w[1]),
                "audience.{name} must be ascending"
            );
        }
    }
    c.rfm.recency_thresholds = a.rfm_recency_thresholds;
    c.rfm.frequency_thresholds = a.rfm_frequency_thresholds;
    c.rfm.monetary_thresholds = a.rfm_monetary_thresholds;
    if let Some([high, medium]) = a.value_tiers {
        anyhow::ensure!(
            0.0 < high && high <= medium && medium <= 1.0,
            "audience.value_tiers must be [high share, high+medium share] with 0 < high <= medium <= 1"
        );
        c.value_tiers = (high, medium);
    }
    if let Some(w) = a.interest_min_weight {
        c.interest_min_weight = w;
    }
    Ok(c)
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
