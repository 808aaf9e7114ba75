// The HTTP/1 router's message handling: heads as they go on the wire, end-to-end headers
// (hop-by-hop ones and those the Connection header names dropped), answering a client with an
// upstream's response or a 502, and routing's view of a request.
import type http from 'node:http';
import { failureText } from './route-context.ts';
import type { RequestView } from './route-match.ts';

/** Headers that only concern one hop, besides those the Connection header names. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection'];
/** Framing, which the Connection header does not get to remove. */
const FRAMING = new Set(['content-length', 'transfer-encoding']);

/**
 * The status line and headers of `answer`: as they came for a tunnel that is agreed (`dropped`
 * absent), else without hop-by-hop headers and those in `dropped`, and closing the connection.
 */
export function headOf(answer: http.IncomingMessage, dropped?: readonly string[]): string {
  const fields = dropped ? pairs(endToEnd(answer.rawHeaders, dropped)) : pairs(answer.rawHeaders);
  if (dropped) fields.push(['Connection', 'close']);
  const lines = [`HTTP/1.1 ${answer.statusCode ?? 502} ${answer.statusMessage ?? ''}`];
  for (const [name, value] of fields) lines.push(`${name}: ${value}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** Answers the client with `answer`, the upstream's response. */
export function answerWith(
  answer: http.IncomingMessage,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  intercept: string | undefined,
): void {
  // Node frames the answer itself (chunked, or by its length); an HTTP/1.0 client gets no trailers.
  const dropped = req.httpVersion === '1.0' ? ['transfer-encoding', 'trailer'] : ['transfer-encoding'];
  try {
    res.writeHead(answer.statusCode ?? 502, answer.statusMessage ?? '', endToEnd(answer.rawHeaders, dropped));
  } catch (err) {
    answer.destroy();
    return reply502(res, failureText(intercept, `its answer is unusable: ${(err as Error).message}`));
  }
  answer.on('error', () => res.destroy());
  answer.once('close', () => {
    if (!answer.complete) res.destroy();
  });
  answer.pipe(res, { end: false });
  answer.once('end', () => {
    try {
      if (answer.rawTrailers.length) res.addTrailers(pairs(answer.rawTrailers));
      res.end();
    } catch {
      res.destroy();
    }
  });
}

/** Answers the client with a 502 and `text`, or cuts its connection when its answer has begun. */
export function reply502(res: http.ServerResponse, text: string): void {
  if (res.destroyed) return;
  if (res.headersSent) return void res.destroy();
  res.writeHead(502, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Routing's view of an HTTP/1 request: a repeated header also matches by its joined value. */
export function view(req: http.IncomingMessage): RequestView {
  return {
    method: req.method ?? '',
    path: req.url ?? '/',
    header(name) {
      const values = pairs(req.rawHeaders)
        .filter(([field]) => field.toLowerCase() === name)
        .map(([, value]) => value);
      return values.length > 1 ? [...values, values.join(', ')] : values;
    },
  };
}

/** `raw` (name, value, name, value…) without hop-by-hop headers and those named in `dropped`. */
export function endToEnd(raw: readonly string[], dropped: readonly string[] = []): string[] {
  const fields = pairs(raw);
  const drop = new Set([...HOP_BY_HOP, ...dropped]);
  for (const [name, value] of fields) {
    if (name.toLowerCase() !== 'connection') continue;
    for (const token of value.split(',')) {
      const named = token.trim().toLowerCase();
      if (named && !FRAMING.has(named)) drop.add(named);
    }
  }
  return fields.filter(([name]) => !drop.has(name.toLowerCase())).flat();
}

/** A flat list of names and values as pairs. */
export function pairs(raw: readonly string[]): [string, string][] {
  const result: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) result.push([raw[i] ?? '', raw[i + 1] ?? '']);
  return result;
}
