// Sums vitest's JSON reports of the given tiers into one line: "N passed, N failed[, N skipped]".
// A tier without a report (it crashed before reporting) counts as one failure.
import { readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
let skipped = 0;
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
}
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
