// Versions every process reports: the package version and the wire protocol version, which
// the CLI, daemon, traffic manager and agent compare before they talk.
import { version } from '../../package.json';

export const TELEPOD_VERSION: string = version;

/** Bumped on any incompatible change of the messages in src/protocol. */
export const PROTOCOL_VERSION = 2;
