//! What the promotion trail says about each promotion: how many coupons, reservations, shares and
//! seats were issued, claimed, reserved, redeemed, rolled back and expired, for how many users and
//! how much money, and the conversion that matters for its type.
//!
//! The store counts the trail per promotion and kind; [`report`] turns those tallies into one
//! [`PromotionReport`] per promotion. Conversions:
//! - **coupon**: redeemed ÷ received (issued + claimed) — the redemption rate;
//! - **flash sale**: redeemed ÷ reserved — reservations that were paid;
//! - **group buy**: redeemed ÷ reserved — seats in groups that filled;
//! - **red packet**: amount claimed ÷ amount issued — the money taken up;
//! - **campaign**: orders that kept the discount ÷ orders discounted ((redeemed − rolled back) ÷
//!   redeemed). A refund's share given back (`refunded`) leaves the order counted as kept; its
//!   money counts as returned.

use serde::Serialize;
use shopgrowth_core::model::{PromotionKind, PromotionType};
use std::collections::BTreeMap;

/// Trail entries of one kind for one promotion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally<'a> {
    pub promotion: PromotionType,
    pub id: &'a str,
    pub kind: PromotionKind,
    pub events: u64,
    /// Distinct users among them.
    pub users: u64,
    /// Sum of their amounts, minor units.
    pub amount: i64,
}

