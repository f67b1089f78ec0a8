//! Format adapters: each turns one record (a list of fields) into an order line or an event, or
//! into problems naming the field and the reason.

use crate::mapping::Mapping;
use crate::RowTags;
use chrono::NaiveDateTime;
use serde_json::{Map, Value};
use shopgrowth_core::model::{Channel, Event, EventType, OrderKind, OrderLine, Product};
use shopgrowth_core::money::{parse_minor, MoneyError, Rounding};
use shopgrowth_core::time::{local_to_utc, Timestamp};
use shopgrowth_core::Currency;

/// What a record became.
#[derive(Debug, Clone)]
pub enum Parsed {
    Line(Box<LineRow>),
    Event(Box<Event>),
}

/// One order line with the order it belongs to. Consecutive lines of one order are grouped.
#[derive(Debug, Clone)]
pub struct LineRow {
    pub order_id: String,
    pub kind: OrderKind,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub store_id: Option<String>,
    pub channel: Channel,
    pub currency: Currency,
    pub placed_at: Timestamp,
    pub line: OrderLine,
    /// The product as this row describes it; created if the store has none with that id.
    pub product: Option<Product>,
}

/// One thing wrong with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub code: &'static str,
    pub reason: String,
}

impl Problem {
    pub fn new(field: &str, code: &'static str, reason: impl Into<String>) -> Self {
        Problem {
            field: field.to_owned(),
            code,
            reason: reason.into(),
        }
    }
}

pub type Outcome = Result<Parsed, (Vec<Problem>, RowTags)>;

/// Settings every adapter may use.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time zone of wall-clock times in the file.
    pub tz: chrono_tz::Tz,
    /// Channel for rows that do not say.
    pub channel: Channel,
    /// Time for rows without one (MovieLens files without timestamps); `None` rejects them.
    pub default_time: Option<Timestamp>,
    /// The server's clock, for refusing times in the future.
    pub now: Timestamp,
    /// Whether rows should also describe their products (an import creates them; an RFM run
    /// does not need them, and skipping them saves allocations on every row).
    pub with_products: bool,
}

/// A format adapter over delimited records.
pub trait Adapter: Send {
    fn delimiter(&self) -> u8 {
        b','
    }
    fn has_header(&self) -> bool {
        true
    }
    /// Checks the header and remembers where each column is.
    fn bind_header(&mut self, _header: &[&str]) -> Result<(), String> {
        Ok(())
    }
    fn parse(&mut self, fields: &[&str], opts: &Options) -> Outcome;
}

fn field<'a>(fields: &[&'a str], i: usize) -> &'a str {
    fields.get(i).copied().unwrap_or("").trim()
}

fn check_time(field: &str, t: Timestamp, opts: &Options, problems: &mut Vec<Problem>) {
    if t < shopgrowth_core::model::EARLIEST_TIME {
        problems.push(Problem::new(
            field,
            "time_too_early",
            "is before 2000-01-01",
        ));
    } else if t.0 > opts.now.0 + shopgrowth_core::model::MAX_FUTURE_MS {
        problems.push(Problem::new(
            field,
            "time_in_future",
            "is more than 24 hours in the future",
        ));
    }
}

/// Unix seconds as an instant, refusing text that is not a whole number and times out of range.
fn unix_seconds(
    field: &str,
    text: &str,
    opts: &Options,
    problems: &mut Vec<Problem>,
) -> Option<Timestamp> {
    match text.parse::<i64>() {
        Ok(s) => {
            let t = Timestamp(s.saturating_mul(1000));
            check_time(field, t, opts, problems);
            Some(t)
        }
        Err(_) => {
            problems.push(Problem::new(
                field,
                "time_invalid",
                format!("{text:?} is not Unix seconds"),
            ));
            None
        }
    }
}

