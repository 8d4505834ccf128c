#!/usr/bin/env bash
# Content search at scale on PostgreSQL (a by-hand measurement, not a test): fills a fresh schema
# with N documents (default 1,000,000) of ~120 words each, spread over 10,000 owners of one
# tenant, then runs the statement `GET /v1/files?q=` runs (src/metadata/control.rs,
# search_files) under EXPLAIN ANALYZE for a rare word, a common word (w2 is in nearly every
# document) and two words, and prints
# the plans and the median latency of 20 runs each.
#
#   scripts/search-scale.sh [documents]          # PostgreSQL from UPGATE_TEST_POSTGRES_URL
#
# Needs the debug binary (target/debug/upgate: it creates the schema through its migrations)
# and psql. Drops the schema at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
url=${UPGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
schema=search_scale_$$
psql_() { psql "$url" -X -q -v ON_ERROR_STOP=1 -c "SET search_path TO $schema" "$@"; }
work=$(mktemp -d)
trap 'psql "$url" -X -q -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $schema CASCADE"; rm -rf "$work"' EXIT

# The schema, through the gateway's own migrations.
UPGATE__METADATA__URL="$url" UPGATE__METADATA__SCHEMA="$schema" UPGATE__STORAGE__DATA_DIR="$work" \
  target/debug/upgate admin create-tenant scale >"$work/tenant.json"
tenant=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['tenant_id'])" "$work/tenant.json")

echo "filling $n documents…"
started=$(date +%s)
psql_ -f - <<SQL
-- Words w2..w5000, w_k drawn with probability ~1/k (log-uniform): w2 is in nearly every
-- document, w4000 in about 1 in 300.
INSERT INTO files (id, tenant_id, owner, bucket, filename, metadata, status, current_key,
                   content_type, size, sha256, versions, created_at, updated_at)
SELECT 'f' || i, '$tenant', 'owner' || (i % 10000), 'uploads', 'doc' || i || '.pdf', '{}',
       'complete', 'k' || i, 'application/pdf', 2000000, repeat('0', 64), 1, i, i
FROM generate_series(1, $n) i;
INSERT INTO file_text (file_id, body)
SELECT 'f' || i,
       (SELECT string_agg('w' || (1 + floor(exp(random() * ln(5000))))::int, ' ')
          FROM generate_series(1, 120) WHERE i > 0)
FROM generate_series(1, $n) i;
ANALYZE files;
ANALYZE file_text;
SELECT count(*) AS owner42_files FROM files WHERE owner = 'owner42';
SQL
echo "filled in $(( $(date +%s) - started )) s; table and index sizes:"
psql_ -c "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class WHERE relname IN ('file_text', 'file_text_search', 'files') ORDER BY relname"

# The statement of search_files (TsVector), with the owner of 100 documents.
query() {
  cat <<SQL
SELECT f.id, f.filename, ts_rank(t.tsv, query)::float8 AS rank,
       ts_headline('simple', t.body, query, 'StartSel=[, StopSel=], MaxWords=24, MinWords=10, MaxFragments=1') AS snippet
FROM file_text t JOIN files f ON f.id = t.file_id, plainto_tsquery('simple', '$1') query
WHERE t.tsv @@ query AND f.tenant_id = '$tenant' AND f.owner = 'owner42' AND f.status = 'complete'
ORDER BY rank DESC, f.id LIMIT 21 OFFSET 0
SQL
}
for words in "w4000" "w2" "w2 w30"; do
  echo
  echo "=== q=\"$words\""
  psql_ -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $(query "$words")"
  for _ in $(seq 1 20); do
    psql_ -c '\timing on' -c "$(query "$words")" | grep -o 'Time: [0-9.]* ms' | grep -o '[0-9.]*'
  done | sort -n | awk '{a[NR]=$1} END {print "median of " NR " runs: " a[int((NR+1)/2)] " ms"}'
done
