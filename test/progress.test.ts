import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { clearProgressBar, formatSeconds, Progress, setProgressDefaults, type ProgressEvent } from '@scarce/core';

/** Creates a writable stream that keeps what it receives and reports `isTTY` as given. */
function captureStream(isTTY: boolean): Writable & { isTTY: boolean; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  }) as Writable & { isTTY: boolean; text: () => string };
  stream.isTTY = isTTY;
  stream.text = () => chunks.join('');
  return stream;
}

test('progress bar shows count and time left', () => {
  const stream = captureStream(true);
  const progress = new Progress('features', 10, { stream });
  progress.tick(3);
  progress.tick(7);
  const text = stream.text();
  assert.match(text, /\r\[#{7}\.{17}\] features 3\/10 30% \d+s elapsed, \d+s left/);
  assert.match(text, /\r\[#{24}\] features 10\/10 100% \d+s elapsed, 0s left/);
  assert.ok(text.endsWith('\n'), 'a finished bar ends its line');
});

test('progress bar redraws at most every 100 ms', () => {
  const stream = captureStream(true);
  const progress = new Progress('augment', 1000, { stream });
  for (let i = 0; i < 1000; i++) progress.tick();
  const redraws = stream.text().split('\r').length - 1;
  assert.ok(redraws >= 2, `the first and the last step are drawn (${redraws} redraws)`);
  assert.ok(redraws <= 10, `1000 fast steps redraw ${redraws} times`);
});

test('progress bar clears for a log line', () => {
  const stream = captureStream(true);
  const progress = new Progress('GAN epochs', 10, { stream });
  progress.tick(1);
  clearProgressBar(stream);
  stream.write('epoch 1 done\n');
  progress.tick(1);
  progress.tick(8);
  clearProgressBar(stream);

  const text = stream.text();
  assert.match(text, /1\/10 10% [^\n]*\x1b\[K\r\x1b\[Kepoch 1 done\n\r\[/, 'the bar line is erased before the log line and drawn again after it');
  assert.match(text, /2\/10 20% /, 'the step right after the log line is drawn, though within 100 ms');
  assert.match(text, /10\/10 100% \d+s elapsed, 0s left\x1b\[K\n$/, 'a finished bar is left alone');
});

test('progress prints plain lines off a terminal', () => {
  const stream = captureStream(false);
  const progress = new Progress('augment', 1000, { stream });
  for (let i = 0; i < 1000; i++) progress.tick();
  const lines = stream.text().trimEnd().split('\n');
  assert.equal(lines.length, 11, 'one line at the first step and one per tenth of the way');
  assert.ok(!stream.text().includes('\r'), 'no carriage returns');
  assert.ok(!stream.text().includes('\x1b'), 'no escape codes');
  assert.match(lines.at(-1)!, /^augment 1000\/1000 100% /);
});

test('progress json lines parse and count up', () => {
  const stream = captureStream(true);
  const progress = new Progress('GAN epochs', 250, { stream, format: 'json' });
  for (let i = 0; i < 250; i++) progress.tick(1, `epoch ${i + 1}`);
  const events = stream
    .text()
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as ProgressEvent);
  assert.equal(events.length, 101, 'one line per whole percent, 0 to 100');
  assert.ok(events.every((event) => event.event === 'progress' && event.label === 'GAN epochs' && event.total === 250));
  assert.ok(events.every((event, i) => i === 0 || event.done > events[i - 1].done), 'done grows');
  assert.deepEqual([events.at(-1)!.done, events.at(-1)!.percent, events.at(-1)!.etaSeconds], [250, 100, 0]);
  assert.equal(events.at(-1)!.note, 'epoch 250');
});

test('progress defaults apply to later bars', (context) => {
  context.after(() => setProgressDefaults({}));
  const quietStream = captureStream(false);
  setProgressDefaults({ quiet: true, stream: quietStream });
  new Progress('quiet', 4).tick(4);
  assert.equal(quietStream.text(), '');

  const jsonStream = captureStream(false);
  setProgressDefaults({ format: 'json', stream: jsonStream });
  new Progress('json', 2).tick(2);
  assert.equal((JSON.parse(jsonStream.text().trim()) as ProgressEvent).done, 2);

  const own = captureStream(false);
  new Progress('own', 2, { stream: own, format: 'lines' }).tick(2);
  assert.match(own.text(), /^own 2\/2 100% /, 'options given to a bar override the defaults');
});

test('formatSeconds rounds to whole seconds', () => {
  const cases: Array<[number, string]> = [
    [0, '0s'],
    [42.4, '42s'],
    [59.6, '1m00s'],
    [185, '3m05s'],
    [Infinity, '?'],
  ];
  for (const [seconds, text] of cases) assert.equal(formatSeconds(seconds), text, `${seconds} s`);
});
