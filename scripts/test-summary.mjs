// Sums vitest's JSON reports of the given tiers into one line: "N passed, N failed[, N skipped]".
// A tier without a report (it crashed before reporting) counts as one failure.
// Failed tests are named again just above the total: a CI log shown only by
// its tail still says what failed and why.
import { readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];
for (const tier of process.argv.slice(2)) {
  let report;
  try {
    report = JSON.parse(readFileSync(`test-results/${tier}.json`, 'utf8'));
  } catch {
    console.error(`no test report for the ${tier} tier`);
    failed += 1;
    continue;
  }
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
  // Files that failed to load report no tests but must not pass silently.
  failed += report.testResults.filter((file) => file.status === 'failed' && file.assertionResults.length === 0).length;
  for (const file of report.testResults) {
    if (file.status === 'failed' && file.assertionResults.length === 0)
      failures.push(`${tier}: ${file.name}: ${firstLine(file.message)}`);
    for (const test of file.assertionResults) {
      if (test.status === 'failed') failures.push(`${tier}: ${test.fullName}: ${firstLine(test.failureMessages?.[0])}`);
    }
  }
}
for (const failure of failures) console.log(`FAILED ${failure}`);
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);

function firstLine(message) {
  return (message ?? '').split('\n').find((line) => line.trim() !== '') ?? '';
}
