import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { BACKEND_VARIABLE, CPU_WARNING, parseBackendChoice, selectBackend } from '@scarce/core';

test('auto selection falls back to wasm and says why', async (context) => {
  const lines: string[] = [];
  const selection = await selectBackend({ backend: 'auto', log: (line) => lines.push(line) });
  if (selection.backend === 'node-gpu' || selection.backend === 'node') {
    context.skip('a tfjs-node binding is installed here, so there is no fallback to check');
    return;
  }
  assert.equal(selection.backend, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.deepEqual(selection.skipped.map((entry) => entry.backend), ['node-gpu', 'node']);
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^backend: wasm \(skipped node-gpu: .+; node: .+\)$/);
  assert.ok(tf.getKernel('Conv2DBackpropFilter', 'wasm'), 'gradient kernels are registered for wasm');
});

test('requested cpu backend warns loudly', async () => {
  const lines: string[] = [];
  const selection = await selectBackend({ backend: 'cpu', log: (line) => lines.push(line) });
  assert.equal(selection.backend, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.deepEqual(lines, ['backend: cpu (requested)', CPU_WARNING]);
});

test('environment variable overrides auto', async () => {
  process.env[BACKEND_VARIABLE] = 'wasm';
  try {
    const lines: string[] = [];
    const selection = await selectBackend({ log: (line) => lines.push(line) });
    assert.equal(selection.backend, 'wasm');
    assert.deepEqual(lines, ['backend: wasm (requested)']);
  } finally {
    delete process.env[BACKEND_VARIABLE];
  }
});

test('requested backend that cannot load is an error', async () => {
  await assert.rejects(selectBackend({ backend: 'node', log: () => {} }), /Backend 'node' was requested but failed to load: /);
});

test('backend names are validated', () => {
  assert.equal(parseBackendChoice('wasm', '--backend'), 'wasm');
  assert.equal(parseBackendChoice('', '--backend'), undefined);
  assert.throws(() => parseBackendChoice('gpu', 'SCARCE_BACKEND'), /Invalid SCARCE_BACKEND 'gpu'; expected auto, node-gpu, node, wasm, cpu/);
});
