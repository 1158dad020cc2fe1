/** `pkp backup`: see src/backup.ts. */
import { resolve } from 'node:path';
import type { Command } from 'commander';

export function registerBackup(program: Command): void {
  program
    .command('backup')
    .description('copy a data directory consistently (also while pkp up runs): the database by SQLite\'s backup API, the key and credential files; not the root key unless asked')
    .requiredOption('--out <dir>', 'new (or empty) directory to write the backup to')
    .option('--data-dir <dir>', 'the data directory to back up', 'pkp-data')
    .option('--include-root-key', 'also copy kms-root.key (then the backup alone opens every message: keep it as safe as the key)')
    .action(async (o: { out: string; dataDir: string; includeRootKey?: boolean }) => {
      const { backupDataDir } = await import('../backup.ts');
      const result = await backupDataDir(resolve(o.dataDir), resolve(o.out), { includeRootKey: o.includeRootKey });
      process.stdout.write(`backed up ${resolve(o.dataDir)} to ${resolve(o.out)}: ${result.files.join(', ')}\n`);
      if (!result.rootKeyIncluded) {
        process.stdout.write('the root key is not in the backup: to restore, also provide kms-root.key (kept apart) or PKP_KMS_ROOT_KEY\n');
      }
    });
}