/// Parses a price in major units (`2.55`) into minor units, refusing what is not a positive,
/// whole number of minor units.
fn positive_price(
    field: &str,
    text: &str,
    currency: Currency,
    problems: &mut Vec<Problem>,
) -> Option<i64> {
    match parse_minor(text, currency.minor_digits(), Rounding::Exact) {
        Ok(p) if p > 0 => Some(p),
        Ok(0) => {
            problems.push(Problem::new(
                field,
                "price_zero",
                format!("{text} is zero: a line must cost something"),
            ));
            None
        }
        Ok(_) => {
            problems.push(Problem::new(
                field,
                "price_negative",
                format!("{text} is negative"),
            ));
            None
        }
        Err(MoneyError::SubMinorUnit { .. }) => {
            problems.push(Problem::new(
                field,
                "price_sub_minor_unit",
                format!(
                    "{text} is below the smallest unit of {currency} and would have to be rounded"
                ),
            ));
            None
        }
        Err(e) => {
            problems.push(Problem::new(field, "price_not_a_number", e.to_string()));
            None
        }
    }
}

/// Customer ids written by spreadsheets as floats (`17850.0`) become `17850`.
fn clean_customer_id(raw: &str) -> Result<Option<String>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let id = raw.strip_suffix(".0").unwrap_or(raw);
    if id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && id.len() <= 64
    {
        Ok(Some(id.to_owned()))
    } else {
        Err(format!("{raw:?} is not a customer id"))
    }
}

/// UCI Online Retail: `InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country`.
///
/// An invoice starting with `C` is a return by that customer (kept, as an order of kind return
/// with positive quantities); a row without CustomerID is an anonymous order line; prices are
/// GBP and must be a positive whole number of pence.
pub struct OnlineRetail {
    cols: [usize; 8],
}

impl OnlineRetail {
    const COLUMNS: [&'static str; 8] = [
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
        "Country",
    ];

    pub fn new() -> Self {
        OnlineRetail {
            cols: [0, 1, 2, 3, 4, 5, 6, 7],
        }
    }
}

impl Default for OnlineRetail {
    fn default() -> Self {
        Self::new()
    }
}

fn bind_columns<const N: usize>(header: &[&str], wanted: [&str; N]) -> Result<[usize; N], String> {
    let mut cols = [0; N];
    for (slot, name) in cols.iter_mut().zip(wanted) {
        *slot = header
            .iter()
            .position(|h| {
                h.trim()
                    .trim_start_matches('\u{feff}')
                    .eq_ignore_ascii_case(name)
            })
            .ok_or_else(|| {
                format!(
                    "the header has no column {name:?} (found: {})",
                    header.join(",")
                )
            })?;
    }
    Ok(cols)
}

impl Adapter for OnlineRetail {
    fn bind_header(&mut self, header: &[&str]) -> Result<(), String> {
        self.cols = bind_columns(header, Self::COLUMNS)?;
        Ok(())
    }

