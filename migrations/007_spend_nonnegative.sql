-- 007_spend_nonnegative: spend is money spent, never negative (issue #15,
-- 6): a row or an admin update that would make it so is refused by the
-- database itself, whatever the caller checked.

ALTER TABLE keys ADD CONSTRAINT keys_spend_nonnegative CHECK (spend >= 0);
ALTER TABLE users ADD CONSTRAINT users_spend_nonnegative CHECK (spend >= 0);
ALTER TABLE teams ADD CONSTRAINT teams_spend_nonnegative CHECK (spend >= 0);
ALTER TABLE spend_logs ADD CONSTRAINT spend_logs_spend_nonnegative CHECK (spend >= 0);
