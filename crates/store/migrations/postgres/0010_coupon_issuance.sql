-- How a template's coupons reach customers besides claims and bulk issuance: shown in the coupon
-- centre (领券中心) for customers to claim, and issued by themselves to each new user
-- (`new_user`) or on a behaviour event (`event:TYPE`, e.g. `event:add_to_cart`).
ALTER TABLE coupon_templates ADD COLUMN in_centre BIGINT NOT NULL DEFAULT 0;
ALTER TABLE coupon_templates ADD COLUMN issue_on TEXT;
