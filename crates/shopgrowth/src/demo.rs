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
    let mut festival_orders: Vec<(String, String, i64)> = Vec::new();
    let mut customers: Vec<String> = Vec::new();
    while let Some(chunk) = rx.recv().await {
        for o in &chunk.orders {
            if let (Some(user), true) = (
                &o.user_id,
                o.coupon_codes.iter().any(|c| c == FESTIVAL_COUPON),
            ) {
                festival_orders.push((
                    user.as_str().to_owned(),
                    o.id.as_str().to_owned(),
                    o.placed_at.millis(),
                ));
            }
        }
        customers.extend(
            chunk
                .users
                .iter()
                .map(|u| u.id.as_str())
                .filter(|id| !id.starts_with("card:"))
                .map(str::to_owned),
        );
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
    festival_coupons(store, &customers, &festival_orders, now).await?;
    red_packets(store, customers.first().map(String::as_str), now).await?;
    Ok(())
}

/// Red packets to try against the demo: tonight's rain (三场红包雨, an hour apart from an hour
/// from now), and a share-to-unlock packet of the first customer waiting for three friends.
async fn red_packets(store: &Store, sharer: Option<&str>, now: i64) -> anyhow::Result<()> {
    use shopgrowth_api::routes::red_packets::{
        PacketKind, RainRequest, RainRound, RedPacketRequest,
    };
    let hour = 3_600_000;
    let rain = RainRequest {
        id: "demo-rain".into(),
        sender: "shop".into(),
        currency: "CNY".into(),
        rounds: (1..=3)
            .map(|k| RainRound {
                starts_at: Timestamp(now + k * hour),
                seconds: 60,
                total: 50_000,
                shares: 100,
                min_share: 100,
            })
            .collect(),
    };
    let rounds = rain
        .records(now)
        .map_err(|errors| anyhow::anyhow!("the demo rain is not valid: {errors:?}"))?;
    shopgrowth_service::promotions::create_rain_rounds(store, rounds).await?;
    if let Some(sharer) = sharer {
        let share = RedPacketRequest {
            id: "demo-share".into(),
            sender: sharer.to_owned(),
            kind: PacketKind::Fixed,
            total: 1_000,
            currency: "CNY".into(),
            shares: 1,
            min_share: 1,
            expires_in_seconds: 86_400,
            unlock_helpers: 3,
            helps_per_helper_per_day: Some(5),
        };
        let (packet, amounts) = share
            .record(now)
            .map_err(|errors| anyhow::anyhow!("the demo share packet is not valid: {errors:?}"))?;
        store.create_red_packet(packet, amounts).await?;
    }
    Ok(())
}

/// The code the generator's festival orders carry (每满300减30).
const FESTIVAL_COUPON: &str = "FESTIVAL-300-30";

/// The festival coupon behind the generated orders that used it, so the promotion trail, its
/// report and the profiles' coupon fields have something to show: every order with the code
/// claimed it an hour before and redeemed it; every third customer was also issued one in bulk,
/// most of which went unused.
async fn festival_coupons(
    store: &Store,
    customers: &[String],
    orders: &[(String, String, i64)],
    now: i64,
) -> anyhow::Result<()> {
    use futures_util::future::join_all;
    use shopgrowth_store::records::{Claimed, CouponTemplateRecord};
    let rule = shopgrowth_promo::pricing::Rule::PerEvery {
        every: 30_000,
        off: 3_000,
        cap: None,
        across_stores: true,
    };
    store
        .create_coupon_template(CouponTemplateRecord {
            id: FESTIVAL_COUPON.into(),
            name: "大促每满300减30".into(),
            rule: serde_json::to_string(&rule)?,
            quota: None,
            issued: 0,
            per_user_limit: 50,
            valid_from: None,
            valid_until: None,
            valid_days: Some(7),
            created_at: now,
            per_device_limit: None,
            per_phone_limit: None,
            in_centre: true,
            issue_on: None,
            scope: None,
            code_prefix: None,
        })
        .await?;
    let sample: Vec<String> = customers.iter().step_by(3).cloned().collect();
    shopgrowth_service::promotions::issue_coupons(
        store,
        FESTIVAL_COUPON,
        &sample,
        "demo",
        5_000,
        |_| {},
    )
    .await?;
    let mut codes = shopgrowth_promo::CouponCodes::new(
        <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(42),
    );
    // Concurrent writes share the store's group commits.
    for part in orders.chunks(500) {
        let claims = part.iter().map(|(user, order, at)| {
            store.claim_coupon(
                FESTIVAL_COUPON.into(),
                user.clone(),
                format!("order:{order}"),
                codes.next(at - 3_600_000),
                Vec::new(),
                at - 3_600_000,
            )
        });
        let mut redeems = Vec::with_capacity(part.len());
        for ((user, order, at), claimed) in
            part.iter().zip(join_all(claims.collect::<Vec<_>>()).await)
        {
            let (Claimed::New(c) | Claimed::Duplicate(c)) = claimed?;
            redeems.push(store.redeem_coupon(c.code, user.clone(), order.clone(), *at));
        }
        for r in join_all(redeems).await {
            r?;
        }
    }
    Ok(())
}
