// Parsing `--port <local>[:<remote>]` and `--expose <local>[:<remote>]` values.
import { usageError } from '../protocol/errors.ts';
import type { PortRequest } from '../protocol/requests.ts';

function portNumber(text: string, flag: string, value: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) {
    throw usageError(`${flag} ${value}: "${text}" is not a port number (1-65535)`);
  }
  return port;
}

/** `8000`, `8000:http` or `8000:80`; with `numericRemote` the remote must be a number too. */
export function parsePortRequest(value: string, flag: string, numericRemote = false): PortRequest {
  const [local, remote, extra] = value.split(':');
  if (extra !== undefined || !local || remote === '') {
    throw usageError(
      `${flag} ${value}: expected <local port>[:<remote port${numericRemote ? '' : ' or name'}>]`,
    );
  }
  if (remote !== undefined && numericRemote) portNumber(remote, flag, value);
  if (remote !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(remote)) {
    throw usageError(`${flag} ${value}: "${remote}" is neither a port number nor a port name`);
  }
  return { local: portNumber(local, flag, value), ...(remote !== undefined ? { remote } : {}) };
}

export function portCollector(flag: string, numericRemote = false) {
  return (value: string, previous: PortRequest[]) => [
    ...previous,
    parsePortRequest(value, flag, numericRemote),
  ];
}
