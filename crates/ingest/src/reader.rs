//! Drives a format adapter over a file in bounded chunks: constant memory apart from the sets of
//! customer and product ids already seen (so each is created once).

use crate::formats::{
    record_digest, Adapter, MovieLens, OnlineRetail, Options, Parsed, Problem, Taobao,
};
use crate::mapping::Mapping;
use crate::source::{self, Source};
use crate::{Error, RejectedRow, Rejection, Result, RowTags};
use shopgrowth_core::model::{Event, ImportBatch, ImportedOrder, Order, OrderStatus};
use std::collections::HashSet;
use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// The file formats `shopgrowth import` reads.
#[derive(Debug, Clone)]
pub enum Format {
    OnlineRetail,
    Taobao,
    MovieLens,
    /// Any CSV with a column mapping.
    Csv(Mapping),
    /// One event per line, as the HTTP API takes it.
    JsonLines,
}

impl Format {
    pub fn name(&self) -> &'static str {
        match self {
            Format::OnlineRetail => "online-retail",
            Format::Taobao => "taobao",
            Format::MovieLens => "movielens",
            Format::Csv(_) => "csv",
            Format::JsonLines => "jsonl",
        }
    }
}

/// What one chunk of the file became.
#[derive(Debug, Default)]
pub struct Chunk {
    pub batch: ImportBatch,
    pub rejected: Vec<RejectedRow>,
    /// Records read in this chunk, rejected ones included.
    pub rows: u64,
}

enum Input {
    Csv {
        csv: csv::Reader<Box<dyn BufRead + Send>>,
        adapter: Box<dyn Adapter>,
    },
    Lines {
        reader: Box<dyn BufRead + Send>,
        line: u64,
    },
}

pub struct Reader {
    input: Input,
    file: String,
    opts: Options,
    chunk_rows: usize,
    seen_users: HashSet<String>,
    seen_products: HashSet<String>,
    record: csv::ByteRecord,
    pub bytes_read: Arc<AtomicU64>,
    pub total_bytes: u64,
    done: bool,
}

impl Reader {
    /// Opens `path`, reads and checks its header. `chunk_rows` bounds the rows per chunk.
    pub fn open(path: &Path, format: &Format, opts: Options, chunk_rows: usize) -> Result<Self> {
        let Source {
            mut reader,
            bytes_read,
            total_bytes,
            name,
        } = source::open(path)?;
        let input = match format {
            Format::JsonLines => Input::Lines { reader, line: 0 },
            _ => {
                let mut adapter: Box<dyn Adapter> = match format {
                    Format::OnlineRetail => Box::new(OnlineRetail::new()),
                    Format::Taobao => Box::new(Taobao),
                    Format::MovieLens => {
                        let head = reader.fill_buf().map_err(|e| Error::Io {
                            path: name.clone(),
                            source: e,
                        })?;
                        let first = String::from_utf8_lossy(head)
                            .lines()
                            .next()
                            .unwrap_or("")
                            .to_owned();
                        Box::new(MovieLens::detect(&first))
                    }
                    Format::Csv(m) => Box::new(crate::formats::Mapped::new(m.clone())),
                    Format::JsonLines => unreachable!("handled above"),
                };
                let mut csv = csv::ReaderBuilder::new()
                    .delimiter(adapter.delimiter())
                    .has_headers(false)
                    .flexible(true)
                    .from_reader(reader);
                if adapter.has_header() {
                    let mut header = csv::StringRecord::new();
                    let found = csv.read_record(&mut header).map_err(|e| Error::Csv {
                        path: name.clone(),
                        line: 1,
                        message: e.to_string(),
                    })?;
                    if !found {
                        return Err(Error::Csv {
                            path: name,
                            line: 1,
                            message: "the file is empty (no header)".into(),
                        });
                    }
                    let cols: Vec<&str> = header.iter().collect();
                    adapter.bind_header(&cols).map_err(|message| Error::Csv {
                        path: name.clone(),
                        line: 1,
                        message,
                    })?;
                }
                Input::Csv { csv, adapter }
            }
        };
        Ok(Reader {
            input,
            file: name,
            opts,
            chunk_rows: chunk_rows.max(1),
            seen_users: HashSet::new(),
            seen_products: HashSet::new(),
            record: csv::ByteRecord::new(),
            bytes_read,
            total_bytes,
            done: false,
        })
    }

