"""The cold tier: closed days of the index as Parquet files in Blob storage (docs/cold-tier.md).

`layout` (pure: schema, names, manifest), `writer` (sorted Parquet files in bounded memory),
`compaction` (the use case), `store` and `hot` (its Blob and Table adapters), `reader` (reading a
compacted day back: scans, id lookup).
"""
