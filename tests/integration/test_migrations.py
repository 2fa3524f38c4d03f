"""bin/llmgw-migrate: in order, recorded, idempotent, stops at a failure."""
import os
import subprocess

from conftest import TREE

MIGRATE = os.path.join(TREE, "bin", "llmgw-migrate")


def migrate(pg, db, d, *extra):
    return subprocess.run([MIGRATE, "-d", pg.conninfo(db), "-m", d, *extra],
                          capture_output=True, text=True)


def test_second_run_is_a_noop(pg):
    d = os.path.join(TREE, "migrations")
    before = pg.psql("SELECT string_agg(version || ':' || applied_at, ',' ORDER BY version) FROM schema_migrations")
    r = migrate(pg, "llmgw", d)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0 migration(s) applied"
    after = pg.psql("SELECT string_agg(version || ':' || applied_at, ',' ORDER BY version) FROM schema_migrations")
    assert before == after
    names = pg.psql("SELECT string_agg(name, ',' ORDER BY version) FROM schema_migrations")
    files = sorted(f[:-4] for f in os.listdir(d) if f.endswith(".sql"))
    assert names.split(",") == files


def test_failure_stops_and_keeps_earlier(pg, tmp_path):
    pg.createdb("llmgw_migfail")
    (tmp_path / "001_first.sql").write_text("CREATE TABLE first_t (id int);")
    (tmp_path / "002_broken.sql").write_text(
        "CREATE TABLE second_t (id int);\nCREATE TABLE oops (;")
    (tmp_path / "010_third.sql").write_text("CREATE TABLE third_t (id int);")
    (tmp_path / "README.txt").write_text("not a migration")
    r = migrate(pg, "llmgw_migfail", str(tmp_path))
    assert r.returncode != 0
    assert "002_broken.sql" in r.stderr
    assert "syntax error" in r.stderr and "SQLSTATE 42601" in r.stderr
    assert pg.psql("SELECT string_agg(name, ',' ORDER BY version) FROM schema_migrations",
                   db="llmgw_migfail") == "001_first"
    tables = pg.psql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
                     "WHERE schemaname = 'public'", db="llmgw_migfail")
    # The failed file rolled back whole; the later one never ran.
    assert tables == "first_t,schema_migrations"
    # Fixed, the next run applies the rest in order.
    (tmp_path / "002_broken.sql").write_text("CREATE TABLE second_t (id int);")
    r = migrate(pg, "llmgw_migfail", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["applied 002_broken", "applied 010_third",
                                     "2 migration(s) applied"]
    r = migrate(pg, "llmgw_migfail", str(tmp_path), "-s")
    assert r.stdout.splitlines() == ["applied  001_first", "applied  002_broken",
                                     "applied  010_third"]


def test_unreachable_database_is_reported(tmp_path):
    r = subprocess.run([MIGRATE, "-d", "host=%s dbname=x" % tmp_path, "-m", "."],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "cannot connect" in r.stderr