    fn parse(&mut self, fields: &[&str], opts: &Options) -> Outcome {
        let [c_invoice, c_stock, c_desc, c_qty, c_date, c_price, c_customer, c_country] = self.cols;
        let mut problems = Vec::new();
        let invoice = field(fields, c_invoice);
        let is_return = invoice.starts_with('C');
        let customer = clean_customer_id(field(fields, c_customer));
        let tags = RowTags {
            is_return,
            is_anonymous: matches!(customer, Ok(None)),
            customer: customer.clone().ok().flatten(),
        };
        if invoice.is_empty() {
            problems.push(Problem::new("InvoiceNo", "invoice_missing", "is empty"));
        }
        let stock = field(fields, c_stock);
        if stock.is_empty() {
            problems.push(Problem::new("StockCode", "stock_code_missing", "is empty"));
        }
        let qty_text = field(fields, c_qty);
        let quantity = match qty_text.parse::<i64>() {
            Ok(0) => {
                problems.push(Problem::new("Quantity", "quantity_zero", "is 0"));
                None
            }
            Ok(q) if q < 0 && !is_return => {
                problems.push(Problem::new(
                    "Quantity",
                    "quantity_negative_on_sale",
                    format!("{q} on invoice {invoice}, which is not a return (C…) invoice"),
                ));
                None
            }
            Ok(q) if q > 0 && is_return => {
                problems.push(Problem::new(
                    "Quantity",
                    "quantity_positive_on_return",
                    format!("{q} on return {invoice}"),
                ));
                None
            }
            Ok(q) => Some(q.abs()),
            Err(_) => {
                problems.push(Problem::new(
                    "Quantity",
                    "quantity_not_integer",
                    format!("{qty_text:?} is not an integer"),
                ));
                None
            }
        };
        let date_text = field(fields, c_date);
        let placed_at = match NaiveDateTime::parse_from_str(date_text, "%Y-%m-%d %H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(date_text, "%Y-%m-%d %H:%M"))
        {
            Ok(local) => match local_to_utc(local, opts.tz) {
                Ok(t) => {
                    check_time("InvoiceDate", t, opts, &mut problems);
                    Some(t)
                }
                Err(reason) => {
                    problems.push(Problem::new("InvoiceDate", "date_invalid", reason));
                    None
                }
            },
            Err(_) => {
                problems.push(Problem::new(
                    "InvoiceDate",
                    "date_invalid",
                    format!("{date_text:?} is not YYYY-MM-DD HH:MM[:SS]"),
                ));
                None
            }
        };
        let unit_price = positive_price(
            "UnitPrice",
            field(fields, c_price),
            Currency::GBP,
            &mut problems,
        );
        let user_id = match customer {
            Ok(c) => c,
            Err(reason) => {
                problems.push(Problem::new("CustomerID", "customer_id_invalid", reason));
                None
            }
        };
        let (Some(quantity), Some(placed_at), Some(unit_price), true) =
            (quantity, placed_at, unit_price, problems.is_empty())
        else {
            return Err((problems, tags));
        };
        let description = field(fields, c_desc);
        let title = (!description.is_empty()).then(|| description.to_owned());
        let country = field(fields, c_country);
        let mut attributes = Map::new();
        if !country.is_empty() {
            attributes.insert("country".into(), Value::String(country.to_owned()));
        }
        Ok(Parsed::Line(Box::new(LineRow {
            order_id: invoice.to_owned(),
            kind: if is_return {
                OrderKind::Return
            } else {
                OrderKind::Sale
            },
            user_id,
            device_id: None,
            store_id: None,
            channel: opts.channel,
            currency: Currency::GBP,
            placed_at,
            product: opts.with_products.then(|| Product {
                id: stock.into(),
                title: title.clone().unwrap_or_else(|| stock.to_owned()),
                category: vec![],
                brand: None,
                spu_id: None,
                price: unit_price,
                cost: None,
                currency: Currency::GBP,
                stock: None,
                attributes,
            }),
            line: OrderLine {
                sku_id: stock.into(),
                quantity,
                unit_price,
                discount: 0,
                title,
            },
        })))
    }
}

/// Alibaba Taobao UserBehavior: `user_id,item_id,category_id,behavior_type,timestamp`, no
/// header, Unix seconds. Event ids are built from the whole row, so exact duplicates collapse.
pub struct Taobao;

impl Adapter for Taobao {
    fn has_header(&self) -> bool {
        false
    }

