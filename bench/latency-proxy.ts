// A TCP proxy that adds a fixed delay each way, run in the workstation netns by the benchmark:
// the testbed's API server is a veth away (a round trip of ~0.1 ms), a real cluster's is
// milliseconds away, and a tool's round trips per connection only show with some distance.
// Bytes keep their order and are never held back longer than the delay. Prints "listening"
// once it accepts; runs until killed.
//   node --import tsx bench/latency-proxy.ts <listenPort> <targetHost> <targetPort> <oneWayMs>
import net from 'node:net';

const [listenPort, targetHost, targetPort, oneWayMs] = process.argv.slice(2);
const delay = Number(oneWayMs);

/** Forwards `from`'s bytes to `to`, each chunk `delay` ms after it arrived. */
function delayed(from: net.Socket, to: net.Socket): void {
  const queue: { due: number; chunk: Buffer | null }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    const now = Date.now();
    while (queue.length && queue[0]!.due <= now) {
      const { chunk } = queue.shift()!;
      if (chunk) to.write(chunk);
      else to.end();
    }
    if (queue.length) timer = setTimeout(flush, queue[0]!.due - now);
  };
  const push = (chunk: Buffer | null) => {
    queue.push({ due: Date.now() + delay, chunk });
    timer ??= setTimeout(flush, delay);
  };
  from.on('data', (chunk: Buffer) => push(chunk));
  from.on('end', () => push(null));
}

net
  .createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    const upstream = net.connect({
      host: targetHost,
      port: Number(targetPort),
      noDelay: true,
      allowHalfOpen: true,
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    // What is still on its way (delayed) arrives before the other side is closed too.
    client.on('close', () => setTimeout(() => upstream.destroy(), 2 * delay));
    upstream.on('close', () => setTimeout(() => client.destroy(), 2 * delay));
    delayed(client, upstream);
    delayed(upstream, client);
  })
  .listen(Number(listenPort), '127.0.0.1', () => process.stdout.write('listening\n'));
