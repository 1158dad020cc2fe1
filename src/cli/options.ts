import { InvalidArgumentError, type Command } from 'commander';
import { SCHEMA, envName, flagName, flagParser, flagsGiven, resolveConfig, type Config, type ConfigKey } from '../core/config.ts';

/** Commander parsers that reject bad values with a clear message. */
export function intOption(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in ${min}..${max}`);
    return n;
  };
}

export function numberOption(min: number, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`expected a number in ${min}..${max}`);
    return n;
  };
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Adds `--config` and one flag per schema setting, checked by the schema's own parser. No commander defaults: the config resolves them. */
export function configFlags(command: Command, keys: ConfigKey[], help: Partial<Record<ConfigKey, string>> = {}): Command {
  command.option('--config <file>', 'JSON configuration file (precedence: flags > PKP_* env > file > defaults; see docs/operations.md)');
  for (const key of keys) {
    const s = SCHEMA[key];
    const flag = flagName(key);
    if (s.kind === 'boolean') {
      command.option(`--no-${flag}`, help[key] ?? `turn off: ${s.help}`);
    } else {
      command.option(`--${flag} <value>`, `${help[key] ?? s.help} [env ${envName(key)}]`, flagParser(key));
    }
  }
  return command;
}

/** The settings in force for a command invocation. */
export function configOf<D extends Config>(command: Command, scope: 'up' | 'replay', defaults: D): D & Config {
  const options = command.opts() as Record<string, unknown>;
  return resolveConfig({
    file: options.config as string | undefined,
    flags: flagsGiven(options, (name) => command.getOptionValueSource(name)),
    defaults,
    scope,
  });
}
