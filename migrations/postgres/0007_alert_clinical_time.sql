-- When an alert's finding happened clinically (the onset, sample, reading, scan or visit
-- that made it fire; for clocks, the start of the clock), epoch milliseconds. A report's
-- data cut-off goes by it, not by when the alert was raised: a back-filled trial raises
-- every alert today. NULL for alerts raised before this column existed.
ALTER TABLE alerts ADD COLUMN clinical_time BIGINT;
