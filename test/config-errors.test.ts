import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '@scarce/core';
import { parseRunConfig } from '../packages/cli/src/config.js';

/** Parses a config that must fail and returns its error message. */
function rejectionOf(config: unknown): string {
  try {
    parseRunConfig(config, 'bad.json', '/tmp');
  } catch (error) {
    assert.ok(error instanceof InputError, `an InputError, not ${(error as Error).name}`);
    return error.message;
  }
  assert.fail('the config was accepted');
}

const data = { path: 'data.npz' };

test('config errors name field, value and allowed', () => {
  const cases: Array<[string, unknown, RegExp[]]> = [
    ['wrong type', { data, train: { featureBatchSize: 'large' } }, [/train\.featureBatchSize: expected number but received "large"/]],
    ['input size of another type', { data, train: { inputSize: 'large' } }, [/train\.inputSize: expected a side in pixels of 32 or more, or a list of them \(received "large"\)/]],
    ['enum value', { data, backend: 'gpu' }, [/backend: expected one of "auto", "node-gpu", "node", "wasm", "cpu" but received "gpu"/]],
    ['number too small', { data, train: { seeds: [0, -1] } }, [/train\.seeds\[1\]: expected a number >= 0 but received -1/]],
    ['number too big', { data: { ...data, split: { val: 0.9, test: 0.1 } } }, [/data\.split\.val: expected a number <= 0\.5 but received 0\.9/]],
    ['exclusive bound', { data, train: { reduceLrOnPlateau: { factor: 1 } } }, [/train\.reduceLrOnPlateau\.factor: expected a number < 1 but received 1/]],
    ['monitor not logged', { data, train: { earlyStopping: { monitor: 'val_f1' } } }, [/train\.earlyStopping\.monitor: expected one of "loss", "val_loss", "val_accuracy", "val_auc" but received "val_f1"/]],
    ['short array', { data: { ...data, size: [28] } }, [/data\.size: expected at least 2 items but received 1/]],
    ['missing field', {}, [/data: expected object but received nothing/]],
    [
      'unknown field',
      { data, train: { head: { epoch: 3 } } },
      [/train\.head: unknown field 'epoch'\./, /Allowed: batchSize, classWeight, dropout, ensemble, epochs, labelSmoothing, learningRate, mixup, sampling, units\./, /Did you mean 'epochs'\?/],
    ],
    ['unknown top-level field', { data, seeds: [1] }, [/\(top level\): unknown field 'seeds'\. Allowed: augment, backend, data, /, /Did you mean 'seed'\?/]],
    ['invalid name', { data, name: '../x' }, [/name: use letters, digits, dot, dash or underscore.*\(received "\.\.\/x"\)/]],
    ['feature layer of another type', { data, train: { featureLayer: ['block_6_expand_relu', 3] } }, [/train\.featureLayer: expected a layer name or a list of layer names/]],
    [
      'several feature layers with fine-tuning',
      { data, train: { strategy: 'fine-tune', featureLayer: ['block_6_expand_relu', 'block_16_expand_relu'] } },
      [/train\.featureLayer: strategy 'fine-tune' trains on one feature map; name one layer, or use strategy 'feature-extraction'/],
    ],
    [
      'several input sizes with fine-tuning',
      { data, train: { strategy: 'fine-tune', inputSize: [96, 128] } },
      [/train\.inputSize: strategy 'fine-tune' trains the backbone at one input size; give one size, or use strategy 'feature-extraction'/],
    ],
    [
      'validation images trained on with fine-tuning',
      { data, train: { strategy: 'fine-tune', trainOnValidation: true } },
      [/train\.trainOnValidation: strategy 'fine-tune' stops fine-tuning early on the validation images.*set trainOnValidation to false/],
    ],
    [
      'learning-rate schedule on trained-on images',
      { data, train: { trainOnValidation: true, reduceLrOnPlateau: { factor: 0.5 } } },
      [/train\.reduceLrOnPlateau\.monitor: 'val_loss' is measured on validation images that trainOnValidation trains on; monitor 'loss'/],
    ],
  ];
  for (const [name, config, patterns] of cases) {
    const message = rejectionOf(config);
    assert.match(message, /^Invalid config bad\.json:\n/, name);
    for (const pattern of patterns) assert.match(message, pattern, `${name}: ${message}`);
  }
});

test('config errors list allowed fields sorted', () => {
  const message = rejectionOf({ data, seeds: [1] });
  const allowed = /Allowed: ([^.]+)\./.exec(message)?.[1].split(', ') ?? [];
  for (const field of ['augment', 'backend', 'data', 'name', 'output', 'seed', 'synth', 'train']) assert.ok(allowed.includes(field), `${field} in ${allowed}`);
  assert.deepEqual(allowed, [...allowed].sort(), 'in alphabetical order');
});

test('config errors list five issues', () => {
  const message = rejectionOf({ data, seed: -1, name: '', output: 3, backend: 'x', train: { inputSize: 1, seeds: [] } });
  const issueLines = message.split('\n').slice(1);
  assert.equal(issueLines.length, 6, message);
  assert.match(issueLines[5], /^ {2}and 1 more$/);
});

test('config errors shorten long values', () => {
  const message = rejectionOf({ data, backend: 'x'.repeat(200) });
  assert.match(message, /received "x{56}\.\.\./);
  assert.ok(message.length < 300, `message of ${message.length} characters`);
});
