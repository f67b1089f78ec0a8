//! Money as integer minor units (分, pence, cents) with a currency. No floats anywhere.

use serde::{Deserialize, Serialize};

/// ISO 4217 code, three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[schema(value_type = String, example = "CNY")]
pub struct Currency([u8; 3]);

impl Currency {
    pub const CNY: Currency = Currency(*b"CNY");
    pub const GBP: Currency = Currency(*b"GBP");
    pub const USD: Currency = Currency(*b"USD");

    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let bytes = code.as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_uppercase) => Ok(Currency([*a, *b, *c])),
            _ => Err(MoneyError::BadCurrency(code.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only upper-case ASCII is ever stored, see `parse`.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Decimal digits of the minor unit (2 for CNY: 1 元 = 100 分).
    pub fn minor_digits(&self) -> u32 {
        match &self.0 {
            b"JPY" | b"KRW" | b"VND" | b"CLP" | b"ISK" => 0,
            b"BHD" | b"KWD" | b"OMR" | b"JOD" | b"TND" => 3,
            _ => 2,
        }
    }

    pub fn symbol(&self) -> &str {
        match &self.0 {
            b"CNY" => "¥",
            b"GBP" => "£",
            b"USD" => "$",
            b"EUR" => "€",
            _ => self.as_str(),
        }
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount in minor units of a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }
}

impl std::fmt::Display for Money {
    /// `¥12.50`, `-£0.30`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.currency.minor_digits();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if digits == 0 {
            return write!(f, "{sign}{}{abs}", self.currency.symbol());
        }
        let scale = 10u64.pow(digits);
        write!(
            f,
            "{sign}{}{}.{:0width$}",
            self.currency.symbol(),
            abs / scale,
            abs % scale,
            width = digits as usize
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency {0:?} is not a three-letter upper-case ISO 4217 code")]
    BadCurrency(String),
    #[error("{0:?} is not a decimal number")]
    NotANumber(String),
    #[error("{value:?} has more decimal places than the currency's minor unit ({digits})")]
    SubMinorUnit { value: String, digits: u32 },
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// How a decimal with more places than the minor unit becomes minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Refuse any value that is not a whole number of minor units.
    Exact,
    /// Round half away from zero (商业四舍五入).
    HalfUp,
    /// Round half to even (banker's rounding).
    HalfEven,
}

/// Parses a decimal string (`"2.55"`, `"-3"`, `"1e2"` is refused) into minor units with `digits` places.
pub fn parse_minor(text: &str, digits: u32, rounding: Rounding) -> Result<i64, MoneyError> {
    let s = text.trim();
    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((i, f)) => (i, f),
        None => (unsigned, ""),
    };
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(MoneyError::NotANumber(text.to_owned()));
    }
    let overflow = || MoneyError::Overflow(text.to_owned());
    let mut minor: i64 = 0;
    for b in int_part.bytes() {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(b - b'0')))
            .ok_or_else(overflow)?;
    }
    let frac = frac_part.as_bytes();
    for i in 0..digits as usize {
        let d = frac.get(i).map_or(0, |b| i64::from(b - b'0'));
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(d))
            .ok_or_else(overflow)?;
    }
    let rest = frac.get(digits as usize..).unwrap_or(&[]);
    if rest.iter().any(|&b| b != b'0') {
        let round_up = match rounding {
            Rounding::Exact => {
                return Err(MoneyError::SubMinorUnit {
                    value: text.to_owned(),
                    digits,
                });
            }
            Rounding::HalfUp => rest[0] >= b'5',
            Rounding::HalfEven => {
                let above_half =
                    rest[0] > b'5' || (rest[0] == b'5' && rest[1..].iter().any(|&b| b != b'0'));
                let exactly_half = rest[0] == b'5' && !above_half;
                above_half || (exactly_half && minor % 2 == 1)
            }
        };
        if round_up {
            minor = minor.checked_add(1).ok_or_else(overflow)?;
        }
    }
    Ok(if negative { -minor } else { minor })
}

/// Splits `total` minor units over parts in proportion to `weights`, exactly: each part gets the
/// floor of its share, and the units left over go one each to the largest fractional remainders
/// (ties to the earlier part). The parts always sum to `total`. With no positive weight, all
/// of it goes to the first part.
pub fn allocate(total: i64, weights: &[i64]) -> Vec<i64> {
    let mut parts = Vec::with_capacity(weights.len());
    allocate_into(total, weights, &mut parts, &mut Vec::new());
    parts
}

