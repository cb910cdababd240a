"""Reading ingestion: validation of delivered rows, set-based storage, batch processing."""
