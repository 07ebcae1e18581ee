-- Sign-in sessions of the browser inspector (src/admin/ui/). Only the
-- SHA-256 of the session id is stored: a copy of the database does not
-- hold usable cookies. Kept in the database so that a session survives a
-- restart and works on every instance behind one admin address.
CREATE TABLE admin_sessions (
    id_hash    TEXT   PRIMARY KEY NOT NULL,
    -- Sent back in X-CSRF-Token by every state-changing request.
    csrf_token TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);
