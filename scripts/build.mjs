// Compiles src/ to dist/ (plain JavaScript, so `pkp` starts without transpiling at run time).
// Run by `npm run build` and by `npm ci`/`npm install` through the `prepare` script.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const root = join(import.meta.dirname, '..');
const require = createRequire(import.meta.url);
const tsc = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');

rmSync(join(root, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
// The ARIMA worker's entry point loads the TypeScript module through tsx in development;
// the compiled one loads the compiled module directly (tsx is a development dependency).
writeFileSync(join(root, 'dist/prefetcher/models/arima-worker.mjs'),
  "// Worker-thread entry point of WorkerFitter (compiled build): see src/prefetcher/models/arima-worker.mjs.\n" +
  "const { serveFits } = await import('./arima-fit.js');\nserveFits();\n");