/// [`allocate`] into `parts` (cleared first), with `remainders` as scratch space: no allocation
/// once both have grown to the number of weights. Shares are worked out in 64-bit arithmetic
/// where the products fit, else in 128-bit; the result is the same.
pub fn allocate_into(
    total: i64,
    weights: &[i64],
    parts: &mut Vec<i64>,
    remainders: &mut Vec<u128>,
) {
    parts.clear();
    remainders.clear();
    if weights.is_empty() {
        return;
    }
    // The common case (a non-negative total and weights, both under 2^32): every product fits
    // in 64 bits, and a remainder and its index in one `u64`-sized key.
    let small = u64::try_from(total)
        .ok()
        .filter(|&t| t <= u64::from(u32::MAX));
    if let Some(total64) = small {
        let mut sum = 0u64;
        let fits = weights.iter().all(|&w| {
            sum += u64::try_from(w.max(0)).unwrap_or(u64::MAX >> 1);
            sum <= u64::from(u32::MAX)
        });
        if fits && sum > 0 {
            let mut given = 0u64;
            for (i, &w) in weights.iter().enumerate() {
                let exact = total64 * w.max(0) as u64;
                let part = exact / sum;
                given += part;
                parts.push(part as i64);
                remainders.push(u128::from(
                    ((exact - part * sum) << 32) | u64::from(!(i as u32)),
                ));
            }
            // Each part lost less than one unit, so fewer are left than there are parts.
            let extra = (total64 - given) as usize;
            if extra > 0 {
                remainders.select_nth_unstable_by(extra - 1, |a, b| b.cmp(a));
                for &key in &remainders[..extra] {
                    parts[!(key as u32) as usize] += 1;
                }
            }
            debug_assert_eq!(total, parts.iter().sum::<i64>());
            return;
        }
    }
    let sum: i128 = weights.iter().map(|&w| i128::from(w.max(0))).sum();
    if sum == 0 {
        parts.resize(weights.len(), 0);
        parts[0] = total;
        return;
    }
    let small = i64::try_from(sum).ok().filter(|_| {
        weights
            .iter()
            .all(|&w| total.checked_mul(w.max(0)).is_some())
    });
    for (i, &w) in weights.iter().enumerate() {
        let (part, rem) = match small {
            Some(sum64) => {
                let exact = total * w.max(0);
                (exact.div_euclid(sum64), i128::from(exact.rem_euclid(sum64)))
            }
            None => {
                let exact = i128::from(total) * i128::from(w.max(0));
                ((exact.div_euclid(sum)) as i64, exact.rem_euclid(sum))
            }
        };
        parts.push(part);
        // The remainder and its index in one integer, so one compare orders them: the larger
        // remainder first, then the earlier index (`!i` in the low bits). A remainder is below
        // the sum, so under 2^96 for any slice of weights that fits in memory.
        remainders.push(((rem as u128) << 32) | u128::from(!(i as u32)));
    }
    let index = |key: u128| !(key as u32) as usize;
    let left = total - parts.iter().sum::<i64>();
    let extra = left.unsigned_abs() as usize;
    if left > 0 && extra < remainders.len() {
        // Only which `left` remainders are largest matters, not their order.
        remainders.select_nth_unstable_by(extra - 1, |a, b| b.cmp(a));
        for &key in &remainders[..extra] {
            parts[index(key)] += 1;
        }
    } else if left != 0 {
        remainders.sort_unstable_by(|a, b| b.cmp(a));
        for &key in remainders.iter().cycle().take(extra) {
            parts[index(key)] += left.signum();
        }
    }
    debug_assert_eq!(total, parts.iter().sum::<i64>());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn allocation_examples() {
        assert_eq!(allocate(100, &[1, 1, 1]), [34, 33, 33]);
        assert_eq!(allocate(4000, &[19900, 9900, 12000]), [1904, 948, 1148]);
        assert_eq!(allocate(7, &[0, 0]), [7, 0]);
        assert_eq!(allocate(-5, &[1, 1]), [-2, -3]);
    }

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(parse_minor("2.55", 2, Rounding::Exact), Ok(255));
        assert_eq!(parse_minor("0.0", 2, Rounding::Exact), Ok(0));
        assert_eq!(parse_minor("-11062.06", 2, Rounding::Exact), Ok(-1106206));
        assert_eq!(parse_minor("7", 2, Rounding::Exact), Ok(700));
        assert_eq!(parse_minor(".5", 2, Rounding::Exact), Ok(50));
        assert_eq!(parse_minor("12.300", 2, Rounding::Exact), Ok(1230));
    }

    #[test]
    fn rounding_is_explicit() {
        assert!(matches!(
            parse_minor("0.001", 2, Rounding::Exact),
            Err(MoneyError::SubMinorUnit { .. })
        ));
        assert_eq!(parse_minor("0.005", 2, Rounding::HalfUp), Ok(1));
        assert_eq!(parse_minor("0.005", 2, Rounding::HalfEven), Ok(0));
        assert_eq!(parse_minor("0.015", 2, Rounding::HalfEven), Ok(2));
        assert_eq!(parse_minor("0.0051", 2, Rounding::HalfEven), Ok(1));
        assert_eq!(parse_minor("-0.005", 2, Rounding::HalfUp), Ok(-1));
    }

    #[test]
    fn refuses_garbage() {
        for bad in ["", "-", "abc", "1.2.3", "1e2", "٣", "1,00"] {
            assert!(parse_minor(bad, 2, Rounding::Exact).is_err(), "{bad:?}");
        }
        assert!(matches!(
            parse_minor("99999999999999999999", 2, Rounding::Exact),
            Err(MoneyError::Overflow(_))
        ));
    }

    #[test]
    fn displays_major_units() {
        assert_eq!(Money::new(1250, Currency::CNY).to_string(), "¥12.50");
        assert_eq!(Money::new(-30, Currency::GBP).to_string(), "-£0.30");
        assert_eq!(
            Money::new(500, Currency::parse("JPY").unwrap_or(Currency::CNY)).to_string(),
            "JPY500"
        );
    }

    /// Every share in 128 bits, remainders sorted, one unit each: what [`allocate`] must equal.
    fn reference_allocation(total: i64, weights: &[i64]) -> Vec<i64> {
        let sum: i128 = weights.iter().map(|&w| i128::from(w)).sum();
        if sum == 0 {
            let mut want = vec![0; weights.len()];
            want[0] = total;
            return want;
        }
        let mut want: Vec<i64> = Vec::new();
        let mut rem: Vec<(i128, usize)> = Vec::new();
        for (i, &w) in weights.iter().enumerate() {
            let exact = i128::from(total) * i128::from(w);
            want.push(exact.div_euclid(sum) as i64);
            rem.push((exact.rem_euclid(sum), i));
        }
        rem.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let left = total - want.iter().sum::<i64>();
        for &(_, i) in rem.iter().cycle().take(left.unsigned_abs() as usize) {
            want[i] += left.signum();
        }
        want
    }

    proptest! {
        #[test]
        fn allocations_sum_exactly(total in -1_000_000_000i64..1_000_000_000, weights in proptest::collection::vec(0i64..10_000_000, 1..40)) {
            let parts = allocate(total, &weights);
            prop_assert_eq!(parts.iter().sum::<i64>(), total);
            prop_assert_eq!(parts.len(), weights.len());
            let wsum: i128 = weights.iter().map(|&w| i128::from(w)).sum();
            if wsum > 0 {
                for (p, w) in parts.iter().zip(&weights) {
                    let exact = i128::from(total) * i128::from(*w);
                    // each part is within one unit of its exact share
                    prop_assert!((i128::from(*p) * wsum - exact).abs() <= wsum);
                }
            }
        }

        #[test]
        fn the_64_bit_path_matches_128_bit_arithmetic(
            total in -1_000_000_000_000i64..1_000_000_000_000,
            weights in proptest::collection::vec(0i64..4_000_000_000_000, 1..12),
        ) {
            prop_assert_eq!(allocate(total, &weights), reference_allocation(total, &weights));
        }

        #[test]
        fn the_32_bit_path_matches_128_bit_arithmetic(
            total in 0i64..200_000,
            weights in proptest::collection::vec(0i64..60_000, 1..30),
        ) {
            prop_assert_eq!(allocate(total, &weights), reference_allocation(total, &weights));
        }

        #[test]
        fn display_then_parse_round_trips(minor in -1_000_000_000_000i64..1_000_000_000_000) {
            let shown = Money::new(minor, Currency::USD).to_string().replace('$', "");
            prop_assert_eq!(parse_minor(&shown, 2, Rounding::Exact), Ok(minor));
        }
    }
}
