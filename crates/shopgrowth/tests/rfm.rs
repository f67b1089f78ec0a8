//! `shopgrowth rfm` agrees customer by customer with an independent computation of the
//! definition in docs/rfm.md, written in SQL over the raw CSV text (SQLite), on a hand-made
//! sample always and on the shared Online Retail file when ../shared is present.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const DEFINITION_SQL: &str = "
WITH clean AS (
  SELECT DISTINCT * FROM raw
  WHERE cust <> '' AND inv <> '' AND stock <> ''
    AND CAST(price AS REAL) > 0
    AND (instr(price, '.') = 0 OR length(price) - instr(price, '.') <= 2)
    AND CAST(qty AS INTEGER) <> 0
    AND (CAST(qty AS INTEGER) > 0) = (substr(inv, 1, 1) <> 'C')
),
lines AS (
  SELECT cust AS c, inv, substr(inv, 1, 1) = 'C' AS ret, substr(dt, 1, 10) AS d,
         abs(CAST(qty AS INTEGER)) * CAST(round(CAST(price AS REAL) * 100) AS INTEGER) AS amt
  FROM clean
),
ref AS (SELECT julianday(max(d)) + 1 AS r FROM lines),
cust AS (
  SELECT c,
         CAST((SELECT r FROM ref) - julianday(max(CASE WHEN NOT ret THEN d END)) AS INTEGER) AS recency,
         count(DISTINCT CASE WHEN NOT ret THEN inv END) AS frequency,
         sum(CASE WHEN ret THEN -amt ELSE amt END) AS monetary
  FROM lines GROUP BY c HAVING sum(NOT ret) > 0
),
t AS (
  SELECT
    (SELECT recency FROM cust ORDER BY recency LIMIT 1 OFFSET (1 * (SELECT count(*) FROM cust) + 4) / 5 - 1) AS r1,
    (SELECT recency FROM cust ORDER BY recency LIMIT 1 OFFSET (2 * (SELECT count(*) FROM cust) + 4) / 5 - 1) AS r2,
    (SELECT recency FROM cust ORDER BY recency LIMIT 1 OFFSET (3 * (SELECT count(*) FROM cust) + 4) / 5 - 1) AS r3,
    (SELECT recency FROM cust ORDER BY recency LIMIT 1 OFFSET (4 * (SELECT count(*) FROM cust) + 4) / 5 - 1) AS r4,
    (SELECT frequency FROM cust ORDER BY frequency LIMIT 1 OFFSET (1 * (SELECT count(*) FROM cust) + 4) / 5 - 1) AS f1,
    (SELECT frequency FROM cust ORDER BY frequency LIMIT 1 OFFSET (2 * (SELECT count(*) FROM cust) + 4) / 5 - 1) AS f2,
    (SELECT frequency FROM cust ORDER BY frequency LIMIT 1 OFFSET (3 * (SELECT count(*) FROM cust) + 4) / 5 - 1) AS f3,
    (SELECT frequency FROM cust ORDER BY frequency LIMIT 1 OFFSET (4 * (SELECT count(*) FROM cust) + 4) / 5 - 1) AS f4,
    (SELECT monetary FROM cust ORDER BY monetary LIMIT 1 OFFSET (1 * (SELECT count(*) FROM cust) + 4) / 5 - 1) AS m1,
    (SELECT monetary FROM cust ORDER BY monetary LIMIT 1 OFFSET (2 * (SELECT count(*) FROM cust) + 4) / 5 - 1) AS m2,
    (SELECT monetary FROM cust ORDER BY monetary LIMIT 1 OFFSET (3 * (SELECT count(*) FROM cust) + 4) / 5 - 1) AS m3,
    (SELECT monetary FROM cust ORDER BY monetary LIMIT 1 OFFSET (4 * (SELECT count(*) FROM cust) + 4) / 5 - 1) AS m4
),
scored AS (
  SELECT c, recency, frequency, monetary,
    5 - ((recency > r1) + (recency > r2) + (recency > r3) + (recency > r4)) AS r,
    1 + (frequency > f1) + (frequency > f2) + (frequency > f3) + (frequency > f4) AS f,
    1 + (monetary > m1) + (monetary > m2) + (monetary > m3) + (monetary > m4) AS m
  FROM cust, t
)
SELECT c, recency, frequency, monetary, r, f, m,
  CASE WHEN m > avg(m) OVER () THEN 'important_' ELSE 'general_' END ||
  CASE WHEN r > avg(r) OVER () AND f > avg(f) OVER () THEN 'value'
       WHEN r > avg(r) OVER () THEN 'develop'
       WHEN f > avg(f) OVER () THEN 'keep' ELSE 'retain' END
