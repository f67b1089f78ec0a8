-- Claim limits per device and per phone number (a keyed hash, never the number), counted like the
-- per-user limit in coupon_claims_per_user under the holder `device:…` or `phone:…`.
ALTER TABLE coupon_templates ADD COLUMN per_device_limit BIGINT;
ALTER TABLE coupon_templates ADD COLUMN per_phone_limit BIGINT;
