import { Command } from 'commander';
import { VERSION } from '../core/version.ts';
import { registerBackup } from './backup.ts';
import { registerGen } from './gen.ts';
import { registerKms } from './kms.ts';
import { registerReplay } from './replay.ts';
import { registerRoles } from './roles.ts';
import { registerUp } from './up.ts';

const program = new Command();
program
  .name('pkp')
  .description('PKP: an encrypted, SQS-compatible queue service with a Predictive Key Prefetcher')
  .version(VERSION, '-V, --version', 'print the version')
  .showHelpAfterError();
registerUp(program);
registerReplay(program);
registerGen(program);
registerKms(program);
registerBackup(program);
registerRoles(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  process.stderr.write(`pkp: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
