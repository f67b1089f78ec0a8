-- A flash-sale hold as one call, so it is one round trip and one implicit transaction: the bucket
-- row it takes is locked only while the call runs and commits, not across the client's round
-- trips (what Redis's Lua check-and-decrement gives, with the hold durable). Every change is a
-- conditional write on a row this transaction holds:
--   1. an existing reservation under the id is answered by the caller (idempotency);
--   2. the sale must be open;
--   3. a unit is taken from the first bucket with room that no other transaction holds
--      (`FOR UPDATE SKIP LOCKED`), starting at `p_start`; only when every bucket with room is
--      held does it wait for them, one at a time, so "sold out" is said only when none had room;
--   4. the user's count rises only within the sale's per-user limit (a first purchase above it is
--      refused before anything is taken); over it, the bucket's units go back (the row is still
--      ours, so nobody saw them);
--   5. the reservation and its trail entry are written. A concurrent hold under the same id
--      fails the call with a unique violation, undoing all of it.
-- Outcome: reserved, exists, not_found, closed, sold_out or over_limit.
CREATE FUNCTION shopgrowth_reserve_flash(p_sale TEXT, p_id TEXT, p_user TEXT, p_qty BIGINT,
                                         p_now BIGINT, p_start BIGINT, p_buckets BIGINT)
RETURNS TABLE (outcome TEXT, bucket INTEGER, expires_at BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    s flash_sales%ROWTYPE;
    taken_from INTEGER;
    candidate INTEGER;
BEGIN
    PERFORM 1 FROM flash_reservations r WHERE r.id = p_id;
    IF FOUND THEN
        RETURN QUERY SELECT 'exists'::TEXT, NULL::INTEGER, NULL::BIGINT;
        RETURN;
    END IF;
    SELECT * INTO s FROM flash_sales f WHERE f.id = p_sale;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::TEXT, NULL::INTEGER, NULL::BIGINT;
        RETURN;
    END IF;
    IF p_now < s.starts_at OR p_now >= s.ends_at THEN
        RETURN QUERY SELECT 'closed'::TEXT, NULL::INTEGER, NULL::BIGINT;
        RETURN;
    END IF;
    IF p_qty > s.per_user_limit THEN
        RETURN QUERY SELECT 'over_limit'::TEXT, NULL::INTEGER, NULL::BIGINT;
        RETURN;
    END IF;
    UPDATE flash_sale_buckets b SET taken = b.taken + p_qty
    WHERE b.sale_id = p_sale AND b.taken + p_qty <= b.stock AND b.bucket = (
        SELECT f.bucket FROM flash_sale_buckets f
        WHERE f.sale_id = p_sale AND f.taken + p_qty <= f.stock
        ORDER BY (f.bucket + p_buckets - p_start) % p_buckets LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING b.bucket INTO taken_from;
    IF taken_from IS NULL THEN
        FOR candidate IN
            SELECT f.bucket FROM flash_sale_buckets f
            WHERE f.sale_id = p_sale AND f.taken + p_qty <= f.stock
            ORDER BY (f.bucket + p_buckets - p_start) % p_buckets
        LOOP
            UPDATE flash_sale_buckets b SET taken = b.taken + p_qty
            WHERE b.sale_id = p_sale AND b.bucket = candidate AND b.taken + p_qty <= b.stock
            RETURNING b.bucket INTO taken_from;
            EXIT WHEN taken_from IS NOT NULL;
        END LOOP;
    END IF;
    IF taken_from IS NULL THEN
        RETURN QUERY SELECT 'sold_out'::TEXT, NULL::INTEGER, NULL::BIGINT;
        RETURN;
    END IF;
    INSERT INTO flash_sale_users AS u (sale_id, user_id, quantity) VALUES (p_sale, p_user, p_qty)
    ON CONFLICT (sale_id, user_id) DO UPDATE SET quantity = u.quantity + p_qty
    WHERE u.quantity + p_qty <= s.per_user_limit;
    IF NOT FOUND THEN
        UPDATE flash_sale_buckets b SET taken = b.taken - p_qty
        WHERE b.sale_id = p_sale AND b.bucket = taken_from;
        RETURN QUERY SELECT 'over_limit'::TEXT, NULL::INTEGER, NULL::BIGINT;
        RETURN;
    END IF;
    INSERT INTO flash_reservations (id, sale_id, user_id, quantity, state, expires_at, created_at,
                                    bucket)
    VALUES (p_id, p_sale, p_user, p_qty, 'reserved', p_now + s.hold_ms, p_now, taken_from);
    INSERT INTO promotion_events (at, kind, promotion_type, promotion_id, subject, user_id, amount)
    VALUES (p_now, 'reserved', 'flash_sale', p_sale, p_id, p_user, s.price * p_qty);
    RETURN QUERY SELECT 'reserved'::TEXT, taken_from, p_now + s.hold_ms;
END;
$$;
