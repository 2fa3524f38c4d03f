-- 006_roles_members: LiteLLM's user roles and team members.
-- A user's role is one of LiteLLM's (LitellmUserRoles); a user created on
-- the spot by /key/generate is an internal_user_viewer (set by the
-- gateway). Team members carry their role in the team (LiteLLM's
-- members_with_roles): a team 'admin' manages the team's keys and members.
-- NOT VALID: rows imported from elsewhere are not re-checked, new ones are.

ALTER TABLE users ADD CONSTRAINT users_user_role_check CHECK (user_role IN
    ('proxy_admin', 'proxy_admin_viewer', 'internal_user',
     'internal_user_viewer', 'team', 'customer')) NOT VALID;

CREATE TABLE team_members (
    team_id    text NOT NULL REFERENCES teams (team_id) ON DELETE CASCADE,
    user_id    text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    role       text NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user_idx ON team_members (user_id);
