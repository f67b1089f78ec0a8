//! `shopgrowth bench issue`: bulk coupon issuance into the store the global options name
//! (`--data-dir` or `--database-url`): a template with a quota for everyone, then grants to
//! `--users` users in the API's chunks of 5,000, timed; then the same batch again, which must
//! issue nothing. It measures; it asserts nothing about time.

use crate::config::{open_store, FileConfig, StoreArgs};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use shopgrowth_store::records::{CouponTemplateRecord, IssueSummary};
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
    // The user list is made before the clock starts, as the API gets it from a segment.
    let users: Vec<String> = (0..args.users).map(|u| format!("u{u:07}")).collect();
    let started = Instant::now();
    let total = shopgrowth_service::promotions::issue_coupons(
        store,
        template,
        &users,
        batch,
        args.chunk as usize,
        |n| bar.inc(n as u64),
    )
    .await?;
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
            in_centre: false,
            issue_on: None,
            scope: None,
            code_prefix: None,
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
