//! Promotion work shared by the HTTP API, the CLI and the benchmarks: bulk coupon issuance
//! (发券给人群: users in chunks, each chunk one store call, codes that rise within the issuance)
//! and campaign budgets, campaigns as operators give them, and the promotion trail's report.

use serde_json::json;
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::FieldError;
use shopgrowth_promo::budget::Period;
use shopgrowth_promo::campaign::{effective, CampaignState, Recurrence};
use shopgrowth_promo::pricing::{Pricer, Promotion};
use shopgrowth_promo::refund::{refund_shares, PaidLine};
use shopgrowth_store::records::{
    BudgetLine, CampaignRecord, CouponGrant, IssueSummary, RedPacketRecord, SharePlan, ShareReturn,
    SharesReturned,
};
use shopgrowth_store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The budget scope of a campaign: its `budget` is that scope's `total` limit, checkouts spend
/// from it (docs/budgets.md), and daily, weekly or monthly limits can be set on it too.
pub fn campaign_budget_scope(campaign: &str) -> String {
    format!("campaign:{campaign}")
}

/// The budget line counting the share packets `helper` helped on shop-local day `date`, for
/// packets that cap helps per helper a day.
pub fn helper_day_line(helper: &str, date: chrono::NaiveDate) -> BudgetLine {
    let day = Period::Day;
    BudgetLine {
        scope: format!("helper:{helper}"),
        period: day.as_str().into(),
        period_key: day.key(date),
    }
}

/// Stores each round of a red-packet rain not stored yet (the rounds' ids are the idempotency
/// keys); true if any was new.
pub async fn create_rain_rounds(
    store: &Store,
    rounds: Vec<(RedPacketRecord, Vec<i64>)>,
) -> shopgrowth_store::Result<bool> {
    let mut created = false;
    for (packet, amounts) in rounds {
        created |= store.create_red_packet(packet, amounts).await?;
    }
    Ok(created)
}

/// The budget line counting one customer's uses of a campaign (its orders that got it), in all.
pub fn campaign_uses_line(campaign: &str, user: &str) -> BudgetLine {
    let total = Period::Total;
    BudgetLine {
        scope: format!("campaign:{campaign}:customer:{user}"),
        period: total.as_str().into(),
        period_key: total.key(chrono::NaiveDate::MIN),
    }
}

/// A campaign as an operator gives it (the API's body, or a file for the CLI).
#[derive(Debug, Clone)]
pub struct CampaignInput {
    pub name: String,
    /// The promotion: rule, scope, stacking, priority, base, audience, code.
    pub promotion: serde_json::Value,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub segment: Option<String>,
    pub budget: Option<i64>,
    /// When it applies inside its window, in the shop's local time; none for all the time.
    pub recurrence: Option<Recurrence>,
    /// Orders one customer may get its discount on (每人限享 N 次); none for no limit.
    pub per_customer_limit: Option<i64>,
}

/// Why an operator's input was refused: a title, and each field's problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub title: &'static str,
    pub errors: Vec<FieldError>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.title)?;
        for e in &self.errors {
            write!(f, "; {e}")?;
        }
        Ok(())
    }
}

/// The names of the shop's saved segments, which a campaign may target.
pub async fn saved_segment_names(store: &Store) -> shopgrowth_store::Result<Vec<String>> {
    Ok(store
        .segments()
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect())
}

