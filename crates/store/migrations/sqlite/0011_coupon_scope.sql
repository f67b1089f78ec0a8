-- Which cart lines a template's coupons apply to (SKUs, categories, stores, exclusions), as the
-- pricing engine's scope in JSON; NULL for the whole cart.
ALTER TABLE coupon_templates ADD COLUMN scope TEXT;
