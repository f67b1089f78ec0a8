"""Loads a CSV (gzip accepted) into a DuckDB table in a database file: the reference for
`shopgrowth import`. Prints rows and seconds as JSON."""
import json
import sys
import time

import duckdb

path, db = sys.argv[1], sys.argv[2]
start = time.perf_counter()
con = duckdb.connect(db)
con.execute(f"CREATE TABLE lines AS SELECT * FROM read_csv('{path}', header = true)")
rows = con.execute("SELECT count(*) FROM lines").fetchone()[0]
con.execute("CHECKPOINT")
con.close()
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - start, "threads": duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0], "version": duckdb.__version__}))
