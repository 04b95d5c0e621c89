-- Sample rows (run once, when demo.events is empty). __ROWS__ is replaced by the loader.
INSERT INTO demo.users SELECT toUInt32(number), concat('user_', toString(number)), ['DE', 'FR', 'US', 'JP'][number % 4 + 1], toDateTime('2024-01-01 00:00:00') + number * 3600 FROM system.numbers LIMIT 1000;
INSERT INTO demo.events SELECT toDate('2024-01-01') + number % 90, number, toUInt32(number % 1000), ['view', 'click', 'buy'][number % 3 + 1], (number % 997) / 10 FROM system.numbers LIMIT __ROWS__;
INSERT INTO demo.events_backup SELECT * FROM demo.events WHERE id < 1000;
INSERT INTO demo.test_table VALUES (1, 'skipped by the sync'), (2, 'also skipped');
