"""Invoice lines: one set-based integrity check per statement instead of a foreign-key
trigger per line (PostgreSQL).

A billing run writes three lines per bill; the deferred foreign key ran one
``SELECT 1 FROM billing_invoice … FOR KEY SHARE`` per line at commit, under the invoice
series lock.  The same guarantees, per statement:

* INSERT / UPDATE of lines: every line's invoice exists; invoices created by another
  transaction are locked ``FOR KEY SHARE`` until commit (as the foreign key did), so
  they cannot be deleted underneath.  Invoices this transaction created need no lock:
  no other transaction can see them before commit.
* DELETE of invoices: no line may be left behind (the ORM deletes lines first);
  TRUNCATE of invoices: only together with the lines.  Changing an invoice's id is
  refused.
* Issued invoices never change (migration 0002): lines may be inserted for an issued
  invoice only by the transaction that created it (``created_xact``, the top-level
  transaction id, filled by default) and only in one statement, the one that writes
  all of its lines.  Invoices are written before their lines, so this replaces the
  previous rule (no lines for an issued invoice at all), which forced lines to be
  written first and their foreign-key checks to wait for the commit.  ``created_xact``
  of an issued invoice cannot change either.

SQLite (embedded default) keeps the service-level guards only.
"""

import django.db.models.deletion
from django.db import migrations, models

