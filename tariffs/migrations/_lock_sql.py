"""SQL of the approved-version lock, shared by migrations 0003+ (0002 keeps its own copy)."""

APPROVAL_RECORD_PG = """
    OR NEW.approved_at IS DISTINCT FROM OLD.approved_at
    OR NEW.approved_by_id IS DISTINCT FROM OLD.approved_by_id
    OR NEW.approved_under_cap_id IS DISTINCT FROM OLD.approved_under_cap_id
    OR (OLD.published_at IS NOT NULL AND NEW.published_at IS DISTINCT FROM OLD.published_at)"""

APPROVAL_RECORD_SQLITE = """
    OR NEW.approved_at IS NOT OLD.approved_at
    OR NEW.approved_by_id IS NOT OLD.approved_by_id
    OR NEW.approved_under_cap_id IS NOT OLD.approved_under_cap_id
    OR (OLD.published_at IS NOT NULL AND NEW.published_at IS NOT OLD.published_at)"""


def pg_function(*, with_approval_record: bool) -> str:
    extra = APPROVAL_RECORD_PG if with_approval_record else ""
    return f"""
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
    OR (OLD.valid_to IS NOT NULL AND NEW.valid_to IS DISTINCT FROM OLD.valid_to){extra}
  ) THEN
    RAISE EXCEPTION 'tariffversion_locked: approved tariff version % cannot change; create a new version', OLD.id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'tariffversion_locked';
  END IF;
  RETURN NEW;
END
$$ LANGUAGE plpgsql;
"""


def sqlite_triggers(*, with_approval_record: bool) -> list[str]:
    extra = APPROVAL_RECORD_SQLITE if with_approval_record else ""
    return [
        "DROP TRIGGER IF EXISTS tariffs_tariffversion_guard_update;",
        f"""
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
    OR (OLD.valid_to IS NOT NULL AND NEW.valid_to IS NOT OLD.valid_to){extra})
BEGIN
  SELECT RAISE(ABORT, 'tariffversion_locked: an approved tariff version cannot change; create a new version');
END;
""",
    ]
