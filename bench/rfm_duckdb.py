"""RFM of UCI Online Retail in DuckDB SQL, by the definition in docs/rfm.md: the reference for
`shopgrowth rfm`. Writes one CSV row per customer and prints seconds as JSON."""
import json
import sys
import time

import duckdb

path, out = sys.argv[1], sys.argv[2]
SQL = f"""
WITH raw AS (SELECT * FROM read_csv('{path}', header = true, all_varchar = true)),
clean AS (
  SELECT DISTINCT * FROM raw
  WHERE coalesce(CustomerID, '') <> '' AND coalesce(InvoiceNo, '') <> '' AND coalesce(StockCode, '') <> ''
    AND TRY_CAST(UnitPrice AS DECIMAL(18, 6)) > 0
    AND TRY_CAST(UnitPrice AS DECIMAL(18, 6)) * 100 = floor(TRY_CAST(UnitPrice AS DECIMAL(18, 6)) * 100)
    AND TRY_CAST(Quantity AS BIGINT) <> 0
    AND (TRY_CAST(Quantity AS BIGINT) > 0) = (NOT starts_with(InvoiceNo, 'C'))
),
lines AS (
  SELECT CustomerID AS c, InvoiceNo AS inv, starts_with(InvoiceNo, 'C') AS ret,
         CAST(substr(InvoiceDate, 1, 10) AS DATE) AS d,
         abs(CAST(Quantity AS BIGINT)) * CAST(CAST(UnitPrice AS DECIMAL(18, 6)) * 100 AS BIGINT) AS amt
  FROM clean
),
ref AS (SELECT max(d) + 1 AS r FROM lines),
cust AS (
  SELECT c,
         (SELECT r FROM ref) - max(d) FILTER (WHERE NOT ret) AS recency,
         count(DISTINCT inv) FILTER (WHERE NOT ret) AS frequency,
         sum(CASE WHEN ret THEN -amt ELSE amt END) AS monetary
  FROM lines GROUP BY c HAVING count(*) FILTER (WHERE NOT ret) > 0
),
sorted AS (
  SELECT list(recency ORDER BY recency) AS rv, list(frequency ORDER BY frequency) AS fv,
         list(monetary ORDER BY monetary) AS mv, count(*) AS n FROM cust
),
t AS (
  SELECT [rv[CAST(ceil(k * n / 5.0) AS BIGINT)] FOR k IN [1, 2, 3, 4]] AS rt,
         [fv[CAST(ceil(k * n / 5.0) AS BIGINT)] FOR k IN [1, 2, 3, 4]] AS ft,
         [mv[CAST(ceil(k * n / 5.0) AS BIGINT)] FOR k IN [1, 2, 3, 4]] AS mt
  FROM sorted
),
scored AS (
  SELECT c, recency, frequency, monetary,
         5 - ((recency > rt[1])::INT + (recency > rt[2])::INT + (recency > rt[3])::INT + (recency > rt[4])::INT) AS r,
         1 + (frequency > ft[1])::INT + (frequency > ft[2])::INT + (frequency > ft[3])::INT + (frequency > ft[4])::INT AS f,
         1 + (monetary > mt[1])::INT + (monetary > mt[2])::INT + (monetary > mt[3])::INT + (monetary > mt[4])::INT AS m
  FROM cust, t
)
SELECT c AS customer, recency AS recency_days, frequency, monetary, r, f, m,
       CASE WHEN m > avg(m) OVER () THEN 'important_' ELSE 'general_' END ||
       CASE WHEN r > avg(r) OVER () AND f > avg(f) OVER () THEN 'value'
            WHEN r > avg(r) OVER () THEN 'develop'
            WHEN f > avg(f) OVER () THEN 'keep'
            ELSE 'retain' END AS rfm_class
FROM scored ORDER BY customer
"""
start = time.perf_counter()
con = duckdb.connect()
con.execute(f"COPY ({SQL}) TO '{out}' (HEADER, DELIMITER ',')")
print(json.dumps({"seconds": time.perf_counter() - start, "version": duckdb.__version__,
                  "threads": con.execute("SELECT current_setting('threads')").fetchone()[0]}))
