DROP TABLE object_leases;
DROP TABLE event_attempts;
DROP TABLE webhook_events;
