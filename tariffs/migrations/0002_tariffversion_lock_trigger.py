"""Database guard: approved / published tariff versions never change.

Allowed on a locked row: approved → published (with published_at), and closing an open
``valid_to`` once (when a successor version is approved).  Everything else — prices
(components), VAT, dates, going back to draft, deleting — is refused by the database, so
no code path (admin, shell, raw SQL) can rewrite what customers were billed under.
"""

from django.db import migrations

PG_UP = """
CREATE OR REPLACE FUNCTION tariffs_tariffversion_guard() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.status IN ('approved', 'published') THEN
      RAISE EXCEPTION 'tariffversion_locked: approved tariff version % cannot be deleted', OLD.id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'tariffversion_locked';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.status IN ('approved', 'published') AND (
       NEW.components IS DISTINCT FROM OLD.components
    OR NEW.valid_from IS DISTINCT FROM OLD.valid_from
    OR NEW.vat_rate IS DISTINCT FROM OLD.vat_rate
    OR NEW.prices_include_vat IS DISTINCT FROM OLD.prices_include_vat
    OR NEW.tariff_id IS DISTINCT FROM OLD.tariff_id
    OR NEW.number IS DISTINCT FROM OLD.number
    OR NEW.status = 'draft'
    OR (OLD.status = 'published' AND NEW.status <> 'published')
    OR (OLD.valid_to IS NOT NULL AND NEW.valid_to IS DISTINCT FROM OLD.valid_to)
  ) THEN
    RAISE EXCEPTION 'tariffversion_locked: approved tariff version % cannot change; create a new version', OLD.id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'tariffversion_locked';
  END IF;
  RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER tariffs_tariffversion_guard
  BEFORE UPDATE OR DELETE ON tariffs_tariffversion
  FOR EACH ROW EXECUTE FUNCTION tariffs_tariffversion_guard();
"""
PG_DOWN = """
DROP TRIGGER IF EXISTS tariffs_tariffversion_guard ON tariffs_tariffversion;
DROP FUNCTION IF EXISTS tariffs_tariffversion_guard();
"""

SQLITE_UP = [
    """
CREATE TRIGGER tariffs_tariffversion_guard_update
BEFORE UPDATE ON tariffs_tariffversion FOR EACH ROW
WHEN OLD.status IN ('approved', 'published') AND (
       NEW.components IS NOT OLD.components
    OR NEW.valid_from IS NOT OLD.valid_from
    OR CAST(NEW.vat_rate AS REAL) IS NOT CAST(OLD.vat_rate AS REAL)
    OR NEW.prices_include_vat IS NOT OLD.prices_include_vat
    OR NEW.tariff_id IS NOT OLD.tariff_id
    OR NEW.number IS NOT OLD.number
    OR NEW.status = 'draft'
    OR (OLD.status = 'published' AND NEW.status <> 'published')
    OR (OLD.valid_to IS NOT NULL AND NEW.valid_to IS NOT OLD.valid_to))
BEGIN
  SELECT RAISE(ABORT, 'tariffversion_locked: an approved tariff version cannot change; create a new version');
END;
""",
    """
CREATE TRIGGER tariffs_tariffversion_guard_delete
BEFORE DELETE ON tariffs_tariffversion FOR EACH ROW
WHEN OLD.status IN ('approved', 'published')
BEGIN
  SELECT RAISE(ABORT, 'tariffversion_locked: an approved tariff version cannot be deleted');
END;
""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS tariffs_tariffversion_guard_update;",
    "DROP TRIGGER IF EXISTS tariffs_tariffversion_guard_delete;",
]


def up(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_UP, params=None)
    elif vendor == "sqlite":
        for sql in SQLITE_UP:
            schema_editor.execute(sql)


def down(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_DOWN, params=None)
    elif vendor == "sqlite":
        for sql in SQLITE_DOWN:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("tariffs", "0001_initial")]
    operations = [migrations.RunPython(up, down)]
