//! Promotion work shared by the HTTP API, the CLI and the benchmarks: bulk coupon issuance
//! (发券给人群: users in chunks, each chunk one store call, codes that rise within the issuance)
//! and campaign budgets, and the promotion trail's report.

use shopgrowth_core::time::Timestamp;
use shopgrowth_promo::budget::Period;
use shopgrowth_promo::campaign::{effective, CampaignState};
use shopgrowth_promo::pricing::Promotion;
use shopgrowth_store::records::{BudgetLine, CouponGrant, IssueSummary};
use shopgrowth_store::Store;

/// The budget scope of a campaign: its `budget` is that scope's `total` limit, checkouts spend
/// from it (docs/budgets.md), and daily, weekly or monthly limits can be set on it too.
pub fn campaign_budget_scope(campaign: &str) -> String {
    format!("campaign:{campaign}")
}

/// The promotions of the campaigns live now (running, budget not spent), each limited to its
/// target segment; each promotion's id is its campaign's.
pub async fn live_promotions(store: &Store) -> shopgrowth_store::Result<Vec<Promotion>> {
    let now = Timestamp::now().0;
    let mut live = Vec::new();
    for c in store.campaigns().await? {
        let stored = CampaignState::parse(&c.state).unwrap_or(CampaignState::Draft);
        if effective(stored, c.starts_at, c.ends_at, now) != CampaignState::Running {
            continue;
        }
        if let Some(budget) = c.budget {
            if campaign_spent(store, &c.id).await? >= budget {
                continue;
            }
        }
        let Ok(mut p) = serde_json::from_str::<Promotion>(&c.promotion) else {
            tracing::warn!(campaign = %c.id, "stored promotion no longer parses; skipped");
            continue;
        };
        if let Some(s) = c.segment {
            p.audience.segments = vec![s];
        }
        live.push(p);
    }
    Ok(live)
}

/// What a campaign has spent in all.
pub async fn campaign_spent(store: &Store, campaign: &str) -> shopgrowth_store::Result<i64> {
    let total = Period::Total;
    store
        .budget_used(BudgetLine {
            scope: campaign_budget_scope(campaign),
            period: total.as_str().into(),
            period_key: total.key(chrono::NaiveDate::MIN),
        })
        .await
}

/// Grants written to one store transaction, so single claims of the same template get their turn
/// in between.
pub const ISSUE_CHUNK: usize = 5_000;

/// Issues one coupon of `template` to each of `users` under the claim keys `BATCH:USER`, `chunk`
/// grants to a store call; `progress` hears how many users each call covered. Once the quota runs
/// out, the users not yet reached count as sold out and the store is not asked again.
pub async fn issue_coupons(
    store: &Store,
    template: &str,
    users: &[String],
    batch: &str,
    chunk: usize,
    mut progress: impl FnMut(usize),
) -> shopgrowth_store::Result<IssueSummary> {
    let mut summary = IssueSummary::default();
    let mut codes = shopgrowth_promo::CouponCodes::new(
        <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng(),
    );
    for part in users.chunks(chunk.max(1)) {
        let grants = part
            .iter()
            .map(|u| CouponGrant {
                user_id: u.clone(),
                claim_key: format!("{batch}:{u}"),
                code: codes.next(Timestamp::now().0),
            })
            .collect();
        let done = store
            .issue_coupons(template.to_owned(), grants, Timestamp::now().0)
            .await?;
        summary.add(done);
        progress(part.len());
        if done.sold_out > 0 {
            summary.sold_out += users.len() as u64
                - summary.issued
                - summary.duplicates
                - summary.over_user_limit
                - summary.sold_out;
            break;
        }
    }
    Ok(summary)
}

/// Each promotion's funnel over the trail entries with `from <= at < to` (epoch milliseconds).
pub async fn trail_report(
    store: &Store,
    from: i64,
    to: i64,
) -> shopgrowth_store::Result<Vec<shopgrowth_promo::trail::PromotionReport>> {
    use shopgrowth_core::model::{PromotionKind, PromotionType};
    let counts = store.trail_counts(from, to).await?;
    let tallies = counts.iter().filter_map(|c| {
        Some(shopgrowth_promo::trail::Tally {
            promotion: PromotionType::parse(&c.promotion_type)?,
            id: &c.promotion_id,
            kind: PromotionKind::parse(&c.kind)?,
            events: c.events.max(0) as u64,
            users: c.users.max(0) as u64,
            amount: c.amount,
        })
    });
    Ok(shopgrowth_promo::trail::report(tallies))
}
