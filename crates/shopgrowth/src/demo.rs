//! `shopgrowth demo`: generates the demo shop into an embedded store (once; `--fresh` starts
//! over), makes API keys, and serves it.

use crate::config::{FileConfig, StoreArgs};
use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use shopgrowth_core::pii::PiiCipher;
use shopgrowth_core::time::Timestamp;
use shopgrowth_demo::{DemoConfig, Generator};
use shopgrowth_store::records::SealedUser;
use shopgrowth_store::{Location, Store};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Seed of the generator; the same seed gives the same shop.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 20_000)]
    pub users: usize,
    #[arg(long, default_value_t = 2_000)]
    pub products: usize,
    /// Events to aim for.
    #[arg(long, default_value_t = 1_100_000)]
    pub events: usize,
    /// Delete the demo store and generate it again.
    #[arg(long)]
    pub fresh: bool,
    /// Generate (if needed) and exit without serving.
    #[arg(long)]
    pub no_serve: bool,
    /// Address to listen on.
    #[arg(long, env = "SHOPGROWTH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
}

#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub store: String,
    pub generated: bool,
    pub seconds: f64,
    pub users: i64,
    pub products: i64,
    pub stores: i64,
    pub orders: i64,
    pub events: i64,
    pub admin_key: String,
    pub pii_key: String,
}

/// The demo's personal-data key: from the environment, or a key kept beside the demo store.
fn demo_cipher(dir: &Path) -> anyhow::Result<PiiCipher> {
    if let Ok(key) = std::env::var("SHOPGROWTH_PII_KEY") {
        return PiiCipher::from_base64(&key)
            .map_err(|e| anyhow::anyhow!("SHOPGROWTH_PII_KEY: {e}"));
    }
    let path = dir.join("pii.key");
    let key = match std::fs::read_to_string(&path) {
        Ok(k) => k,
        Err(_) => {
            let k = PiiCipher::generate_key();
            std::fs::write(&path, &k).with_context(|| format!("writing {}", path.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
            k
        }
    };
    PiiCipher::from_base64(&key).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub async fn run(
    store_args: &StoreArgs,
    file: &FileConfig,
    args: DemoArgs,
    json: bool,
) -> anyhow::Result<()> {
    if store_args.database_url.is_some() {
        anyhow::bail!(
            "the demo runs on the embedded store; drop --database-url (or use `shopgrowth serve`)"
        );
    }
    let dir: PathBuf = store_args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("data/demo"));
    if args.fresh && std::fs::metadata(&dir).is_ok() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cipher = demo_cipher(&dir)?;
    let store = Store::open(&Location::Sqlite(dir.join("shopgrowth.db"))).await?;
    store.migrate().await?;
    let started = Instant::now();
    let generated = store.counts().await?.events == 0;
    if generated {
        generate(&store, &cipher, &args, json).await?;
    } else if !json {
        eprintln!(
            "using the demo shop already in {} (--fresh generates it again)",
            dir.display()
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    let now = Timestamp::now().0;
    let mut keys = Vec::new();
    for (name, scopes) in [
        (
            "demo admin (personal data masked)",
            vec![shopgrowth_api::auth::Scope::Admin],
        ),
        (
            "demo admin with pii",
            vec![
                shopgrowth_api::auth::Scope::Admin,
                shopgrowth_api::auth::Scope::Pii,
            ],
        ),
    ] {
        let new = shopgrowth_api::auth::generate(name, &scopes, now);
        keys.push(new.plaintext);
        store.create_api_key(new.record).await?;
    }
    let counts = store.counts().await?;
    let report = DemoReport {
        store: dir.join("shopgrowth.db").display().to_string(),
        generated,
        seconds,
        users: counts.users,
        products: counts.products,
        stores: counts.stores,
        orders: counts.orders,
        events: counts.events,
        admin_key: keys[0].clone(),
        pii_key: keys[1].clone(),
    };
    let banner = format!(
        "demo shop: {} users, {} products, {} stores, {} orders, {} events{}\n\
         API key (admin, personal data masked): {}\n\
         API key (admin + pii):                 {}\n\
         try: curl -H 'Authorization: Bearer {}' http://{}/api/v1/users/card:010928",
        report.users,
        report.products,
        report.stores,
        report.orders,
        report.events,
        if generated {
            format!(" (generated in {seconds:.1}s)")
        } else {
            String::new()
        },
        report.admin_key,
        report.pii_key,
        report.admin_key,
        args.listen
    );
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if args.no_serve {
        if !json {
            println!("{banner}");
        }
        return Ok(());
    }
    crate::serve::serve_store(store, cipher, file, &args.listen, Some(banner)).await
}

async fn generate(
    store: &Store,
    cipher: &PiiCipher,
    args: &DemoArgs,
    json: bool,
) -> anyhow::Result<()> {
    let config = DemoConfig {
        seed: args.seed,
        users: args.users,
        products: args.products,
        target_events: args.events,
        ..DemoConfig::default()
    };
    let now = Timestamp::now().0;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let (catalogue_tx, catalogue_rx) = tokio::sync::oneshot::channel();
    let producer = tokio::task::spawn_blocking(move || {
        let generator = Generator::new(config);
        let _ = catalogue_tx.send((
            generator.catalogue().products.clone(),
            generator.stores().to_vec(),
        ));
        for chunk in generator {
            if tx.blocking_send(chunk).is_err() {
                break;
            }
        }
    });
    let (products, stores) = catalogue_rx.await.context("the generator stopped")?;
    for batch in products.chunks(1_000) {
        store.upsert_products(batch.to_vec(), now).await?;
    }
    store.upsert_stores(stores, now).await?;
    let bar = if !json && std::io::stderr().is_terminal() {
        ProgressBar::new(args.users as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("generating {bar:30} {pos}/{len} users, {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut events = 0usize;
    while let Some(chunk) = rx.recv().await {
        let people = chunk
            .users
            .iter()
            .filter(|u| !u.id.as_str().starts_with("card:"))
            .count();
        let sealed: Vec<SealedUser> = chunk
            .users
            .iter()
            .map(|u| SealedUser::seal(u, cipher))
            .collect();
        store.upsert_users(sealed, now).await?;
        store.insert_orders(chunk.orders, now).await?;
        events += chunk.events.len();
        store.insert_events(chunk.events, now).await?;
        bar.inc(people as u64);
        bar.set_message(format!("{events} events"));
    }
    producer.await.context("the generator failed")?;
    bar.finish_and_clear();
    Ok(())
}
