"""Query Service: AEP's SQL dialect translated with sqlglot and run by DuckDB over dataset Parquet."""
