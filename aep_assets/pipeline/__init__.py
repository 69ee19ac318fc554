"""The pipeline's steps as plain functions over an AEP client and a storage. No Dagster here."""
