#!/bin/sh
# Runs the given tiers (lint, unit, cli, kernel, package), every one even if
# an earlier one failed, then prints the total over all of them as the last
# line. The lint tier counts its two checks (eslint, prettier) as tests.
set -u
cd "$(dirname "$0")/.."
mkdir -p test-results
status=0

lint() {
	passed=0
	failed=0
	for check in "npx eslint --max-warnings 0 ." "npx prettier --check --log-level warn ."; do
		echo "-- $check"
		if $check; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
	done
	printf '{"numPassedTests":%d,"numFailedTests":%d,"numPendingTests":0,"numTodoTests":0,"testResults":[]}\n' \
		"$passed" "$failed" >test-results/lint.json
	[ "$failed" -eq 0 ]
}

for tier in "$@"; do
	echo "== $tier"
	rm -f "test-results/$tier.json"
	if [ "$tier" = lint ]; then
		lint || status=1
	else
		npx vitest run --project "$tier" --reporter=default --reporter=json \
			--outputFile.json="test-results/$tier.json" || status=1
	fi
done
node scripts/test-summary.mjs "$@" || status=1
exit $status
