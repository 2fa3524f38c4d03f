-- 008_users_insert_notify: a new user row is announced on llmgw_auth too
-- (issue #15, 2). A JWT caller's user is cached per process with what the
-- database had, possibly no row at all; /user/new with limits or models
-- for that user must reach the cache at once, as an update does. The
-- spend shipper's upsert of an existing user updates only spend, which
-- stays silent.

DROP TRIGGER users_auth_notify ON users;
CREATE TRIGGER users_auth_notify
    AFTER INSERT OR DELETE OR UPDATE OF models, max_budget, user_role, tpm_limit,
        rpm_limit, max_parallel_requests
    ON users FOR EACH ROW EXECUTE FUNCTION llmgw_auth_notify();