/// Checks a campaign and makes its draft record (version 1): the promotion must parse (its id
/// is the campaign's, its name the campaign's unless it names one) and make sense, the window
/// must not end before it starts, the budget must not be negative, and the target segment must
/// be one of `segments` (a misspelt one would silently reach nobody).
pub fn campaign_record(
    id: &str,
    c: &CampaignInput,
    segments: &[String],
    now: i64,
) -> Result<CampaignRecord, Refused> {
    let mut errors = Vec::new();
    if let Some(segment) = &c.segment {
        if !segments.contains(segment) {
            errors.push(FieldError::new(
                "segment",
                format!("no saved segment named {segment:?}"),
            ));
        }
    }
    if id.trim().is_empty() || id.len() > 100 {
        errors.push(FieldError::new("id", "1 to 100 characters"));
    }
    // Customers read the name in every reason ("满300减40: 还差 ¥12.50").
    if c.name.trim().is_empty() || c.name.chars().count() > 100 {
        errors.push(FieldError::new("name", "1 to 100 characters"));
    }
    let mut promotion = c.promotion.clone();
    if let Some(o) = promotion.as_object_mut() {
        o.insert("id".into(), json!(id));
        o.entry("name").or_insert(json!(c.name));
    }
    match shopgrowth_core::json::from_value::<Promotion>(&promotion) {
        Ok(parsed) => errors.extend(parsed.problems().into_iter().map(|e| e.under("promotion"))),
        Err(e) => errors.push(e.under("promotion")),
    }
    if let (Some(s), Some(e)) = (c.starts_at, c.ends_at) {
        if e <= s {
            errors.push(FieldError::new("ends_at", "must be after starts_at"));
        }
    }
    if c.budget.is_some_and(|b| b < 0) {
        errors.push(FieldError::new("budget", "must not be negative"));
    }
    if let Some(r) = &c.recurrence {
        errors.extend(r.problems().into_iter().map(|e| e.under("recurrence")));
    }
    if c.per_customer_limit.is_some_and(|n| n < 1) {
        errors.push(FieldError::new("per_customer_limit", "must be at least 1"));
    }
    if !errors.is_empty() {
        return Err(Refused {
            title: "the campaign is not valid",
            errors,
        });
    }
    Ok(CampaignRecord {
        id: id.to_owned(),
        name: c.name.clone(),
        state: "draft".into(),
        promotion: promotion.to_string(),
        starts_at: c.starts_at,
        ends_at: c.ends_at,
        segment: c.segment.clone(),
        budget: c.budget,
        version: 1,
        created_at: now,
        updated_at: now,
        recurrence: c
            .recurrence
            .as_ref()
            .and_then(|r| serde_json::to_string(r).ok()),
        per_customer_limit: c.per_customer_limit,
    })
}

/// The change an edit records: who made it, the state it happened in, and each field that
/// changed with its value before and after.
pub fn edit_change(before: &CampaignRecord, after: &CampaignRecord, by: &str) -> String {
    let mut changed = serde_json::Map::new();
    let mut note = |field: &str, was: serde_json::Value, now: serde_json::Value| {
        if was != now {
            changed.insert(field.into(), json!({"from": was, "to": now}));
        }
    };
    note("name", json!(before.name), json!(after.name));
    note(
        "promotion",
        serde_json::from_str(&before.promotion).unwrap_or_default(),
        serde_json::from_str(&after.promotion).unwrap_or_default(),
    );
    note("starts_at", json!(before.starts_at), json!(after.starts_at));
    note("ends_at", json!(before.ends_at), json!(after.ends_at));
    note("segment", json!(before.segment), json!(after.segment));
    note("budget", json!(before.budget), json!(after.budget));
    let recurrence = |c: &CampaignRecord| {
        c.recurrence
            .as_deref()
            .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
    };
    note(
        "recurrence",
        json!(recurrence(before)),
        json!(recurrence(after)),
    );
    note(
        "per_customer_limit",
        json!(before.per_customer_limit),
        json!(after.per_customer_limit),
    );
    json!({"action": "edited", "by": by, "while": before.state, "fields": changed}).to_string()
}

/// The state a transition asks for (`scheduled`, `running`, `paused` or `ended`), checked
/// against the campaign as it is (`None` if there is none: the store says so): a campaign is
/// scheduled only for a start time in the future.
pub fn transition_target(
    to: &str,
    campaign: Option<&CampaignRecord>,
    now: i64,
) -> Result<CampaignState, Refused> {
    let to = CampaignState::parse(to)
        .filter(|s| *s != CampaignState::Draft)
        .ok_or_else(|| Refused {
            title: "unknown target state",
            errors: vec![FieldError::new(
                "to",
                "one of scheduled, running, paused, ended",
            )],
        })?;
    if to == CampaignState::Scheduled
        && campaign.is_some_and(|c| c.starts_at.is_none_or(|s| s <= now))
    {
        return Err(Refused {
            title: "a campaign is scheduled for a start time in the future",
            errors: vec![FieldError::new(
                "to",
                "set starts_at in the future first, or start it now",
            )],
        });
    }
    Ok(to)
}

/// A campaign's budget becomes its budget scope's `total` limit.
pub async fn set_campaign_budget(
    store: &Store,
    c: &CampaignRecord,
) -> shopgrowth_store::Result<()> {
    if let Some(budget) = c.budget {
        store
            .set_budget_limit(
                campaign_budget_scope(&c.id),
                Period::Total.as_str().into(),
                budget,
            )
            .await?;
    }
    Ok(())
}