    fn parse(&mut self, fields: &[&str], opts: &Options) -> Outcome {
        let tags = RowTags::default();
        let mut problems = Vec::new();
        if fields.len() != 5 {
            problems.push(Problem::new(
                "row",
                "columns",
                format!("has {} fields, expected 5", fields.len()),
            ));
            return Err((problems, tags));
        }
        let (user, item, category, behavior, ts) = (
            field(fields, 0),
            field(fields, 1),
            field(fields, 2),
            field(fields, 3),
            field(fields, 4),
        );
        for (name, value) in [("user_id", user), ("item_id", item)] {
            if value.is_empty() {
                problems.push(Problem::new(name, "id_missing", "is empty"));
            }
        }
        let kind = match behavior {
            "pv" => Some(EventType::View),
            "cart" => Some(EventType::AddToCart),
            "fav" => Some(EventType::Favorite),
            "buy" => Some(EventType::Purchase),
            other => {
                problems.push(Problem::new(
                    "behavior_type",
                    "behavior_unknown",
                    format!("{other:?} is not one of pv, cart, fav, buy"),
                ));
                None
            }
        };
        let time = unix_seconds("timestamp", ts, opts, &mut problems);
        let (Some(kind), Some(time), true) = (kind, time, problems.is_empty()) else {
            return Err((problems, tags));
        };
        let mut properties = Map::new();
        if !category.is_empty() {
            properties.insert("category_id".into(), Value::String(category.to_owned()));
        }
        Ok(Parsed::Event(Box::new(Event {
            user_id: Some(user.into()),
            sku_id: Some(item.into()),
            properties,
            ..Event::new(
                format!("tb:{user}:{item}:{behavior}:{ts}"),
                kind,
                time,
                opts.channel,
            )
        })))
    }
}

/// MovieLens ratings as review events with a rating: `ratings.dat` (`::`), `u.data` (tab), or a
/// CSV with a header naming user, movie (or item index), rating and optionally timestamp.
pub struct MovieLens {
    layout: MovieLensLayout,
}

#[derive(Debug, Clone, Copy)]
enum MovieLensLayout {
    /// `user::movie::rating::ts`, read with `:` as delimiter, so fields sit at 0, 2, 4, 6.
    DoubleColon,
    Tab,
    Csv {
        user: usize,
        item: usize,
        rating: usize,
        time: Option<usize>,
    },
}

impl MovieLens {
    /// Picks the layout from the first line of the file.
    pub fn detect(first_line: &str) -> Self {
        let layout = if first_line.contains("::") {
            MovieLensLayout::DoubleColon
        } else if first_line.contains('\t') {
            MovieLensLayout::Tab
        } else {
            MovieLensLayout::Csv {
                user: 0,
                item: 1,
                rating: 2,
                time: None,
            }
        };
        MovieLens { layout }
    }
}

impl Adapter for MovieLens {
    fn delimiter(&self) -> u8 {
        match self.layout {
            MovieLensLayout::DoubleColon => b':',
            MovieLensLayout::Tab => b'\t',
            MovieLensLayout::Csv { .. } => b',',
        }
    }

    fn has_header(&self) -> bool {
        matches!(self.layout, MovieLensLayout::Csv { .. })
    }

    fn bind_header(&mut self, header: &[&str]) -> Result<(), String> {
        let find = |names: &[&str]| {
            header
                .iter()
                .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
        };
        let user = find(&["userId", "UserID", "user_id"])
            .ok_or("the header has no user column (userId)")?;
        let item = find(&["movieId", "MovieID", "ItemIndex", "itemId", "item_id"])
            .ok_or("the header has no movie column (movieId or ItemIndex)")?;
        let rating = find(&["rating", "Rating"]).ok_or("the header has no rating column")?;
        let time = find(&["timestamp", "Timestamp"]);
        self.layout = MovieLensLayout::Csv {
            user,
            item,
            rating,
            time,
        };
        Ok(())
    }