FORWARD = r"""
ALTER TABLE billing_invoice ADD COLUMN created_xact xid8;
ALTER TABLE billing_invoice ALTER COLUMN created_xact SET DEFAULT pg_current_xact_id();
COMMENT ON COLUMN billing_invoice.created_xact IS
    'top-level transaction that inserted the invoice (lines of an issued invoice only in it)';

CREATE OR REPLACE FUNCTION billing_invoice_immutable() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation',
            MESSAGE = 'issued invoice ' || OLD.series || '-' || OLD.number || ' cannot be deleted';
    END IF;
    IF (NEW.account_id, NEW.network_id, NEW.run_id, NEW.kind, NEW.period_start, NEW.period_end,
        NEW.held, NEW.series, NEW.number, NEW.issued_at, NEW.due_on, NEW.currency, NEW.net,
        NEW.vat, NEW.gross, NEW.original_id, NEW.tariff_version_ids::text, NEW.readings::text,
        NEW.determinants::text, NEW.has_estimated_reads, NEW.created_xact::text)
       IS DISTINCT FROM
       (OLD.account_id, OLD.network_id, OLD.run_id, OLD.kind, OLD.period_start, OLD.period_end,
        OLD.held, OLD.series, OLD.number, OLD.issued_at, OLD.due_on, OLD.currency, OLD.net,
        OLD.vat, OLD.gross, OLD.original_id, OLD.tariff_version_ids::text, OLD.readings::text,
        OLD.determinants::text, OLD.has_estimated_reads, OLD.created_xact::text)
       OR NEW.state IN ('draft', 'cancelled') THEN
        RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation',
            MESSAGE = 'issued invoice ' || OLD.series || '-' || OLD.number || ' cannot be changed';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER billing_invoiceline_immutable_insert ON billing_invoiceline;
DROP FUNCTION billing_invoiceline_immutable_insert();

CREATE FUNCTION billing_invoiceline_check() RETURNS trigger AS $$
DECLARE
    me xid8 := pg_current_xact_id();
    bad bigint;
    foreign_invoices bigint;
BEGIN
    -- one pass over the statement's lines, per invoice: it exists; if issued, this
    -- transaction created it and these are all of its lines (one statement writes them).
    -- Also counted: invoices another transaction created (locked below).
    -- (LATERAL … LIMIT: one primary-key probe per invoice, never a scan of the table)
    SELECT min(n.invoice_id) FILTER (
               WHERE i.id IS NULL
                  OR (TG_OP = 'INSERT' AND i.number IS NOT NULL
                      AND (i.created_xact IS DISTINCT FROM me
                           OR (SELECT count(*) FROM (SELECT 1 FROM billing_invoiceline x
                                                      WHERE x.invoice_id = n.invoice_id
                                                      LIMIT n.lines + 1) x) <> n.lines))),
           count(*) FILTER (WHERE i.created_xact IS DISTINCT FROM me)
      INTO bad, foreign_invoices
      FROM (SELECT l.invoice_id, count(*) AS lines FROM new_lines l GROUP BY l.invoice_id) n
      LEFT JOIN LATERAL (SELECT i.id, i.number, i.created_xact FROM billing_invoice i
                          WHERE i.id = n.invoice_id LIMIT 1) i ON true;
    IF bad IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM billing_invoice i WHERE i.id = bad) THEN
            RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
                MESSAGE = 'invoice line refers to invoice ' || bad || ', which does not exist';
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation',
            MESSAGE = 'lines cannot be added to an issued invoice (' || bad || ')';
    END IF;
    -- invoices another transaction created stay until commit: locked as a foreign key
    -- would lock them, then checked again (one may have gone since the pass above).
    -- Ours cannot be seen, let alone deleted, by anyone else before we commit.
    IF foreign_invoices > 0 THEN
        PERFORM 1 FROM billing_invoice i
         WHERE i.id IN (SELECT l.invoice_id FROM new_lines l)
           AND i.created_xact IS DISTINCT FROM me
           FOR KEY SHARE OF i;
        SELECT l.invoice_id INTO bad FROM new_lines l
         WHERE NOT EXISTS (SELECT 1 FROM billing_invoice i WHERE i.id = l.invoice_id)
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
                MESSAGE = 'invoice line refers to invoice ' || bad || ', which does not exist';
        END IF;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
-- a chunk's statement has thousands of lines: the planner's estimate crosses
-- jit_above_cost, and compiling (~0.5 s) would cost more than the whole check (~2 ms)
SET jit = off;

CREATE TRIGGER billing_invoiceline_check_insert
    AFTER INSERT ON billing_invoiceline
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION billing_invoiceline_check();
CREATE TRIGGER billing_invoiceline_check_update
    AFTER UPDATE ON billing_invoiceline
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION billing_invoiceline_check();

CREATE FUNCTION billing_invoice_lines_left() RETURNS trigger AS $$
DECLARE
    bad bigint;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT 1 FROM billing_invoiceline) THEN
            RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
                MESSAGE = 'billing_invoice cannot be truncated without billing_invoiceline';
        END IF;
        RETURN NULL;
    END IF;
    SELECT o.id INTO bad FROM old_invoices o
     WHERE EXISTS (SELECT 1 FROM billing_invoiceline l WHERE l.invoice_id = o.id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = 'invoice ' || bad || ' cannot be deleted: it still has lines';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_invoice_lines_left_delete
    AFTER DELETE ON billing_invoice
    REFERENCING OLD TABLE AS old_invoices
    FOR EACH STATEMENT EXECUTE FUNCTION billing_invoice_lines_left();
CREATE TRIGGER billing_invoice_lines_left_truncate
    AFTER TRUNCATE ON billing_invoice
    FOR EACH STATEMENT EXECUTE FUNCTION billing_invoice_lines_left();

CREATE FUNCTION billing_invoice_id_fixed() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation',
        MESSAGE = 'the id of invoice ' || OLD.id || ' cannot change';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_invoice_id_fixed
    BEFORE UPDATE OF id ON billing_invoice
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION billing_invoice_id_fixed();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS billing_invoice_id_fixed ON billing_invoice;
DROP FUNCTION IF EXISTS billing_invoice_id_fixed();
DROP TRIGGER IF EXISTS billing_invoice_lines_left_truncate ON billing_invoice;
DROP TRIGGER IF EXISTS billing_invoice_lines_left_delete ON billing_invoice;
DROP FUNCTION IF EXISTS billing_invoice_lines_left();
DROP TRIGGER IF EXISTS billing_invoiceline_check_update ON billing_invoiceline;
DROP TRIGGER IF EXISTS billing_invoiceline_check_insert ON billing_invoiceline;
DROP FUNCTION IF EXISTS billing_invoiceline_check();

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

ALTER TABLE billing_invoice DROP COLUMN IF EXISTS created_xact;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_fewer_write_indexes"),
    ]

    operations = [
        # backward: the foreign key comes back (AlterField reversed) before the checks go
        migrations.RunPython(forward, backward),
        migrations.AlterField(
            model_name="invoiceline",
            name="invoice",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="lines",
                to="billing.invoice",
            ),
        ),
    ]
