"""The segment benchmark's questions asked of DuckDB over the same users and behaviour.

usage: segments_duckdb.py DIR TODAY [REPEAT]
DIR holds users.csv and acts.csv written by `shopgrowth bench segments --out DIR`; TODAY is the
day number the windows end on. Loads both into tables (timed apart), then runs each question
REPEAT times and prints JSON: counts, p50 and p99 milliseconds.
"""
import json
import statistics
import sys
import time

import duckdb

folder, today = sys.argv[1], int(sys.argv[2])
repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 30
con = duckdb.connect()
started = time.perf_counter()
con.execute(f"""
CREATE TABLE users AS
SELECT "user", gender, city_tier, monetary, orders, rfm_f,
       CASE WHEN tags IS NULL THEN []::VARCHAR[] ELSE string_split(tags, '|') END AS tags
FROM read_csv('{folder}/users.csv', header = true, columns = {{
  'user': 'VARCHAR', 'gender': 'VARCHAR', 'city_tier': 'VARCHAR', 'monetary': 'BIGINT',
  'orders': 'BIGINT', 'rfm_f': 'BIGINT', 'tags': 'VARCHAR'}})""")
con.execute(f"""
CREATE TABLE acts AS
SELECT * FROM read_csv('{folder}/acts.csv', header = true, columns = {{
  'user': 'VARCHAR', 'event': 'VARCHAR', 'day': 'INTEGER', 'category': 'VARCHAR'}})""")
load_seconds = time.perf_counter() - started

questions = [
    f"""SELECT count(*) FROM users u
WHERE u."user" IN (SELECT "user" FROM acts WHERE event = 'purchase' AND category = '母婴'
                   AND day > {today - 30} AND day <= {today})
  AND u.city_tier IN ('tier1', 'tier2') AND u.monetary >= 50000
  AND NOT list_contains(u.tags, '流失客户') AND u.rfm_f >= 3""",
    f"""SELECT count(*) FROM users u
WHERE u."user" IN (SELECT "user" FROM acts WHERE event = 'add_to_cart'
                   AND day > {today - 90} AND day <= {today}
                   GROUP BY "user" HAVING count(*) >= 3)
  AND u.gender = 'female' AND u.orders >= 2
  AND list_contains(u.tags, 'interest:美妆') AND NOT list_contains(u.tags, 'lifecycle:sleeping')""",
]
results = []
for sql in questions:
    timings = []
    count = None
    for _ in range(repeat):
        t = time.perf_counter()
        count = con.execute(sql).fetchone()[0]
        timings.append((time.perf_counter() - t) * 1000)
    timings.sort()
    p99 = timings[min(len(timings) - 1, max(0, -(-len(timings) * 99 // 100) - 1))]
    results.append({"matched": count, "p50_ms": statistics.median(timings), "p99_ms": p99})
rows = {
    "users": con.execute("SELECT count(*) FROM users").fetchone()[0],
    "acts": con.execute("SELECT count(*) FROM acts").fetchone()[0],
}
print(json.dumps({
    "version": duckdb.__version__,
    "threads": con.execute("SELECT current_setting('threads')").fetchone()[0],
    "load_seconds": load_seconds,
    "repeat": repeat,
    **rows,
    "questions": results,
}))
