#!/usr/bin/env bash
# The cart page's dry run (`POST /api/v1/pricing/quote`) and checkout (`POST
# /api/v1/pricing/checkout`, a new order each time: spends the applied campaigns' budgets and
# keeps the answer, each a durable write) against 50 live campaigns of every rule type (half with
# budgets) on the embedded store, and the console's campaign list: sequential
# requests over one keep-alive connection from Python's http.client, p50/p99 in ms. `/health` is
# timed the same way, as the floor of the client and the HTTP stack.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3000}
cargo build --release -q -p shopgrowth
TMP=$(mktemp -d)
# BIN=path/to/another/build compares builds (the script still builds its own first).
BIN=${BIN:-target/release/shopgrowth}
export SHOPGROWTH_PII_KEY=$($BIN pii-key generate) SHOPGROWTH_LOG=warn
KEY=$($BIN --data-dir "$TMP" keys create --name bench --scopes read,ingest,admin 2>/dev/null)
$BIN --data-dir "$TMP" serve --listen 127.0.0.1:18081 > "$TMP/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:18081/health >/dev/null && break; sleep 0.1; done
python3 - "$KEY" 18081 "$N" <<'PY'
import http.client, json, random, sys, time
key, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port)
headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
def call(method, path, body=None):
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    r = conn.getresponse()
    return r.status, r.read()
random.seed(42)
categories = ["母婴", "数码", "服饰", "美妆", "食品", "家居", "运动", "图书"]
for i in range(50):
    rule = [{"type": "price_cut", "off_per_unit": random.randrange(100, 2000)},
            {"type": "threshold", "tiers": [{"threshold": 30000, "off": 3000}, {"threshold": 60000, "off": 7500}]},
            {"type": "threshold", "tiers": [{"threshold": 20000, "off": 2000}], "across_stores": True},
            {"type": "per_every", "every": 20000, "off": 2000, "cap": 10000, "across_stores": True},
            {"type": "percent_off", "percent_bp": random.randrange(500, 3000), "cap": 20000},
            {"type": "nth_item_off", "nth": 2, "percent_bp": 5000},
            {"type": "buy_x_get_y", "buy": 2, "get": 1, "max_times": 3},
            {"type": "gift", "threshold": 30000, "sku": f"gift-{i}", "value": 2000},
            {"type": "bundle", "skus": [f"sku-{random.randrange(200)}", f"sku-{random.randrange(200)}"], "price": 10000},
            {"type": "free_shipping", "threshold": 9900}][i % 10]
    stacking = ["exclusive", {"category": {"name": "item"}}, {"category": {"name": "item"}},
                {"category": {"name": "shop"}}, {"category": {"name": "shop"}},
                {"category": {"name": "platform"}}, {"category": {"name": "shipping", "joint": True}}][i % 7]
    promotion = {"rule": rule, "stacking": stacking, "priority": i % 5,
                 "scope": {} if i % 3 == 0 else {"categories": [random.choice(categories)]}}
    body = {"id": f"q{i:02}", "name": f"promotion {i}", "promotion": promotion}
    if i % 2 == 0:
        body["budget"] = 10**12
    status, answer = call("POST", "/api/v1/campaigns", body)
    assert status in (200, 201), (status, answer)
    status, answer = call("POST", f"/api/v1/campaigns/q{i:02}/transition", {"to": "running"})
    assert status == 200, (status, answer)
def cart():
    return {"lines": [{"sku": f"sku-{random.randrange(200)}", "quantity": random.randrange(1, 4),
                       "unit_price": random.randrange(500, 30000), "category": [random.choice(categories)],
                       "store": random.choice(["s1", "s2", "s3", "s4"])} for _ in range(20)],
            "shipping_fee": 1000}
carts = [cart() for _ in range(200)]
def timed(name, method, path, body_of):
    took = []
    for i in range(n):
        started = time.perf_counter()
        status, answer = call(method, path, body_of(i))
        took.append(time.perf_counter() - started)
        assert status == 200, (status, answer[:300])
    took.sort()
    print(f"{name:28} p50 {took[n // 2] * 1e3:.2f} ms  p99 {took[int(n * 0.99)] * 1e3:.2f} ms  ({len(answer)} bytes)")
print(f"nproc: {__import__('os').cpu_count()}; {n} requests each; 50 live campaigns")
timed("GET /health", "GET", "/health", lambda i: None)
timed("GET /api/v1/campaigns", "GET", "/api/v1/campaigns", lambda i: None)
timed("POST /api/v1/pricing/quote", "POST", "/api/v1/pricing/quote", lambda i: {"cart": carts[i % 200]})
timed("POST /api/v1/pricing/checkout", "POST", "/api/v1/pricing/checkout",
      lambda i: {"order_id": f"o{i}", "user_id": f"u{i % 100}", "cart": carts[i % 200]})
PY
