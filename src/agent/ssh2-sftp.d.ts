// Types for the part of ssh2's SFTP protocol module the agent uses: its SFTP v3 packet parser
// and serializer, driven over a plain byte stream instead of an SSH channel (see sftp-server.ts).
declare module 'ssh2/lib/protocol/SFTP.js' {
  import { EventEmitter } from 'node:events';

  export interface Attributes {
    mode?: number;
    uid?: number;
    gid?: number;
    size?: number;
    atime?: number;
    mtime?: number;
  }
  export interface FileEntry {
    filename: string;
    longname: string;
    attrs: Attributes;
  }
  /** What SFTP expects of an SSH channel's owner: somewhere to send packets, a way to close. */
  export interface ChannelOwner {
    _protocol: {
      _remoteIdentRaw?: string;
      channelData(id: number, data: Buffer): void;
      channelClose(id: number): void;
    };
  }
  export interface ChannelInfo {
    type: string;
    incoming: { id: number; window: number; packetSize: number; state: string };
    outgoing: { id: number; window: number; packetSize: number; state: string };
  }

  export class SFTP extends EventEmitter {
    constructor(client: ChannelOwner, chanInfo: ChannelInfo, cfg: { server: boolean });
    push(data: Buffer | null): void;
    handle(reqid: number, handle: Buffer): void;
    status(reqid: number, code: number, message?: string): void;
    data(reqid: number, data: Buffer): void;
    name(reqid: number, names: FileEntry[]): void;
    attrs(reqid: number, attrs: Attributes): void;
  }

  export const STATUS_CODE: {
    OK: 0;
    EOF: 1;
    NO_SUCH_FILE: 2;
    PERMISSION_DENIED: 3;
    FAILURE: 4;
    BAD_MESSAGE: 5;
    NO_CONNECTION: 6;
    CONNECTION_LOST: 7;
    OP_UNSUPPORTED: 8;
  };
  export const OPEN_MODE: { READ: 1; WRITE: 2; APPEND: 4; CREAT: 8; TRUNC: 16; EXCL: 32 };
}