    fn parse(&mut self, fields: &[&str], opts: &Options) -> Outcome {
        let tags = RowTags::default();
        let (user, item, rating, ts) = match self.layout {
            MovieLensLayout::DoubleColon => (
                field(fields, 0),
                field(fields, 2),
                field(fields, 4),
                Some(field(fields, 6)),
            ),
            MovieLensLayout::Tab => (
                field(fields, 0),
                field(fields, 1),
                field(fields, 2),
                Some(field(fields, 3)),
            ),
            MovieLensLayout::Csv {
                user,
                item,
                rating,
                time,
            } => (
                field(fields, user),
                field(fields, item),
                field(fields, rating),
                time.map(|t| field(fields, t)),
            ),
        };
        let mut problems = Vec::new();
        if user.is_empty() {
            problems.push(Problem::new("user", "id_missing", "is empty"));
        }
        if item.is_empty() {
            problems.push(Problem::new("movie", "id_missing", "is empty"));
        }
        let rating = match rating.parse::<u8>() {
            Ok(r) if (1..=5).contains(&r) => Some(r),
            _ => {
                problems.push(Problem::new(
                    "rating",
                    "rating_invalid",
                    format!("{rating:?} is not a whole star 1-5"),
                ));
                None
            }
        };
        let time = match (ts.filter(|t| !t.is_empty()), opts.default_time) {
            (Some(ts), _) => unix_seconds("timestamp", ts, opts, &mut problems),
            (None, Some(default)) => Some(default),
            (None, None) => {
                problems.push(Problem::new(
                    "timestamp",
                    "time_missing",
                    "the file has no timestamps: pass --default-time to import it",
                ));
                None
            }
        };
        let (Some(rating), Some(time), true) = (rating, time, problems.is_empty()) else {
            return Err((problems, tags));
        };
        Ok(Parsed::Event(Box::new(Event {
            user_id: Some(user.into()),
            sku_id: Some(item.into()),
            rating: Some(rating),
            ..Event::new(
                format!("ml:{user}:{item}"),
                EventType::Review,
                time,
                opts.channel,
            )
        })))
    }
}

/// Any CSV, described by a [`Mapping`] file.
pub struct Mapped {
    pub mapping: Mapping,
    cols: Vec<(String, usize)>,
}

impl Mapped {
    pub fn new(mapping: Mapping) -> Self {
        Mapped {
            mapping,
            cols: Vec::new(),
        }
    }
}

impl Adapter for Mapped {
    fn delimiter(&self) -> u8 {
        self.mapping.delimiter_byte()
    }

    fn has_header(&self) -> bool {
        self.mapping.has_header
    }

    fn bind_header(&mut self, header: &[&str]) -> Result<(), String> {
        self.cols = self.mapping.bind(header)?;
        Ok(())
    }

    fn parse(&mut self, fields: &[&str], opts: &Options) -> Outcome {
        if self.cols.is_empty() {
            self.cols = self.mapping.bind(&[]).map_err(|r| {
                (
                    vec![Problem::new("mapping", "mapping", r)],
                    RowTags::default(),
                )
            })?;
        }
        self.mapping.parse(&self.cols, fields, opts)
    }
}

/// A 63-bit digest of a record's fields: the line number of an imported order line, so an
/// exact duplicate line (and a re-import) lands on the same key.
pub fn record_digest(fields: &[&str]) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in fields {
        h.update(f.as_bytes());
        h.update([0x1f]);
    }
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(first) >> 1) as i64
}

pub(crate) fn parse_time(text: &str, format: &str, opts: &Options) -> Result<Timestamp, String> {
    match format {
        "epoch_s" => text
            .parse::<i64>()
            .map(|s| Timestamp(s.saturating_mul(1000)))
            .map_err(|_| format!("{text:?} is not Unix seconds")),
        "epoch_ms" => text
            .parse::<i64>()
            .map(Timestamp)
            .map_err(|_| format!("{text:?} is not Unix milliseconds")),
        "rfc3339" => Timestamp::parse_rfc3339(text),
        pattern => {
            let local = NaiveDateTime::parse_from_str(text, pattern)
                .map_err(|_| format!("{text:?} does not match the time format {pattern:?}"))?;
            local_to_utc(local, opts.tz)
        }
    }
}

pub(crate) fn checked_time(
    field_name: &str,
    t: Timestamp,
    opts: &Options,
    problems: &mut Vec<Problem>,
) {
    check_time(field_name, t, opts, problems)
}

