#!/usr/bin/env node
// Entry point of the `pkp` command: runs the compiled JavaScript in dist/ (`npm run build`, run by
// `npm ci` through `prepare`). In a source checkout without dist/, falls back to the TypeScript
// sources through tsx (a development dependency).
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(compiled) && process.env.PKP_FROM_SOURCE !== '1') {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