/// The promotions of the campaigns live now (running, inside their recurrence in the shop's
/// time zone `tz`, budget not spent), each limited to its target segment; each promotion's id is
/// its campaign's.
pub async fn live_promotions(
    store: &Store,
    tz: chrono_tz::Tz,
) -> shopgrowth_store::Result<Vec<Promotion>> {
    let live = live_campaigns(store, tz).await?;
    Ok(live.iter().filter_map(parse_promotion).collect())
}

/// Every campaign, by id, with what it has spent in all, in one read.
pub async fn campaigns_with_spent(
    store: &Store,
) -> shopgrowth_store::Result<Vec<(CampaignRecord, i64)>> {
    let total = Period::Total;
    store
        .campaigns_with_spent(
            campaign_budget_scope(""),
            total.as_str().into(),
            total.key(chrono::NaiveDate::MIN),
        )
        .await
}

/// The campaigns live now: running, inside their recurrence (local time in `tz`), budget not
/// spent.
async fn live_campaigns(
    store: &Store,
    tz: chrono_tz::Tz,
) -> shopgrowth_store::Result<Vec<CampaignRecord>> {
    let now = Timestamp::now().0;
    let local = chrono::DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .with_timezone(&tz)
        .naive_local();
    let campaigns = campaigns_with_spent(store).await?;
    Ok(campaigns
        .into_iter()
        .filter(|(c, spent)| {
            let stored = CampaignState::parse(&c.state).unwrap_or(CampaignState::Draft);
            effective(stored, c.starts_at, c.ends_at, now) == CampaignState::Running
                && (c.recurrence.is_none() || recurrence_of(c).is_some_and(|r| r.contains(local)))
                && c.budget.is_none_or(|budget| *spent < budget)
        })
        .map(|(c, _)| c)
        .collect())
}

/// A campaign's recurrence, if it has one that parses (one that no longer parses is logged, and
/// its campaign is never live: like a promotion that no longer parses, it gives nothing rather
/// than apply outside its window).
pub fn recurrence_of(c: &CampaignRecord) -> Option<Recurrence> {
    let text = c.recurrence.as_deref()?;
    match serde_json::from_str(text) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(campaign = %c.id, error = %e, "stored recurrence no longer parses");
            None
        }
    }
}

/// A live campaign's promotion, limited to its target segment.
fn parse_promotion(c: &CampaignRecord) -> Option<Promotion> {
    let Some(mut p) = stored_promotion(&c.id, &c.promotion) else {
        tracing::warn!(campaign = %c.id, "stored promotion no longer parses; skipped");
        return None;
    };
    if let Some(s) = &c.segment {
        p.audience.segments = vec![s.clone()];
    }
    Some(p)
}

/// A promotion as stored. Campaigns stored before rules refused unknown fields may hold one (a
/// misspelt field their rule ignored then): it is dropped, with a warning, so the campaign prices
/// as it always did.
fn stored_promotion(campaign: &str, text: &str) -> Option<Promotion> {
    let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
    for _ in 0..16 {
        let e = match serde_json::from_value::<Promotion>(value.clone()) {
            Ok(p) => return Some(p),
            Err(e) => e.to_string(),
        };
        let field = e
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name.to_owned())?;
        let rule = value.get_mut("rule")?.as_object_mut()?;
        rule.remove(&field)?;
        tracing::warn!(
            campaign,
            field,
            "stored rule has a field rules no longer take; ignored"
        );
    }
    None
}

/// The live set parsed and compiled, as of one read of the campaigns.
#[derive(Debug)]
pub struct LiveSet {
    /// Each live campaign's id and version: a campaign's promotion changes only with its version.
    key: Vec<(String, i64)>,
    pub promotions: Vec<Promotion>,
    pub pricer: Pricer,
    /// The live campaigns that limit how often one customer gets them, with their limits.
    pub per_customer: Vec<(String, i64)>,
}

impl LiveSet {
    /// The live campaigns `user` has had as often as they allow (each a read of its count): the
    /// customer's `used_up` for pricing.
    pub async fn used_up_by(
        &self,
        store: &Store,
        user: &str,
    ) -> shopgrowth_store::Result<std::collections::BTreeSet<String>> {
        let mut used_up = std::collections::BTreeSet::new();
        for (campaign, limit) in &self.per_customer {
            if store
                .budget_used(campaign_uses_line(campaign, user))
                .await?
                >= *limit
            {
                used_up.insert(campaign.clone());
            }
        }
        Ok(used_up)
    }
}

