// The progress reporter: a spinner with elapsed times on a terminal, nothing at all otherwise.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { elapsed, progressReporter } from './progress.ts';

/** A stream that records what is written; `isTTY` says whether it poses as a terminal. */
function stream(isTTY: boolean, columns = 100): NodeJS.WriteStream & { text: () => string } {
  const chunks: string[] = [];
  const out = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return Object.assign(out, {
    isTTY,
    columns,
    text: () => chunks.join(''),
    // ora moves the cursor and clears lines; a recording stream only needs the calls to exist.
    cursorTo: () => true,
    moveCursor: () => true,
    clearLine: () => true,
  }) as unknown as NodeJS.WriteStream & { text: () => string };
}

test('on a terminal, each finished step stays as a line with its time; a failure is marked', async () => {
  const out = stream(true);
  const progress = await progressReporter('text', out);
  progress.step('installing the traffic manager');
  progress.step('waiting for the traffic manager pod to be ready');
  progress.end(false);
  const text = out.text();
  assert.match(text, /✔ installing the traffic manager \(\d+\.\d s\)\n/);
  assert.match(text, /✖ waiting for the traffic manager pod to be ready \(\d+\.\d s\)\n/);
  assert.ok(text.indexOf('✔ installing') < text.indexOf('✖ waiting'));
});

test('piped stderr and machine output get no progress at all', async () => {
  for (const [format, tty] of [
    ['text', false],
    ['json', true],
    ['yaml', true],
  ] as const) {
    const out = stream(tty);
    const progress = await progressReporter(format, out);
    progress.step('starting the telepod daemon');
    progress.end(true);
    assert.equal(out.text(), '', `${format} on ${tty ? 'a terminal' : 'a pipe'}`);
  }
  const unsized = stream(true, 0); // a pty nobody gave a size
  const progress = await progressReporter('text', unsized);
  progress.step('starting the telepod daemon');
  progress.end(true);
  assert.equal(unsized.text(), '');
});

test('elapsed time is shown in seconds with one decimal', () => {
  assert.equal(elapsed(1_000, 3_460), '2.5 s');
  assert.equal(elapsed(0, 0), '0.0 s');
});

test("a step's control characters never reach the terminal", async () => {
  const out = stream(true);
  const progress = await progressReporter('text', out);
  progress.step('rolling out deployment/\x1b]0;pwned\x07\x1b[31mRED');
  progress.end(true);
  assert.match(out.text(), /✔ rolling out deployment\/\?\]0;pwned\?\?\[31mRED \(\d+\.\d s\)/);
  assert.ok(!out.text().includes('pwned\x07'));
});
