//! `shopgrowth bench issue`: bulk coupon issuance into the store the global options name
//! (`--data-dir` or `--database-url`): a template with a quota for everyone, then grants to
//! `--users` users in the API's chunks of 5,000, timed; then the same batch again, which must
//! issue nothing. It measures; it asserts nothing about time.

use crate::config::{open_store, FileConfig, StoreArgs};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use shopgrowth_store::records::{CouponGrant, CouponTemplateRecord, IssueSummary};
use std::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct IssueBenchArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub users: u64,
    /// Grants per store transaction (the API uses 5,000).
    #[arg(long, default_value_t = 5_000)]
    pub chunk: u64,
}

#[derive(Debug, Serialize)]
pub struct IssueReport {
    pub backend: &'static str,
    pub users: u64,
    pub issued: IssueSummary,
    pub seconds: f64,
    pub grants_per_second: f64,
    pub rerun: IssueSummary,
    pub rerun_seconds: f64,
}

async fn issue_all(
    store: &shopgrowth_store::Store,
    template: &str,
    args: &IssueBenchArgs,
    batch: &str,
) -> anyhow::Result<(IssueSummary, f64)> {
    let bar = ProgressBar::new(args.users);
    bar.set_style(ProgressStyle::with_template(
        "{msg} {bar:40} {pos}/{len} {per_sec}",
    )?);
    bar.set_message(format!("issuing ({batch})"));
    let started = Instant::now();
    let mut total = IssueSummary::default();
    let mut codes = shopgrowth_promo::CouponCodes::new(rand::rng());
    let mut next = 0;
    while next < args.users {
        let end = (next + args.chunk.max(1)).min(args.users);
        let grants = (next..end)
            .map(|u| CouponGrant {
                user_id: format!("u{u:07}"),
                claim_key: format!("{batch}:u{u:07}"),
                code: codes.next(shopgrowth_core::time::Timestamp::now().0),
            })
            .collect();
        let now = shopgrowth_core::time::Timestamp::now().0;
        total.add(
            store
                .issue_coupons(template.to_string(), grants, now)
                .await?,
        );
        bar.inc(end - next);
        next = end;
    }
    bar.finish_and_clear();
    Ok((total, started.elapsed().as_secs_f64()))
}

pub async fn run(
    store: &StoreArgs,
    file: &FileConfig,
    args: IssueBenchArgs,
) -> anyhow::Result<IssueReport> {
    let store = open_store(store, file).await?;
    let template = format!("bench-{:08x}", rand::random::<u32>());
    store
        .create_coupon_template(CouponTemplateRecord {
            id: template.clone(),
            name: "bench".into(),
            rule: "{}".into(),
            quota: Some(args.users as i64),
            issued: 0,
            per_user_limit: 1,
            valid_from: None,
            valid_until: None,
            valid_days: Some(7),
            created_at: shopgrowth_core::time::Timestamp::now().0,
            per_device_limit: None,
            per_phone_limit: None,
        })
        .await?;
    let (issued, seconds) = issue_all(&store, &template, &args, "wave").await?;
    let (rerun, rerun_seconds) = issue_all(&store, &template, &args, "wave").await?;
    Ok(IssueReport {
        backend: store.backend(),
        users: args.users,
        issued,
        seconds,
        grants_per_second: args.users as f64 / seconds,
        rerun,
        rerun_seconds,
    })
}
