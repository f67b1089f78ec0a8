-- A coupon template may name a prefix for its codes (DOUBLE11-…), so customers and support staff
-- recognise a code's campaign; the store puts it before each generated code when it issues one.

ALTER TABLE coupon_templates ADD COLUMN code_prefix TEXT;