/// One promotion's funnel.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PromotionReport {
    pub promotion_type: String,
    pub promotion_id: String,
    pub issued: u64,
    pub claimed: u64,
    pub reserved: u64,
    pub redeemed: u64,
    pub rolled_back: u64,
    pub expired: u64,
    /// Shares of kept discounts that refunds gave back (campaigns, coupons with budgets).
    pub refunded: u64,
    /// Distinct users at the funnel's first step (coupons: received, counting a user who both
    /// claimed and was issued one twice; flash sales and groups: reserved; red packets: claimed).
    pub users_reached: u64,
    /// Distinct users at its last step (redeemed; red packets: claimed).
    pub users_converted: u64,
    /// Money that went to customers, minor units: flash-sale and group purchases at their
    /// prices, red-packet shares claimed, campaign discounts given.
    pub amount_converted: i64,
    /// Money that came back: red-packet remainders, flash-sale holds given up or lapsed, campaign
    /// discounts of cancelled orders and the shares refunds gave back.
    pub amount_returned: i64,
    /// The type's conversion (see the module), 0–1; `None` before its first step happened.
    pub conversion: Option<f64>,
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// One report per promotion, in type then id order.
pub fn report<'a>(tallies: impl IntoIterator<Item = Tally<'a>>) -> Vec<PromotionReport> {
    let mut by: BTreeMap<(&'a str, &'a str), (PromotionType, Vec<Tally<'a>>)> = BTreeMap::new();
    for t in tallies {
        by.entry((t.promotion.as_str(), t.id))
            .or_insert_with(|| (t.promotion, Vec::new()))
            .1
            .push(t);
    }
    by.into_iter()
        .map(|((_, id), (promotion, tallies))| funnel(promotion, id, &tallies))
        .collect()
}

fn funnel(promotion: PromotionType, id: &str, tallies: &[Tally<'_>]) -> PromotionReport {
    use PromotionKind as K;
    use PromotionType as T;
    let of = |kind: PromotionKind| {
        tallies
            .iter()
            .filter(|t| t.kind == kind)
            .fold((0u64, 0u64, 0i64), |(e, u, a), t| {
                (e + t.events, u + t.users, a + t.amount)
            })
    };
    let (issued, claimed, reserved, redeemed, rolled_back, expired, refunded) = (
        of(K::Issued),
        of(K::Claimed),
        of(K::Reserved),
        of(K::Redeemed),
        of(K::RolledBack),
        of(K::Expired),
        of(K::Refunded),
    );
    let (users_reached, users_converted, amount_converted, amount_returned, conversion) =
        match promotion {
            T::Coupon => (
                issued.1 + claimed.1,
                redeemed.1,
                0,
                0,
                ratio(redeemed.0, issued.0 + claimed.0),
            ),
            T::FlashSale | T::GroupBuy => (
                reserved.1,
                redeemed.1,
                redeemed.2,
                if promotion == T::FlashSale {
                    rolled_back.2 + expired.2
                } else {
                    0
                },
                ratio(redeemed.0, reserved.0),
            ),
            T::RedPacket => (
                claimed.1,
                claimed.1,
                claimed.2,
                expired.2,
                (issued.2 > 0).then(|| claimed.2 as f64 / issued.2 as f64),
            ),
            T::Campaign => (
                redeemed.1,
                redeemed.1,
                redeemed.2,
                rolled_back.2 + refunded.2,
                ratio(redeemed.0.saturating_sub(rolled_back.0), redeemed.0),
            ),
        };
    PromotionReport {
        promotion_type: promotion.as_str().to_owned(),
        promotion_id: id.to_owned(),
        issued: issued.0,
        claimed: claimed.0,
        reserved: reserved.0,
        redeemed: redeemed.0,
        rolled_back: rolled_back.0,
        expired: expired.0,
        refunded: refunded.0,
        users_reached,
        users_converted,
        amount_converted,
        amount_returned,
        conversion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PromotionKind as K;
    use PromotionType as T;

    fn t(
        promotion: PromotionType,
        id: &str,
        kind: PromotionKind,
        events: u64,
        users: u64,
        amount: i64,
    ) -> Tally<'_> {
        Tally {
            promotion,
            id,
            kind,
            events,
            users,
            amount,
        }
    }

    #[test]
    fn funnels_by_hand() {
        let r = report([
            t(T::RedPacket, "rp", K::Issued, 1, 1, 10_000),
            t(T::Coupon, "new10", K::Issued, 800, 800, 0),
            t(T::Coupon, "new10", K::Claimed, 200, 190, 0),
            t(T::Coupon, "new10", K::Redeemed, 250, 240, 0),
            t(T::Coupon, "new10", K::RolledBack, 10, 10, 0),
            t(T::FlashSale, "fs", K::Reserved, 100, 90, 1_000_000),
            t(T::FlashSale, "fs", K::Redeemed, 60, 55, 600_000),
            t(T::FlashSale, "fs", K::Expired, 30, 30, 300_000),
            t(T::FlashSale, "fs", K::RolledBack, 10, 10, 100_000),
            t(T::RedPacket, "rp", K::Claimed, 8, 8, 7_500),
            t(T::RedPacket, "rp", K::Expired, 1, 1, 2_500),
        ]);
        let ids: Vec<(&str, &str)> = r
            .iter()
            .map(|p| (p.promotion_type.as_str(), p.promotion_id.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("coupon", "new10"),
                ("flash_sale", "fs"),
                ("red_packet", "rp")
            ]
        );
        let coupon = &r[0];
        assert_eq!(
            (coupon.issued, coupon.claimed, coupon.redeemed),
            (800, 200, 250)
        );
        assert_eq!((coupon.users_reached, coupon.users_converted), (990, 240));
        assert_eq!(coupon.conversion, Some(0.25));
        let flash = &r[1];
        assert_eq!(flash.conversion, Some(0.6));
        assert_eq!(
            (flash.amount_converted, flash.amount_returned),
            (600_000, 400_000)
        );
        assert_eq!((flash.users_reached, flash.users_converted), (90, 55));
        let packet = &r[2];
        assert_eq!(packet.conversion, Some(0.75));
        assert_eq!(
            (packet.amount_converted, packet.amount_returned),
            (7_500, 2_500)
        );
        assert_eq!(
            packet.amount_converted + packet.amount_returned,
            10_000,
            "a packet's money is all accounted for"
        );
    }

    #[test]
    fn a_campaign_counts_orders_that_kept_its_discount() {
        let r = report([
            t(T::Campaign, "d11", K::Redeemed, 40, 35, 200_000),
            t(T::Campaign, "d11", K::RolledBack, 10, 9, 50_000),
            t(T::Campaign, "d11", K::Refunded, 4, 4, 3_000),
        ]);
        let c = &r[0];
        assert_eq!(c.promotion_type, "campaign");
        assert_eq!((c.redeemed, c.rolled_back, c.refunded), (40, 10, 4));
        // Partly refunded orders still kept the discount; the shares came back.
        assert_eq!(c.conversion, Some(0.75));
        assert_eq!((c.amount_converted, c.amount_returned), (200_000, 53_000));
        assert_eq!((c.users_reached, c.users_converted), (35, 35));
    }

    #[test]
    fn nothing_yet_has_no_conversion() {
        let r = report([t(T::GroupBuy, "d", K::RolledBack, 3, 3, 0)]);
        assert_eq!(r[0].conversion, None);
        assert!(report([]).is_empty());
    }
}
