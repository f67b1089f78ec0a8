-- A flash sale's stock split over bucket rows, so reservations on different buckets commit in
-- parallel instead of queueing on one row (the sum of the buckets is the sale's stock; each
-- bucket is taken only by `taken + q <= stock`). A reservation remembers its bucket, and returned
-- units go back to it. `flash_sales.taken` is no longer written; reads sum the buckets.
CREATE TABLE flash_sale_buckets (
    sale_id TEXT NOT NULL,
    bucket  INTEGER NOT NULL,
    stock   BIGINT NOT NULL,
    taken   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (sale_id, bucket)
);
INSERT INTO flash_sale_buckets (sale_id, bucket, stock, taken)
SELECT id, 0, stock, taken FROM flash_sales;
ALTER TABLE flash_reservations ADD COLUMN bucket INTEGER NOT NULL DEFAULT 0;
