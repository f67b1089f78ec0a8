//! Column mapping for any CSV: a TOML file that says which column holds which field.
//!
//! ```toml
//! entity = "events"            # or "order_lines"
//! delimiter = ","
//! has_header = true
//! time_format = "epoch_s"      # epoch_s | epoch_ms | rfc3339 | a chrono pattern such as "%Y/%m/%d %H:%M"
//! channel = "app"              # when no column gives it
//! [columns]                    # field = header name, or 1-based column number
//! id = "event_id"
//! type = "action"
//! time = "ts"
//! user_id = "uid"
//! sku_id = 3
//! [values.type]                # raw value -> shopgrowth value
//! pv = "view"
//! ```
//! Order lines take `currency` (default CNY) and prices in major units (`12.50`).

use crate::formats::{
    checked_time, parse_time, price_in, record_digest, LineRow, Options, Outcome, Parsed, Problem,
};
use crate::RowTags;
use serde::Deserialize;
use shopgrowth_core::model::{Channel, Event, EventType, OrderKind, OrderLine};
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::Currency;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Events,
    OrderLines,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ColumnRef {
    Number(usize),
    Name(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub entity: Entity,
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    #[serde(default = "default_true")]
    pub has_header: bool,
    #[serde(default = "default_time_format")]
    pub time_format: String,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub channel: Option<Channel>,
    pub columns: BTreeMap<String, ColumnRef>,
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, String>>,
}

fn default_delimiter() -> String {
    ",".into()
}
fn default_true() -> bool {
    true
}
fn default_time_format() -> String {
    "rfc3339".into()
}

const EVENT_FIELDS: &[&str] = &[
    "id",
    "type",
    "time",
    "user_id",
    "device_id",
    "channel",
    "sku_id",
    "store_id",
    "order_id",
    "query",
    "text",
    "rating",
];
const LINE_FIELDS: &[&str] = &[
    "order_id",
    "sku_id",
    "quantity",
    "unit_price",
    "discount",
    "time",
    "user_id",
    "device_id",
    "store_id",
    "channel",
    "title",
];

impl Mapping {
    /// Reads and checks a mapping file; errors name the file, and the key or the TOML position.
    pub fn load(path: &Path) -> crate::Result<Self> {
        let err = |message: String| crate::Error::Mapping {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mapping: Mapping = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        mapping.check().map_err(err)?;
        Ok(mapping)
    }

    fn fields(&self) -> &'static [&'static str] {
        match self.entity {
            Entity::Events => EVENT_FIELDS,
            Entity::OrderLines => LINE_FIELDS,
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.delimiter.len() != 1 {
            return Err(format!(
                "delimiter: {:?} must be a single byte",
                self.delimiter
            ));
        }
        if let Some(c) = &self.currency {
            Currency::parse(c).map_err(|e| format!("currency: {e}"))?;
        }
        for key in self.columns.keys() {
            if !self.fields().contains(&key.as_str()) {
                return Err(format!(
                    "columns.{key}: unknown field; known fields: {}",
                    self.fields().join(", ")
                ));
            }
        }
        let required: &[&str] = match self.entity {
            Entity::Events => &["type", "time"],
            Entity::OrderLines => &["order_id", "sku_id", "quantity", "unit_price", "time"],
        };
        for r in required {
            if !self.columns.contains_key(*r) {
                return Err(format!(
                    "columns.{r}: missing; {:?} files need it",
                    self.entity
                ));
            }
        }
        if self.entity == Entity::Events
            && !self.columns.contains_key("user_id")
            && !self.columns.contains_key("device_id")
        {
            return Err("columns: events need a user_id or a device_id column".into());
        }
        Ok(())
    }

    pub fn delimiter_byte(&self) -> u8 {
        self.delimiter.as_bytes().first().copied().unwrap_or(b',')
    }

    /// Resolves each mapped field to a column index.
    pub fn bind(&self, header: &[&str]) -> Result<Vec<(String, usize)>, String> {
        self.columns
            .iter()
            .map(|(field, col)| {
                let index = match col {
                    ColumnRef::Number(n) if *n >= 1 => n - 1,
                    ColumnRef::Number(_) => {
                        return Err(format!("columns.{field}: column numbers start at 1"))
                    }
                    ColumnRef::Name(name) => header
                        .iter()
                        .position(|h| h.trim() == name)
                        .ok_or_else(|| {
                            format!("columns.{field}: the header has no column {name:?}")
                        })?,
                };
                Ok((field.clone(), index))
            })
            .collect()
    }

    fn value<'a>(&'a self, field: &str, raw: &'a str) -> &'a str {
        self.values
            .get(field)
            .and_then(|m| m.get(raw))
            .map_or(raw, String::as_str)
    }

    pub fn parse(&self, cols: &[(String, usize)], fields: &[&str], opts: &Options) -> Outcome {
        let get = |name: &str| -> Option<&str> {
            cols.iter()
                .find(|(f, _)| f == name)
                .and_then(|(_, i)| fields.get(*i))
                .map(|v| self.value(name, v.trim()))
                .filter(|v| !v.is_empty())
        };
        let mut problems = Vec::new();
        let channel = match get("channel") {
            Some(c) => Channel::parse(c).unwrap_or_else(|| {
                problems.push(Problem::new(
                    "channel",
                    "channel_unknown",
                    format!("{c:?} is not web, app, mini_program or store"),
                ));
                opts.channel
            }),
            None => self.channel.unwrap_or(opts.channel),
        };
        let time = match get("time") {
            Some(t) => match parse_time(t, &self.time_format, opts) {
                Ok(t) => {
                    checked_time("time", t, opts, &mut problems);
                    Some(t)
                }
                Err(reason) => {
                    problems.push(Problem::new("time", "time_invalid", reason));
                    None
                }
            },
            None => {
                problems.push(Problem::new("time", "time_missing", "is empty"));
                None
            }
        };
        match self.entity {
            Entity::Events => self.parse_event(&get, fields, channel, time, problems, opts),
            Entity::OrderLines => self.parse_line(&get, channel, time, problems),
        }
    }

    fn parse_event<'a>(
        &self,
        get: &dyn Fn(&str) -> Option<&'a str>,
        fields: &[&str],
        channel: Channel,
        time: Option<Timestamp>,
        mut problems: Vec<Problem>,
        opts: &Options,
    ) -> Outcome {
        let tags = RowTags {
            is_anonymous: get("user_id").is_none(),
            ..RowTags::default()
        };
        let kind = match get("type") {
            Some(t) => EventType::parse(t).or_else(|| {
                problems.push(Problem::new(
                    "type",
                    "type_unknown",
                    format!("{t:?} is not an event type (map it under [values.type])"),
                ));
                None
            }),
            None => {
                problems.push(Problem::new("type", "type_missing", "is empty"));
                None
            }
        };
        let rating = match get("rating") {
            Some(r) => match r.parse::<u8>() {
                Ok(v) => Some(v),
                Err(_) => {
                    problems.push(Problem::new(
                        "rating",
                        "rating_invalid",
                        format!("{r:?} is not a whole number"),
                    ));
                    None
                }
            },
            None => None,
        };
        let (Some(kind), Some(time), true) = (kind, time, problems.is_empty()) else {
            return Err((problems, tags));
        };
        let event = Event {
            id: get("id")
                .map_or_else(
                    || format!("csv:{:016x}", record_digest(fields)),
                    str::to_owned,
                )
                .into(),
            kind,
            time,
            user_id: get("user_id").map(Into::into),
            device_id: get("device_id").map(Into::into),
            channel,
            sku_id: get("sku_id").map(Into::into),
            store_id: get("store_id").map(Into::into),
            order_id: get("order_id").map(Into::into),
            query: get("query").map(str::to_owned),
            text: get("text").map(str::to_owned),
            rating,
            properties: Default::default(),
        };
        let invalid = event.validate(opts.now);
        if invalid.is_empty() {
            Ok(Parsed::Event(Box::new(event)))
        } else {
            Err((
                invalid
                    .into_iter()
                    .map(|e| Problem::new(&e.field, "invalid", e.reason))
                    .collect(),
                tags,
            ))
        }
    }

    fn parse_line<'a>(
        &self,
        get: &dyn Fn(&str) -> Option<&'a str>,
        channel: Channel,
        time: Option<Timestamp>,
        mut problems: Vec<Problem>,
    ) -> Outcome {
        let tags = RowTags {
            is_anonymous: get("user_id").is_none() && get("device_id").is_none(),
            ..RowTags::default()
        };
        let currency = self
            .currency
            .as_deref()
            .and_then(|c| Currency::parse(c).ok())
            .unwrap_or(Currency::CNY);
        let order_id = get("order_id");
        let sku_id = get("sku_id");
        for (name, v) in [("order_id", order_id), ("sku_id", sku_id)] {
            if v.is_none() {
                problems.push(Problem::new(name, "id_missing", "is empty"));
            }
        }
        let quantity = match get("quantity").map(|q| (q, q.parse::<i64>())) {
            Some((_, Ok(q))) if q > 0 => Some(q),
            Some((q, _)) => {
                problems.push(Problem::new(
                    "quantity",
                    "quantity_invalid",
                    format!("{q:?} is not a positive integer"),
                ));
                None
            }
            None => {
                problems.push(Problem::new("quantity", "quantity_missing", "is empty"));
                None
            }
        };
        let unit_price = match get("unit_price") {
            Some(p) => price_in("unit_price", p, currency, &mut problems),
            None => {
                problems.push(Problem::new("unit_price", "price_missing", "is empty"));
                None
            }
        };
        let discount = match get("discount") {
            Some(d) => shopgrowth_core::money::parse_minor(
                d,
                currency.minor_digits(),
                shopgrowth_core::money::Rounding::Exact,
            )
            .map_err(|e| problems.push(Problem::new("discount", "discount_invalid", e.to_string())))
            .ok(),
            None => Some(0),
        };
        if channel == Channel::Store && get("store_id").is_none() {
            problems.push(Problem::new(
                "store_id",
                "store_missing",
                "is required for in-store order lines",
            ));
        }
        let (
            Some(order_id),
            Some(sku_id),
            Some(quantity),
            Some(unit_price),
            Some(discount),
            Some(placed_at),
            true,
        ) = (
            order_id,
            sku_id,
            quantity,
            unit_price,
            discount,
            time,
            problems.is_empty(),
        )
        else {
            return Err((problems, tags));
        };
        if discount < 0 || discount > quantity.saturating_mul(unit_price) {
            return Err((
                vec![Problem::new(
                    "discount",
                    "discount_invalid",
                    "must be between 0 and the line's amount",
                )],
                tags,
            ));
        }
        Ok(Parsed::Line(Box::new(LineRow {
            order_id: order_id.to_owned(),
            kind: OrderKind::Sale,
            user_id: get("user_id").map(str::to_owned),
            device_id: get("device_id").map(str::to_owned),
            store_id: get("store_id").map(str::to_owned),
            channel,
            currency,
            placed_at,
            line: OrderLine {
                sku_id: sku_id.into(),
                quantity,
                unit_price,
                discount,
                title: get("title").map(str::to_owned),
            },
            product: None,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_reads_a_foreign_csv() {
        let m: Mapping = toml::from_str(
            r#"entity = "events"
               time_format = "epoch_s"
               [columns]
               type = "action"
               time = "ts"
               user_id = 1
               sku_id = "item"
               [values.type]
               pv = "view""#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(m.check().is_ok());
        let cols = m.bind(&["uid", "item", "action", "ts"]).unwrap_or_default();
        let opts = Options {
            tz: chrono_tz::Asia::Shanghai,
            channel: Channel::App,
            default_time: None,
            now: Timestamp(1_790_000_000_000),
            with_products: true,
        };
        match m.parse(&cols, &["u1", "i9", "pv", "1700000000"], &opts) {
            Ok(Parsed::Event(e)) => assert_eq!(
                (e.kind, e.user_id.map(|u| u.0)),
                (EventType::View, Some("u1".into()))
            ),
            other => panic!("{other:?}"),
        }
        match m.parse(&cols, &["u1", "i9", "click", "soon"], &opts) {
            Err((p, _)) => assert_eq!(
                p.iter().map(|p| p.code).collect::<Vec<_>>(),
                ["time_invalid", "type_unknown"]
            ),
            other => panic!("{other:?}"),
        }
        assert!(m
            .bind(&["uid"])
            .is_err_and(|e| e.contains("no column \"item\"")));
    }

    #[test]
    fn bad_mappings_name_the_key() {
        let m: Mapping = toml::from_str(
            "entity = \"events\"\n[columns]\ntype = \"a\"\ntime = \"b\"\nuser = \"c\"",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(m
            .check()
            .is_err_and(|e| e.starts_with("columns.user: unknown field")));
        assert!(toml::from_str::<Mapping>("entity = \"things\"\n[columns]").is_err());
    }
}
