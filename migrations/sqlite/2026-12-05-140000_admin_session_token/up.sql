-- Which admin token started each inspector session: a fingerprint of it
-- (`admin::auth::session_fingerprint`, a domain-separated SHA-256, never
-- the token). A session opens nothing once the configured token is another
-- one, so rotating the token (restart or reload, on any instance) ends every
-- older session. Sessions from before this migration have no fingerprint
-- ('') and end at the upgrade: nobody can say which token started them.
ALTER TABLE admin_sessions ADD COLUMN token_fingerprint TEXT NOT NULL DEFAULT '';
