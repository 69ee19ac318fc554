"""Jobs Dagster hands off through Pipes (``dagster-pipes`` only, no Dagster): each runs where it is sent,
a subprocess on this machine or a Spark cluster, and reports back its logs, metadata and summary."""
