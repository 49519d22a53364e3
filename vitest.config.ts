import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    pool: 'forks',
    projects: [
      {
        // Some unit tests run tools (madge, tsc): a slow machine must not fail them.
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], pool: 'forks', testTimeout: 60_000 },
      },
      {
        test: {
          name: 'cli',
          include: ['test/cli/**/*.test.ts'],
          pool: 'forks',
          testTimeout: 60_000,
        },
      },
      {
        // Real traffic: one file at a time, so flows do not compete for the two CPUs.
        test: {
          name: 'kernel',
          include: ['test/kernel/**/*.test.ts'],
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
      {
        // Builds and installs the .deb: its steps depend on each other and run in order.
        test: {
          name: 'package',
          include: ['test/package/**/*.test.ts'],
          pool: 'forks',
          sequence: { concurrent: false },
          testTimeout: 900_000,
          hookTimeout: 900_000,
        },
      },
    ],
  },
});
