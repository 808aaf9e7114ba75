// Test fixture: serves the volumes named in argv on stdin/stdout, so OpenSSH's `sftp -D` (a real
// SFTP client) can drive the agent's file server in sftp-server.test.ts.
import { Duplex } from 'node:stream';
import { serveVolumes } from './sftp-server.ts';

serveVolumes(Duplex.from({ readable: process.stdin, writable: process.stdout }), process.argv.slice(2));
