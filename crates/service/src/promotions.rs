//! Promotion work shared by the HTTP API, the CLI and the benchmarks: bulk coupon issuance
//! (发券给人群: users in chunks, each chunk one store call, codes that rise within the issuance)
//! and campaign budgets, and the promotion trail's report.

use shopgrowth_core::time::Timestamp;
use shopgrowth_promo::budget::Period;
use shopgrowth_promo::campaign::{effective, CampaignState};
use shopgrowth_promo::pricing::{Pricer, Promotion};
use shopgrowth_store::records::{BudgetLine, CampaignRecord, CouponGrant, IssueSummary};
use shopgrowth_store::Store;
use std::sync::Arc;

/// The budget scope of a campaign: its `budget` is that scope's `total` limit, checkouts spend
/// from it (docs/budgets.md), and daily, weekly or monthly limits can be set on it too.
pub fn campaign_budget_scope(campaign: &str) -> String {
    format!("campaign:{campaign}")
}

/// The promotions of the campaigns live now (running, budget not spent), each limited to its
/// target segment; each promotion's id is its campaign's.
pub async fn live_promotions(store: &Store) -> shopgrowth_store::Result<Vec<Promotion>> {
    let live = live_campaigns(store).await?;
    Ok(live.iter().filter_map(parse_promotion).collect())
}

/// Every campaign, by id, with what it has spent in all (`spent`), in one read.
pub async fn campaigns_with_spent(store: &Store) -> shopgrowth_store::Result<Vec<CampaignRecord>> {
    let total = Period::Total;
    store
        .campaigns_with_spent(
            campaign_budget_scope(""),
            total.as_str().into(),
            total.key(chrono::NaiveDate::MIN),
        )
        .await
}

/// The campaigns live now, each with what it has spent.
async fn live_campaigns(store: &Store) -> shopgrowth_store::Result<Vec<CampaignRecord>> {
    let now = Timestamp::now().0;
    let mut campaigns = campaigns_with_spent(store).await?;
    campaigns.retain(|c| {
        let stored = CampaignState::parse(&c.state).unwrap_or(CampaignState::Draft);
        effective(stored, c.starts_at, c.ends_at, now) == CampaignState::Running
            && c.budget.is_none_or(|budget| c.spent < budget)
    });
    Ok(campaigns)
}

/// A live campaign's promotion, limited to its target segment.
fn parse_promotion(c: &CampaignRecord) -> Option<Promotion> {
    let Ok(mut p) = serde_json::from_str::<Promotion>(&c.promotion) else {
        tracing::warn!(campaign = %c.id, "stored promotion no longer parses; skipped");
        return None;
    };
    if let Some(s) = &c.segment {
        p.audience.segments = vec![s.clone()];
    }
    Some(p)
}

/// The live set parsed and compiled, as of one read of the campaigns.
#[derive(Debug)]
pub struct LiveSet {
    /// Each live campaign's id and version: a campaign's promotion changes only with its version.
    key: Vec<(String, i64)>,
    pub promotions: Vec<Promotion>,
    pub pricer: Pricer,
}

/// The live set, parsed and compiled again only when it changes: which campaigns are live (a
/// start, a pause, an end, a budget spent) is read from the store every time, so a quote never
/// prices with a campaign that is no longer live; only the parsing and compiling are saved.
#[derive(Debug, Default)]
pub struct LivePromotions {
    last: std::sync::Mutex<Option<Arc<LiveSet>>>,
}

impl LivePromotions {
    pub async fn get(&self, store: &Store) -> shopgrowth_store::Result<Arc<LiveSet>> {
        let live = live_campaigns(store).await?;
        let key: Vec<(String, i64)> = live.iter().map(|c| (c.id.clone(), c.version)).collect();
        let last = self.last.lock().map(|l| l.clone()).unwrap_or_default();
        if let Some(set) = last.filter(|s| s.key == key) {
            return Ok(set);
        }
        let promotions: Vec<Promotion> = live.iter().filter_map(parse_promotion).collect();
        let set = Arc::new(LiveSet {
            key,
            pricer: Pricer::new(&promotions),
            promotions,
        });
        if let Ok(mut last) = self.last.lock() {
            *last = Some(Arc::clone(&set));
        }
        Ok(set)
    }
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
