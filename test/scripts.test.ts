import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

/** Runs a script of scripts/ as its usage line does. */
function runScript(script: string, args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', `scripts/${script}`, ...args], { encoding: 'utf8' });
}

test('select-head rejects stray words', () => {
  for (const args of [['--test-time-flip', 'false'], ['--folds', '2', 'stray']]) {
    const result = runScript('select-head.ts', args);
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, /Unexpected argument (false|stray);.*--test-time-flip takes no value/);
  }
});

test('select-head names unknown layer', () => {
  const result = runScript('select-head.ts', ['--sizes', '32', '--layers', 'no_such_layer', '--heads', '16x1', '--epochs', '2', '--folds', '2']);
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /has no layer named 'no_such_layer'; run 'scarce backbone inspect/);
  assert.doesNotMatch(result.stderr, /\n\s+at |tfjs-backend-wasm/, 'no stack trace and no backend source');
});

test('evaluate-synth rejects bad options', () => {
  const unknown = runScript('evaluate-synth.ts', ['--no-such-option']);
  assert.equal(unknown.status, 2, unknown.stderr);
  assert.equal(unknown.stderr.trim(), "Unknown option '--no-such-option'. Run with --help for the options.");
  const seeds = runScript('evaluate-synth.ts', ['--seeds', 'x']);
  assert.equal(seeds.status, 2, seeds.stderr);
  assert.match(seeds.stderr, /^Invalid --seeds 'x': expected an integer of at least 0\. Run with --help/);
});
