"""Issued invoices never change: PostgreSQL triggers refuse it below the ORM.

* UPDATE of an issued invoice (``OLD.number IS NOT NULL``) may only move the payment
  state, the allocated amount and the stored PDF; any other column change is refused.
* DELETE of an issued invoice is refused.
* INSERT / UPDATE / DELETE of lines of an issued invoice is refused (statement-level
  INSERT check over the transition table, so bulk inserts of draft lines stay cheap).

SQLite (embedded default) has the service-level guard only.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION billing_invoice_immutable() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation',
            MESSAGE = 'issued invoice ' || OLD.series || '-' || OLD.number || ' cannot be deleted';
    END IF;
    IF (NEW.account_id, NEW.network_id, NEW.run_id, NEW.kind, NEW.period_start, NEW.period_end,
        NEW.held, NEW.series, NEW.number, NEW.issued_at, NEW.due_on, NEW.currency, NEW.net,
        NEW.vat, NEW.gross, NEW.original_id, NEW.tariff_version_ids::text, NEW.readings::text,
        NEW.determinants::text, NEW.has_estimated_reads)
       IS DISTINCT FROM
       (OLD.account_id, OLD.network_id, OLD.run_id, OLD.kind, OLD.period_start, OLD.period_end,
        OLD.held, OLD.series, OLD.number, OLD.issued_at, OLD.due_on, OLD.currency, OLD.net,
        OLD.vat, OLD.gross, OLD.original_id, OLD.tariff_version_ids::text, OLD.readings::text,
        OLD.determinants::text, OLD.has_estimated_reads)
       OR NEW.state IN ('draft', 'cancelled') THEN
        RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation',
            MESSAGE = 'issued invoice ' || OLD.series || '-' || OLD.number || ' cannot be changed';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_invoice_immutable_update
    BEFORE UPDATE ON billing_invoice
    FOR EACH ROW WHEN (OLD.number IS NOT NULL)
    EXECUTE FUNCTION billing_invoice_immutable();
CREATE TRIGGER billing_invoice_immutable_delete
    BEFORE DELETE ON billing_invoice
    FOR EACH ROW WHEN (OLD.number IS NOT NULL)
    EXECUTE FUNCTION billing_invoice_immutable();

CREATE OR REPLACE FUNCTION billing_invoiceline_immutable_row() RETURNS trigger AS $$
DECLARE
    target bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN target := OLD.invoice_id; ELSE target := NEW.invoice_id; END IF;
    IF EXISTS (SELECT 1 FROM billing_invoice i
               WHERE i.id IN (target, OLD.invoice_id) AND i.number IS NOT NULL) THEN
        RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation',
            MESSAGE = 'lines of issued invoice ' || target || ' cannot be changed';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_invoiceline_immutable_change
    BEFORE UPDATE OR DELETE ON billing_invoiceline
    FOR EACH ROW EXECUTE FUNCTION billing_invoiceline_immutable_row();

CREATE OR REPLACE FUNCTION billing_invoiceline_immutable_insert() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_lines l JOIN billing_invoice i ON i.id = l.invoice_id
               WHERE i.number IS NOT NULL) THEN
        RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation',
            MESSAGE = 'lines cannot be added to an issued invoice';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_invoiceline_immutable_insert
    AFTER INSERT ON billing_invoiceline
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION billing_invoiceline_immutable_insert();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS billing_invoiceline_immutable_insert ON billing_invoiceline;
DROP TRIGGER IF EXISTS billing_invoiceline_immutable_change ON billing_invoiceline;
DROP TRIGGER IF EXISTS billing_invoice_immutable_delete ON billing_invoice;
DROP TRIGGER IF EXISTS billing_invoice_immutable_update ON billing_invoice;
DROP FUNCTION IF EXISTS billing_invoiceline_immutable_insert();
DROP FUNCTION IF EXISTS billing_invoiceline_immutable_row();
DROP FUNCTION IF EXISTS billing_invoice_immutable();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(forward, backward)]
