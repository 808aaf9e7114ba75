// What the HTTP/1 and HTTP/2 request routers share: the port's routes and the connections to
// the app and to workstations, the limits on mirror copies, a log that does not repeat itself,
// and the raw two-way pipe for connections (or upgraded ones) that are not routed per request.
import { Duplex, type Readable } from 'node:stream';
import type { PortRoute } from '../protocol/intercept.ts';
import { failConnection } from '../protocol/liveness.ts';
import { ParseGate } from './parse-gate.ts';
import { chooseRoutes, type RequestView, type RouteChoice } from './route-match.ts';

/** The most of a request body a mirror copy holds: a longer request is not mirrored. */
const MIRROR_BODY_LIMIT = 1024 * 1024;
/** Mirror copies awaiting their answer, per intercept: beyond, copies are dropped. */
const MIRRORS_IN_FLIGHT = 32;
/** How long a mirror copy may take to be answered before it is cancelled. */
export const MIRROR_TIMEOUT_MS = 30_000;
/** How often the same kind of message may be logged. */
const NOTE_INTERVAL_MS = 60_000;

/** Shared by the routers of one port. */
export class RouterContext {
  private readonly inFlight = new Map<string, number>();
  private readonly noted = new Map<string, number>();
  /** The bytes of request bodies held to be copied to mirrors. */
  heldForMirrors = 0;

  /**
   * @param routes the port's routes, in the order to try them
   * @param open a new connection to the workstation of intercept `intercept`, or to the app
   *   when `intercept` is undefined
   */
  constructor(
    private readonly routes: () => PortRoute[],
    private readonly open: (intercept: string | undefined) => Duplex,
    private readonly log: (message: string) => void,
  ) {}

  /** A new connection to the workstation of `intercept` (undefined: the app); a throw fails it. */
  connect(intercept: string | undefined): Duplex {
    try {
      return this.open(intercept);
    } catch (err) {
      const failed = new Duplex({ read: () => undefined, write: (_chunk, _encoding, done) => done() });
      process.nextTick(() => failed.destroy(err as Error));
      return failed;
    }
  }

  /** Where `request` goes, by the port's current routes. */
  choose(request: RequestView): RouteChoice {
    return chooseRoutes(this.routes(), request);
  }

  /** Logs `message` unless a message of the same `kind` was logged within the last minute. */
  note(kind: string, message: string): void {
    const now = Date.now();
    if (now - (this.noted.get(kind) ?? -Infinity) < NOTE_INTERVAL_MS) return;
    this.noted.set(kind, now);
    this.log(message);
  }

  /**
   * Takes one of the intercept's slots for a mirror copy in flight: the function that frees it
   * (once the copy is answered or failed), or undefined when all are taken (the copy is dropped).
   */
  mirrorSlot(intercept: string): (() => void) | undefined {
    const count = this.inFlight.get(intercept) ?? 0;
    if (count >= MIRRORS_IN_FLIGHT) {
      this.note(
        `mirror-full ${intercept}`,
        `mirror of intercept ${intercept}: ${MIRRORS_IN_FLIGHT} copies await an answer, dropping more`,
      );
      return undefined;
    }
    this.inFlight.set(intercept, count + 1);
    let freed = false;
    return () => {
      if (freed) return;
      freed = true;
      const left = (this.inFlight.get(intercept) ?? 1) - 1;
      if (left > 0) this.inFlight.set(intercept, left);
      else this.inFlight.delete(intercept);
    };
  }

  /** Logs (now and then) that a mirror copy failed. */
  mirrorFailed(intercept: string, reason: string): void {
    this.note(`mirror-failed ${intercept}`, `mirror of intercept ${intercept}: a copy failed: ${reason}`);
  }

  /**
   * Calls `done` with the whole body of `request` once it has arrived, to copy it to mirrors,
   * or with undefined when it is longer than a copy may be, does not arrive within
   * MIRROR_TIMEOUT_MS, or never does (the request is aborted). Only observes: whoever else
   * reads `request` is unaffected. Call it only with mirror slots taken: they bound what it holds.
   */
  collectBody(request: Readable, done: (body: Buffer | undefined) => void): void {
    let chunks: Buffer[] = [];
    let size = 0;
    let finished = false;
    /** Lets go of what is held. */
    const drop = () => {
      request.off('data', onData);
      this.heldForMirrors -= chunks.reduce((sum, chunk) => sum + chunk.length, 0);
      chunks = [];
    };
    const finish = (body: Buffer | undefined) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      drop();
      done(body);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MIRROR_BODY_LIMIT) return drop();
      this.heldForMirrors += chunk.length;
      chunks.push(chunk);
    };
    const timer = setTimeout(() => {
      this.note('mirror-slow', 'a request body that took over 30 s to arrive is not mirrored');
      finish(undefined);
    }, MIRROR_TIMEOUT_MS).unref();
    request.on('data', onData);
    request.once('end', () => {
      if (size <= MIRROR_BODY_LIMIT) return finish(Buffer.concat(chunks));
      this.note('mirror-size', `a request body over ${MIRROR_BODY_LIMIT / 1024 / 1024} MiB is not mirrored`);
      finish(undefined);
    });
    request.once('close', () => finish(undefined));
  }
}

/** A mirror slot for each of `mirrors` that has one free: the intercept and the function freeing it. */
export function takeSlots(context: RouterContext, mirrors: readonly PortRoute[]): [string, () => void][] {
  const slots: [string, () => void][] = [];
  for (const { intercept } of mirrors) {
    const free = context.mirrorSlot(intercept);
    if (free) slots.push([intercept, free]);
  }
  return slots;
}

/** The text of the 502 answer when the destination of a request failed. */
export function failureText(intercept: string | undefined, reason: string): string {
  const who = intercept === undefined ? 'the app' : 'the workstation of this intercept';
  return `telepod: ${who} did not answer: ${reason}\n`;
}

/**
 * Ends a client's connection as failed, so that a cut answer never looks complete: its socket is
 * reset, also beneath the ParseGate that an HTTP/1 router reads it through.
 */
export function failClient(client: Duplex): void {
  failConnection(client instanceof ParseGate ? client.inner : client);
  client.destroy();
}

/**
 * Pipes `client` and `upstream` both ways until either closes. When `upstream` fails before
 * sending anything and `failure` is given, the client gets a 502 answer with its text; any other
 * failure resets the client.
 */
export function splice(client: Duplex, upstream: Duplex, failure?: (reason: string) => string): void {
  let answered = false;
  let reason = 'the connection closed';
  upstream.once('data', () => (answered = true));
  upstream.on('error', (err: Error) => (reason = err.message));
  upstream.once('close', () => {
    if (upstream.readableEnded) return; // its end went to the client through the pipe
    if (answered || !failure || !client.writable) return failClient(client);
    const text = failure(reason);
    client.end(
      `HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
    );
    client.resume(); // whatever else it sends is not wanted
  });
  client.on('error', () => failConnection(upstream));
  client.once('close', () => upstream.destroy());
  client.pipe(upstream);
  upstream.pipe(client);
}