    /// Distinct customers in the rows accepted so far.
    pub fn customers_seen(&self) -> u64 {
        self.seen_users.len() as u64
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    /// The next chunk, or `None` at the end of the file. An IO error is fatal; a bad row is not.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        if self.done {
            return Ok(None);
        }
        let mut chunk = Chunk::default();
        let mut current: Option<ImportedOrder> = None;
        while (chunk.rows as usize) < self.chunk_rows {
            let Some((line, outcome)) = self.next_record()? else {
                self.done = true;
                break;
            };
            chunk.rows += 1;
            match outcome {
                Ok(Record::Line(digested)) => {
                    let DigestedLine { row, digest } = *digested;
                    if let Some(p) = row.product.clone() {
                        if !self.seen_products.contains(p.id.as_str()) {
                            self.seen_products.insert(p.id.0.clone());
                            chunk.batch.products.push(p);
                        }
                    }
                    if let Some(u) = &row.user_id {
                        if !self.seen_users.contains(u) {
                            self.seen_users.insert(u.clone());
                            chunk.batch.users.push(u.clone());
                        }
                    }
                    let same_order = current.as_ref().is_some_and(|c| {
                        c.order.id.as_str() == row.order_id
                            && c.order.user_id.as_ref().map(|u| u.as_str())
                                == row.user_id.as_deref()
                    });
                    if !same_order {
                        chunk.batch.orders.extend(current.take());
                        current = Some(ImportedOrder {
                            order: Order {
                                id: row.order_id.clone().into(),
                                kind: row.kind,
                                status: OrderStatus::Completed,
                                user_id: row.user_id.clone().map(Into::into),
                                device_id: row.device_id.clone().map(Into::into),
                                store_id: row.store_id.clone().map(Into::into),
                                channel: row.channel,
                                currency: row.currency,
                                placed_at: row.placed_at,
                                lines: Vec::new(),
                                shipping_fee: 0,
                                coupon_codes: Vec::new(),
                                original_order_id: None,
                                total: None,
                            },
                            line_nos: Vec::new(),
                            source_lines: Vec::new(),
                        });
                    }
                    if let Some(c) = current.as_mut() {
                        c.line_nos.push(digest);
                        c.source_lines.push(line as i64);
                        c.order.lines.push(row.line);
                    }
                }
                Ok(Record::Event(event)) => {
                    if let Some(u) = &event.user_id {
                        if !self.seen_users.contains(u.as_str()) {
                            self.seen_users.insert(u.0.clone());
                        }
                    }
                    chunk.batch.events.push(*event);
                }
                Err((problems, tags)) => {
                    if let Some(customer) = &tags.customer {
                        if !self.seen_users.contains(customer) {
                            self.seen_users.insert(customer.clone());
                            chunk.batch.users.push(customer.clone());
                        }
                    }
                    chunk.rejected.push(self.rejected(line, problems, tags));
                }
            }
        }
        chunk.batch.orders.extend(current.take());
        Ok(if chunk.rows == 0 { None } else { Some(chunk) })
    }

    fn rejected(&self, line: u64, problems: Vec<Problem>, tags: RowTags) -> RejectedRow {
        RejectedRow {
            line,
            tags,
            problems: problems
                .into_iter()
                .map(|p| Rejection {
                    file: self.file.clone(),
                    line,
                    field: p.field,
                    code: p.code,
                    reason: p.reason,
                })
                .collect(),
        }
    }

    /// The next record as (file line, outcome); line digests travel inside the outcome.
    #[allow(clippy::type_complexity)]
    fn next_record(&mut self) -> Result<Option<(u64, Result<Record, (Vec<Problem>, RowTags)>)>> {
        match &mut self.input {
            Input::Csv { csv, adapter } => {
                let more = csv
                    .read_byte_record(&mut self.record)
                    .map_err(|e| Error::Csv {
                        path: self.file.clone(),
                        line: e.position().map_or(0, |p| p.line()),
                        message: e.to_string(),
                    })?;
                if !more {
                    return Ok(None);
                }
                let line = self.record.position().map_or(0, |p| p.line());
                let mut fields = Vec::with_capacity(self.record.len());
                for (i, raw) in self.record.iter().enumerate() {
                    match std::str::from_utf8(raw) {
                        Ok(s) => fields.push(s),
                        Err(_) => {
                            let problem = Problem::new(
                                &format!("column {}", i + 1),
                                "not_utf8",
                                "is not valid UTF-8",
                            );
                            return Ok(Some((line, Err((vec![problem], RowTags::default())))));
                        }
                    }
                }
                if fields.iter().all(|f| f.trim().is_empty()) {
                    let problem = Problem::new("row", "empty_row", "has no values");
                    return Ok(Some((line, Err((vec![problem], RowTags::default())))));
                }
                let digest = record_digest(&fields);
                let outcome = adapter
                    .parse(&fields, &self.opts)
                    .map(|p| Record::with_digest(p, digest));
                Ok(Some((line, outcome)))
            }
            Input::Lines { reader, line } => {
                let mut text = String::new();
                loop {
                    text.clear();
                    let n = reader.read_line(&mut text).map_err(|e| Error::Io {
                        path: self.file.clone(),
                        source: e,
                    })?;
                    if n == 0 {
                        return Ok(None);
                    }
                    *line += 1;
                    if !text.trim().is_empty() {
                        break;
                    }
                }
                Ok(Some((
                    *line,
                    parse_json_event(text.trim(), &self.opts).map(Record::Event),
                )))
            }
        }
    }
}

/// A parsed record; an order line carries the digest of its fields, which keys it in the store.
pub enum Record {
    Line(Box<DigestedLine>),
    Event(Box<Event>),
}

pub struct DigestedLine {
    pub row: crate::formats::LineRow,
    pub digest: i64,
}

impl Record {
    fn with_digest(p: Parsed, digest: i64) -> Self {
        match p {
            Parsed::Line(row) => Record::Line(Box::new(DigestedLine { row: *row, digest })),
            Parsed::Event(e) => Record::Event(e),
        }
    }
}

fn parse_json_event(text: &str, opts: &Options) -> Result<Box<Event>, (Vec<Problem>, RowTags)> {
    let mut de = serde_json::Deserializer::from_str(text);
    let event: Event = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let e = shopgrowth_core::json::path_error(e);
        let field = if e.field.is_empty() {
            "event".to_owned()
        } else {
            e.field
        };
        (
            vec![Problem::new(&field, "json_invalid", e.reason)],
            RowTags::default(),
        )
    })?;
    let problems = event.validate(opts.now);
    if problems.is_empty() {
        Ok(Box::new(event))
    } else {
        let tags = RowTags {
            is_anonymous: event.user_id.is_none(),
            ..RowTags::default()
        };
        Err((
            problems
                .into_iter()
                .map(|p| Problem::new(&p.field, "invalid", p.reason))
                .collect(),
            tags,
        ))
    }
}