/// The live set, parsed and compiled again only when it changes: which campaigns are live (a
/// start, a pause, an end, a budget spent) is read from the store every time, so a quote never
/// prices with a campaign that is no longer live; only the parsing and compiling are saved.
#[derive(Debug, Default)]
pub struct LivePromotions {
    last: std::sync::Mutex<Option<Arc<LiveSet>>>,
}

impl LivePromotions {
    /// The live set now, in the shop's time zone `tz` (for campaigns that recur).
    pub async fn get(
        &self,
        store: &Store,
        tz: chrono_tz::Tz,
    ) -> shopgrowth_store::Result<Arc<LiveSet>> {
        let live = live_campaigns(store, tz).await?;
        let key: Vec<(String, i64)> = live.iter().map(|c| (c.id.clone(), c.version)).collect();
        let last = self.last.lock().map(|l| l.clone()).unwrap_or_default();
        if let Some(set) = last.filter(|s| s.key == key) {
            return Ok(set);
        }
        let promotions: Vec<Promotion> = live.iter().filter_map(parse_promotion).collect();
        let per_customer = live
            .iter()
            .filter_map(|c| Some((c.id.clone(), c.per_customer_limit?)))
            .collect();
        let set = Arc::new(LiveSet {
            key,
            pricer: Pricer::new(&promotions),
            promotions,
            per_customer,
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

/// The budget spend of one coupon on one order (its redemption's `discount`).
pub fn redemption_budget_key(code: &str, order_id: &str) -> String {
    format!("coupon-redemption:{code}:{order_id}")
}

/// What an order's kept checkout answer says a refund gives back: per order line (by position)
/// its units and what each promotion took off it, and per promotion the budget spend its
/// discount was paid from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutShares {
    lines: Vec<(i64, Vec<(String, i64)>)>,
    /// By the quote's promotion id (a campaign's id, `coupon:CODE`): the share's spend, type,
    /// promotion id and trail subject.
    spends: BTreeMap<String, ShareReturn>,
}

impl CheckoutShares {
    /// Reads a kept checkout answer (`POST /api/v1/pricing/checkout`'s body): its campaigns'
    /// spends are its `budget_keys`, in the order of the campaigns among `quote.applied`; a
    /// coupon's is its redemption's (`template_of` gives each coupon code's template; a coupon
    /// it does not know gives nothing back). `None` for an answer it cannot read.
    pub fn of_checkout(
        order_id: &str,
        answer: &serde_json::Value,
        template_of: &dyn Fn(&str) -> Option<String>,
    ) -> Option<CheckoutShares> {
        let v = answer;
        let quote = v.get("quote")?;
        let mut lines: Vec<(i64, Vec<(String, i64)>)> = quote
            .get("lines")?
            .as_array()?
            .iter()
            .map(|l| Some((l.get("quantity")?.as_i64()?, Vec::new())))
            .collect::<Option<_>>()?;
        let mut keys = v.get("budget_keys")?.as_array()?.iter();
        let mut spends = BTreeMap::new();
        for a in quote.get("applied")?.as_array()? {
            let id = a.get("id")?.as_str()?;
            for pair in a.get("allocation")?.as_array()? {
                let line = usize::try_from(pair.get(0)?.as_u64()?).ok()?;
                lines
                    .get_mut(line)?
                    .1
                    .push((id.to_owned(), pair.get(1)?.as_i64()?));
            }
            let share = match id.strip_prefix("coupon:") {
                // A coupon no longer stored (its customer's data erased) has no budget to give
                // back to; the campaigns' shares still go back.
                Some(code) => match template_of(code) {
                    Some(template) => ShareReturn {
                        spend_key: redemption_budget_key(code, order_id),
                        promotion_type: "coupon".into(),
                        promotion_id: template,
                        subject: code.to_owned(),
                        amount: 0,
                    },
                    None => continue,
                },
                None => {
                    let key = keys.next()?.as_str()?.to_owned();
                    ShareReturn {
                        subject: key.clone(),
                        spend_key: key,
                        promotion_type: "campaign".into(),
                        promotion_id: id.to_owned(),
                        amount: 0,
                    }
                }
            };
            spends.insert(id.to_owned(), share);
        }
        Some(CheckoutShares { lines, spends })
    }

    /// Each promotion's share of a refund of `units` (order line, units) after earlier refunds
    /// returned `before` (order line → units): what the quote allocated to those units, units
    /// beyond what a line has left counting for nothing.
    pub fn shares(&self, units: &[(i64, i64)], before: &BTreeMap<i64, i64>) -> Vec<ShareReturn> {
        let paid: Vec<PaidLine> = self
            .lines
            .iter()
            .enumerate()
            .filter(|(_, (quantity, discounts))| {
                !discounts.is_empty() && (1..=1_000_000).contains(quantity)
            })
            .map(|(i, (quantity, discounts))| {
                let at = i as i64;
                let already = before.get(&at).copied().unwrap_or(0).clamp(0, *quantity);
                let now: i64 = units.iter().filter(|(l, _)| *l == at).map(|(_, u)| u).sum();
                PaidLine {
                    quantity: *quantity,
                    discounts: discounts.clone(),
                    already_refunded: already,
                    refunded: now.clamp(0, quantity - already),
                }
            })
            .collect();
        let Ok(shares) = refund_shares(&paid) else {
            return Vec::new();
        };
        shares
            .into_iter()
            .filter(|(_, amount)| *amount > 0)
            .filter_map(|(id, amount)| {
                let spend = self.spends.get(&id)?;
                Some(ShareReturn {
                    amount,
                    ..spend.clone()
                })
            })
            .collect()
    }
}

/// Gives back, when refund `refund_id` returns `units` (order line, units) of an order checked
/// out here, each promotion's share of the discount those units carried to the budget it was
/// spent from (docs/pricing.md, "Refunds give back their share"). `None` for an order not
/// checked out here.
pub async fn return_refund_shares(
    store: &Store,
    order_id: &str,
    refund_id: &str,
    units: Vec<(i64, i64)>,
    now: i64,
) -> shopgrowth_store::Result<Option<SharesReturned>> {
    let Some(kept) = store.checkout(order_id.to_owned()).await? else {
        return Ok(None);
    };
    let answer = serde_json::from_str::<serde_json::Value>(&kept.response).unwrap_or_default();
    // Each coupon's template, looked up before the write.
    let mut templates = BTreeMap::new();
    let codes = answer["quote"]["applied"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["id"].as_str()?.strip_prefix("coupon:"));
    for code in codes {
        if let Some(c) = store.coupon(code.to_owned()).await? {
            templates.insert(code.to_owned(), c.template_id);
        }
    }
    let Some(shares) =
        CheckoutShares::of_checkout(order_id, &answer, &|code| templates.get(code).cloned())
    else {
        tracing::warn!(
            order_id,
            "a kept checkout answer could not be read for a refund"
        );
        return Ok(None);
    };
    let plan_units = units.clone();
    let plan: SharePlan = Box::new(move |before| shares.shares(&plan_units, before));
    store
        .return_refund_shares(order_id.to_owned(), refund_id.to_owned(), units, plan, now)
        .await
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopgrowth_promo::pricing::Rule;

    #[test]
    fn a_stored_rule_with_a_field_rules_no_longer_take_still_loads_as_before() {
        let stored = r#"{"id": "c1", "name": "九折", "stacking": "exclusive",
            "rule": {"type": "percent_off", "percent_bp": 1000, "threhsold": 30000}}"#;
        // Input is refused, naming the field...
        let value: serde_json::Value = serde_json::from_str(stored).unwrap_or_default();
        let refused = shopgrowth_core::json::from_value::<Promotion>(&value).err();
        assert_eq!(refused.map(|e| e.field), Some("rule.threhsold".to_owned()));
        // ...but what was stored before prices as it did: the field ignored.
        let loaded = stored_promotion("c1", stored).map(|p| p.rule);
        assert_eq!(
            loaded,
            Some(Rule::PercentOff {
                percent_bp: 1000,
                threshold: 0,
                cap: None
            })
        );
        assert!(stored_promotion("c1", r#"{"id": "c1"}"#).is_none());
    }

    #[test]
    fn a_kept_checkout_gives_each_refund_the_share_of_its_units() {
        // Two lines: a campaign took 1,001 off line 0 (3 units) and 500 off line 1 (2 units);
        // the coupon took 300 off line 0.
        let answer = r#"{"order_id": "o1", "budget_keys": ["checkout:o1:d11:ab"],
            "quote": {"lines": [{"quantity": 3}, {"quantity": 2}],
            "applied": [
                {"id": "d11", "allocation": [[0, 1001], [1, 500]]},
                {"id": "coupon:NEW10AB", "allocation": [[0, 300]]}]}}"#;
        let templates = |code: &str| (code == "NEW10AB").then(|| "new10".to_owned());
        let answer: serde_json::Value = serde_json::from_str(answer).unwrap_or_default();
        let Some(shares) = CheckoutShares::of_checkout("o1", &answer, &templates) else {
            panic!("a kept answer is read");
        };
        let amounts = |units: &[(i64, i64)], before: &[(i64, i64)]| -> Vec<(String, String, i64)> {
            shares
                .shares(units, &before.iter().copied().collect())
                .into_iter()
                .map(|s| (s.spend_key, s.promotion_id, s.amount))
                .collect()
        };
        let campaign = |amount| ("checkout:o1:d11:ab".to_owned(), "d11".to_owned(), amount);
        let coupon = |amount| {
            (
                "coupon-redemption:NEW10AB:o1".to_owned(),
                "new10".to_owned(),
                amount,
            )
        };
        // By the quote's promotion id; the first unit of line 0 carries the extra cent.
        assert_eq!(amounts(&[(0, 1)], &[]), [coupon(100), campaign(334)]);
        assert_eq!(amounts(&[(0, 2)], &[(0, 1)]), [coupon(200), campaign(667)]);
        // Units beyond what a line has left count for nothing; a line the quote never discounted
        // gives nothing.
        assert_eq!(
            amounts(&[(0, 5), (7, 1)], &[(0, 2)]),
            [coupon(100), campaign(333)]
        );
        assert!(amounts(&[(0, 1)], &[(0, 3)]).is_empty());
        assert_eq!(amounts(&[(1, 2)], &[]), [campaign(500)]);
        // An answer it cannot read gives nothing to go on; a coupon it does not know gives
        // nothing back, the campaign's share still does.
        assert_eq!(
            CheckoutShares::of_checkout("o1", &serde_json::json!({}), &templates),
            None
        );
        let unknown = CheckoutShares::of_checkout("o1", &answer, &|_| None)
            .map(|s| s.shares(&[(0, 1)], &BTreeMap::new()).len());
        assert_eq!(unknown, Some(1));
    }

    proptest::proptest! {
        /// However an order's units are refunded, in steps of any size and order, what comes
        /// back of each promotion adds up to exactly what the quote allocated it.
        #[test]
        fn refunds_in_any_steps_give_back_exactly_each_discount(
            lines in proptest::collection::vec((1i64..6, 0i64..5_000, 0i64..3_000), 1..5),
            steps in proptest::collection::vec((0usize..5, 1i64..4), 1..30),
        ) {
            let applied: Vec<serde_json::Value> = vec![
                serde_json::json!({"id": "d11", "allocation": lines.iter().enumerate()
                    .map(|(i, l)| serde_json::json!([i, l.1])).collect::<Vec<_>>()}),
                serde_json::json!({"id": "coupon:C1", "allocation": lines.iter().enumerate()
                    .map(|(i, l)| serde_json::json!([i, l.2])).collect::<Vec<_>>()}),
            ];
            let answer = serde_json::json!({"budget_keys": ["k"], "quote": {
                "lines": lines.iter().map(|l| serde_json::json!({"quantity": l.0})).collect::<Vec<_>>(),
                "applied": applied}});
            let shares = CheckoutShares::of_checkout("o", &answer, &|_| Some("t".into()));
            proptest::prop_assert!(shares.is_some());
            let shares = shares.unwrap_or_default();
            let mut before: BTreeMap<i64, i64> = BTreeMap::new();
            let mut back: BTreeMap<String, i64> = BTreeMap::new();
            // The steps, then whatever is left of every line.
            let rest: Vec<(usize, i64)> = (0..lines.len()).map(|i| (i, 1_000)).collect();
            for (line, units) in steps.into_iter().chain(rest) {
                let line = (line % lines.len()) as i64;
                for s in shares.shares(&[(line, units)], &before) {
                    *back.entry(s.promotion_type).or_default() += s.amount;
                }
                let q = lines[line as usize].0;
                let done = before.entry(line).or_default();
                *done = (*done + units).min(q);
            }
            let campaign: i64 = lines.iter().map(|l| l.1).sum();
            let coupon: i64 = lines.iter().map(|l| l.2).sum();
            proptest::prop_assert_eq!(back.get("campaign").copied().unwrap_or(0), campaign);
            proptest::prop_assert_eq!(back.get("coupon").copied().unwrap_or(0), coupon);
        }
    }
}
