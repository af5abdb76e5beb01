"""On-disk state of the runtime: atomic JSON records under the data dir, guarded by locks."""
