#!/bin/sh
# Runs the given vitest tiers (unit, cli, kernel), every one even if an
# earlier one failed, then prints the total over all of them as the last line.
set -u
cd "$(dirname "$0")/.."
mkdir -p test-results
status=0
for tier in "$@"; do
	echo "== $tier tests"
	rm -f "test-results/$tier.json"
	npx vitest run --project "$tier" --reporter=default --reporter=json \
		--outputFile.json="test-results/$tier.json" || status=1
done
node scripts/test-summary.mjs "$@" || status=1
exit $status
