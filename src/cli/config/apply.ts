// Puts the environment's and the config file's settings into commander: every option named
// like a config key (its attribute name), on the running command and its parents, that the
// command line left at its default. So each command carrying a flag gets its default, and a
// flag given replaces the setting (a repeated flag's list too, it does not add to it).
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { resolveSettings, type Settings } from './resolve.ts';
import { isConfigKey } from './schema.ts';

/**
 * Commands that read no setting: `version` and `completion` (so they work with a broken config
 * file too) and the root daemon (its settings come in the connect request; it reads no file of
 * the user's).
 */
const UNCONFIGURED = new Set(['version', 'completion', 'daemon', '__netns-holder']);

/** The hidden command the completion scripts call. */
const COMPLETING = '__complete';

const read = new WeakMap<CommandUnknownOpts, Promise<Settings>>();

/** The settings for a program, read once (from process.env and the config file). */
function settingsOf(program: CommandUnknownOpts): Promise<Settings> {
  const settings = read.get(program) ?? resolveSettings();
  read.set(program, settings);
  return settings;
}

/**
 * Gives the options of `command` and its parents that the command line did not set their value
 * from the environment or the config file (read for `program` once; a bad one is a usage error).
 */
export async function applyConfig(program: CommandUnknownOpts, command: CommandUnknownOpts): Promise<void> {
  if (UNCONFIGURED.has(command.name())) return;
  let settings: Settings;
  try {
    settings = await settingsOf(program);
  } catch (err) {
    // Completion uses what settings it can: with a broken file, commands and flags still complete.
    if (command.name() === COMPLETING) return;
    throw err;
  }
  for (let cmd: CommandUnknownOpts | null = command; cmd; cmd = cmd.parent) {
    for (const option of cmd.options) {
      const key = option.attributeName();
      const setting = isConfigKey(key) ? settings[key] : undefined;
      const source = cmd.getOptionValueSource(key);
      if (setting && (source === undefined || source === 'default'))
        cmd.setOptionValueWithSource(key, setting.value, setting.source);
    }
  }
}
