// Versions every process reports: the package version and the wire protocol version, which
// the CLI, daemon, traffic manager and agent compare before they talk.
import { version } from '../../package.json';

export const TELEPOD_VERSION: string = version;

/** Bumped on any incompatible change of the messages in src/protocol. */
export const PROTOCOL_VERSION = 4;

/** A telepod version and its protocol, as each side reports them. */
export interface Versions {
  version: string;
  protocol: number;
}

/**
 * What to tell a developer whose telepod cannot talk to the traffic manager, saying what to
 * run; undefined when the protocols match.
 */
export function versionSkew(client: Versions, manager: Versions): string | undefined {
  if (client.protocol === manager.protocol) return undefined;
  if (client.protocol < manager.protocol) {
    return (
      `this telepod ${client.version} (protocol ${client.protocol}) is older than the traffic manager, ` +
      `which runs telepod ${manager.version} (protocol ${manager.protocol}): upgrade telepod to ${manager.version}`
    );
  }
  return (
    `the traffic manager runs telepod ${manager.version} (protocol ${manager.protocol}), older than this ` +
    `telepod ${client.version} (protocol ${client.protocol}): use telepod ${manager.version}, or upgrade the ` +
    `manager for everyone with \`telepod install\` (sessions and intercepts carry over)`
  );
}