pub(crate) fn price_in(
    field_name: &str,
    text: &str,
    currency: Currency,
    problems: &mut Vec<Problem>,
) -> Option<i64> {
    positive_price(field_name, text, currency, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            tz: chrono_tz::Europe::London,
            channel: Channel::Web,
            default_time: None,
            now: Timestamp(1_790_000_000_000),
            with_products: true,
        }
    }

    fn codes(outcome: Outcome) -> Vec<&'static str> {
        match outcome {
            Ok(_) => vec![],
            Err((problems, _)) => problems.iter().map(|p| p.code).collect(),
        }
    }

    #[test]
    fn online_retail_rows() {
        let mut a = OnlineRetail::new();
        let row = |s: &'static str| s.split(',').collect::<Vec<_>>();
        let ok = a.parse(&row("536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850,United Kingdom"), &opts());
        match ok {
            Ok(Parsed::Line(l)) => {
                assert_eq!(
                    (l.line.quantity, l.line.unit_price, l.user_id.as_deref()),
                    (6, 255, Some("17850"))
                );
                assert_eq!(l.placed_at.to_rfc3339(), "2010-12-01T08:26:00.000Z");
            }
            other => panic!("{other:?}"),
        }
        match a.parse(
            &row("C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom"),
            &opts(),
        ) {
            Ok(Parsed::Line(l)) => assert_eq!(
                (l.kind, l.line.quantity, l.user_id.as_deref()),
                (OrderKind::Return, 1, Some("14527"))
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            codes(a.parse(
                &row("536414,22139,,56,2010-12-01 11:52:00,0.0,,United Kingdom"),
                &opts()
            )),
            ["price_zero"]
        );
        assert_eq!(
            codes(a.parse(
                &row("A563186,B,Adjust bad debt,1,2011-08-12 14:51:00,-11062.06,,United Kingdom"),
                &opts()
            )),
            ["price_negative"]
        );
        assert_eq!(
            codes(a.parse(
                &row("1,P,Pads,1,2011-01-01 10:00:00,0.001,13952,United Kingdom"),
                &opts()
            )),
            ["price_sub_minor_unit"]
        );
        assert_eq!(
            codes(a.parse(
                &row("536589,21777,,-10,2010-12-01 16:50:00,0.0,,United Kingdom"),
                &opts()
            )),
            ["quantity_negative_on_sale", "price_zero"]
        );
        assert_eq!(
            codes(a.parse(&row("536365,X,Y,six,yesterday,abc,17850,UK"), &opts())),
            ["quantity_not_integer", "date_invalid", "price_not_a_number"]
        );
    }

    #[test]
    fn taobao_and_movielens_rows() {
        let mut t = Taobao;
        match t.parse(&["1", "2268318", "2520377", "pv", "1511544070"], &opts()) {
            Ok(Parsed::Event(e)) => assert_eq!(
                (e.kind, e.id.as_str()),
                (EventType::View, "tb:1:2268318:pv:1511544070")
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            codes(t.parse(&["1", "2", "3", "look", "x"], &opts())),
            ["behavior_unknown", "time_invalid"]
        );
        let mut dat = MovieLens::detect("1::1193::5::978300760");
        let fields: Vec<&str> = "1::1193::5::978300760".split(':').collect();
        match dat.parse(&fields, &opts()) {
            Ok(Parsed::Event(e)) => assert_eq!(
                (e.rating, e.sku_id.map(|s| s.0)),
                (Some(5), Some("1193".into()))
            ),
            other => panic!("{other:?}"),
        }
        let mut csv = MovieLens::detect("UserID,ItemIndex,MovieID,Rating");
        assert!(csv
            .bind_header(&["UserID", "ItemIndex", "MovieID", "Rating"])
            .is_ok());
        assert_eq!(
            codes(csv.parse(&["1", "1", "1193", "5"], &opts())),
            ["time_missing"]
        );
        let with_default = Options {
            default_time: Some(Timestamp(978_300_760_000)),
            ..opts()
        };
        assert!(csv.parse(&["1", "1", "1193", "5"], &with_default).is_ok());
    }

    #[test]
    fn digests_separate_fields() {
        assert_ne!(record_digest(&["a", "bc"]), record_digest(&["ab", "c"]));
        assert_eq!(record_digest(&["a", "b"]), record_digest(&["a", "b"]));
        assert!(record_digest(&["x"]) >= 0);
    }
}