FROM scored ORDER BY c";

type Rows = BTreeMap<String, Vec<String>>;

fn by_sql(file: &Path) -> Rows {
    let db = rusqlite::Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
    db.execute_batch("CREATE TABLE raw (inv TEXT, stock TEXT, descr TEXT, qty TEXT, dt TEXT, price TEXT, cust TEXT, country TEXT)")
        .unwrap_or_else(|e| panic!("{e}"));
    let input: Box<dyn std::io::Read> = if file.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(
            std::fs::File::open(file).unwrap_or_else(|e| panic!("{e}")),
        ))
    } else {
        Box::new(std::fs::File::open(file).unwrap_or_else(|e| panic!("{e}")))
    };
    let tx = db.unchecked_transaction().unwrap_or_else(|e| panic!("{e}"));
    {
        let mut insert = tx
            .prepare("INSERT INTO raw VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            .unwrap_or_else(|e| panic!("{e}"));
        for record in csv::Reader::from_reader(input).records() {
            let r = record.unwrap_or_else(|e| panic!("{e}"));
            let f: Vec<&str> = (0..8).map(|i| r.get(i).unwrap_or("")).collect();
            insert
                .execute(rusqlite::params_from_iter(f))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    tx.commit().unwrap_or_else(|e| panic!("{e}"));
    let mut stmt = db.prepare(DEFINITION_SQL).unwrap_or_else(|e| panic!("{e}"));
    let rows = stmt
        .query_map([], |r| {
            let mut v = Vec::new();
            for i in 1..7 {
                v.push(r.get::<_, i64>(i)?.to_string());
            }
            v.push(r.get::<_, String>(7)?);
            Ok((r.get::<_, String>(0)?, v))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    rows.map(|r| r.unwrap_or_else(|e| panic!("{e}"))).collect()
}

fn by_shopgrowth(file: &Path, out: &Path) -> Rows {
    let status = Command::new(env!("CARGO_BIN_EXE_shopgrowth"))
        .args(["rfm", "--format", "online-retail", "--out"])
        .arg(out)
        .arg(file)
        .env("SHOPGROWTH_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let mut rows = Rows::new();
    for record in csv::Reader::from_path(out)
        .unwrap_or_else(|e| panic!("{e}"))
        .records()
    {
        let r = record.unwrap_or_else(|e| panic!("{e}"));
        rows.insert(r[0].to_owned(), (1..8).map(|i| r[i].to_owned()).collect());
    }
    rows
}

fn assert_agree(file: &Path) -> usize {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ours = by_shopgrowth(file, &dir.path().join("rfm.csv"));
    let theirs = by_sql(file);
    let differ: Vec<&String> = ours
        .keys()
        .chain(theirs.keys())
        .filter(|c| ours.get(*c) != theirs.get(*c))
        .collect();
    assert!(
        differ.is_empty(),
        "{} customers differ, e.g. {:?}: ours {:?}, SQL {:?}",
        differ.len(),
        differ[0],
        ours.get(differ[0]),
        theirs.get(differ[0])
    );
    ours.len()
}

const SAMPLE: &str =
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,A,X,6,2010-12-01 08:26:00,2.55,17850,United Kingdom
536365,B,\"Y, large\",6,2010-12-01 08:26:00,3.39,17850,United Kingdom
536365,B,\"Y, large\",6,2010-12-01 08:26:00,3.39,17850,United Kingdom
536366,A,X,1,2010-12-03 10:00:00,2.55,17850,United Kingdom
C536379,A,X,-1,2010-12-04 09:41:00,2.55,17850,United Kingdom
536400,C,Z,2,2010-12-02 11:00:00,10.00,12000,France
536401,C,Z,1,2010-12-05 11:00:00,10.00,12001,France
536402,C,Z,1,2010-12-05 11:00:00,0.0,12002,France
C536403,C,Z,-1,2010-12-05 11:00:00,10.00,12003,France
536404,D,W,3,2010-12-01 09:00:00,0.001,12004,France
536405,D,W,30,2010-12-05 12:00:00,1.25,12005,France
536406,E,V,1,2010-12-06 12:00:00,99.99,,France
";

#[test]
fn agrees_with_sql_on_a_sample() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("sample.csv");
    std::fs::write(&file, SAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        assert_agree(&file),
        4,
        "17850, 12000, 12001 and 12005 have sales"
    );
}

/// Dataset check on ../shared/data/online_retail.
#[test]
fn agrees_with_sql_on_online_retail() {
    let Some(file) = common::shared_online_retail() else {
        return;
    };
    assert_eq!(assert_agree(&file), 4_338);
}
