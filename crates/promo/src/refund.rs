//! What a partial refund takes back of each promotion: exactly the share the order's discount
//! gave the refunded units, so that refunds in any number of steps return, in total, exactly the
//! discount — never a cent more or less.
//!
//! A line's discount from one promotion (as the quote allocated it, [`crate::pricing::Applied`])
//! is spread over the line's units by largest remainder with equal weights, so the first units
//! carry the extra cents; refunds take units in order. Refunding `r` units after `a` were refunded
//! returns the shares of units `a..a + r`.

use shopgrowth_core::money::allocate;
use std::collections::BTreeMap;

/// One paid line: its units and what each promotion took off it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidLine {
    pub quantity: i64,
    /// (promotion id, amount) as the quote allocated it to this line.
    pub discounts: Vec<(String, i64)>,
    /// Units refunded before this refund.
    pub already_refunded: i64,
    /// Units this refund returns.
    pub refunded: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    /// The line's `field` (`quantity`, `refunded`, `discounts[0].amount`) is wrong.
    #[error("line {line}, {field}: {reason}")]
    Line {
        line: usize,
        field: String,
        reason: String,
    },
}

/// The discount each promotion gave the refunded units, by promotion id.
pub fn refund_shares(lines: &[PaidLine]) -> Result<BTreeMap<String, i64>, RefundError> {
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        let bad = |field: &str, reason: String| RefundError::Line {
            line: i,
            field: field.to_owned(),
            reason,
        };
        if l.quantity < 1 || l.quantity > 1_000_000 {
            return Err(bad(
                "quantity",
                format!("{} is not between 1 and 1,000,000", l.quantity),
            ));
        }
        if l.already_refunded < 0 {
            return Err(bad("already_refunded", "must not be negative".into()));
        }
        if l.refunded < 0 {
            return Err(bad("refunded", "must not be negative".into()));
        }
        if l.already_refunded + l.refunded > l.quantity {
            return Err(bad(
                "refunded",
                format!(
                    "{} units refunded before and {} now, but the line has {}",
                    l.already_refunded, l.refunded, l.quantity
                ),
            ));
        }
        if let Some(k) = l.discounts.iter().position(|(_, amount)| *amount < 0) {
            return Err(bad(
                &format!("discounts[{k}].amount"),
                "a discount is not negative".into(),
            ));
        }
        let from = l.already_refunded as usize;
        let to = from + l.refunded as usize;
        for (promotion, amount) in &l.discounts {
            let per_unit = allocate(*amount, &vec![1; l.quantity as usize]);
            *out.entry(promotion.clone()).or_default() += per_unit[from..to].iter().sum::<i64>();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(quantity: i64, discount: i64, before: i64, now: i64) -> PaidLine {
        PaidLine {
            quantity,
            discounts: vec![("满减".into(), discount)],
            already_refunded: before,
            refunded: now,
        }
    }

    #[test]
    fn one_of_three_units_takes_its_share_with_the_extra_cent_first() {
        // 1,000 over 3 units: 334, 333, 333.
        assert_eq!(
            refund_shares(&[line(3, 1000, 0, 1)])
                .ok()
                .and_then(|m| m.get("满减").copied()),
            Some(334)
        );
        assert_eq!(
            refund_shares(&[line(3, 1000, 1, 2)])
                .ok()
                .and_then(|m| m.get("满减").copied()),
            Some(666)
        );
        let field = |lines: &[PaidLine]| match refund_shares(lines) {
            Err(RefundError::Line { line, field, .. }) => Some((line, field)),
            Ok(_) => None,
        };
        assert_eq!(
            field(&[line(3, 1000, 0, 1), line(3, 1000, 2, 2)]),
            Some((1, "refunded".to_owned())),
            "more than the line has"
        );
        assert_eq!(
            field(&[line(3, -1, 0, 1)]),
            Some((0, "discounts[0].amount".to_owned())),
            "a negative discount"
        );
    }

    proptest! {
        /// Refunding every unit, in any steps, returns exactly each promotion's discount.
        #[test]
        fn steps_add_up_to_the_whole_discount(
            lines in proptest::collection::vec((1i64..20, 0i64..100_000, 0i64..50_000), 1..6),
            step in 1i64..7,
        ) {
            let mut returned: BTreeMap<String, i64> = BTreeMap::new();
            let mut done: Vec<i64> = vec![0; lines.len()];
            while done.iter().zip(&lines).any(|(d, l)| *d < l.0) {
                let paid: Vec<PaidLine> = lines
                    .iter()
                    .zip(&done)
                    .map(|(&(q, a, b), &d)| PaidLine {
                        quantity: q,
                        discounts: vec![("a".into(), a), ("b".into(), b)],
                        already_refunded: d,
                        refunded: step.min(q - d),
                    })
                    .collect();
                for (d, p) in done.iter_mut().zip(&paid) {
                    *d += p.refunded;
                }
                let shares = refund_shares(&paid);
                prop_assert!(shares.is_ok());
                for (promo, v) in shares.unwrap_or_default() {
                    *returned.entry(promo).or_default() += v;
                }
            }
            prop_assert_eq!(returned.get("a").copied().unwrap_or(0), lines.iter().map(|l| l.1).sum::<i64>());
            prop_assert_eq!(returned.get("b").copied().unwrap_or(0), lines.iter().map(|l| l.2).sum::<i64>());
        }
    }
}
