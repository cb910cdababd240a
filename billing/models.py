"""What was charged and paid: runs, invoices, credit notes, payments, documents."""
