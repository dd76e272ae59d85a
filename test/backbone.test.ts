import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { readMedMnistNpz, selectBackend } from '@scarce/core';
import { backboneBlocks, blockName, describeBackbone, extractFeatures, extractFeaturesCached, extractFeaturesParallel, FeatureCache, loadBackbone, splitBackbone, toBackboneInput } from '@scarce/train';
import { BREASTMNIST, largestDifference, MOBILENET } from './helpers.js';

let baseUrl = '';
const requested: string[] = [];
/**
 * Serves the backbone under /model/, and broken copies of it under other folders. /cut/ serves
 * half the weights and /html/ an HTML page for model.json. /hang/ never replies, and /drop/
 * closes the weights' connection after the headers and 1,000 bytes.
 */
const server = createServer((request, response) => {
  requested.push(request.url ?? '');
  const [, folder, file] = (request.url ?? '').split('/');
  if (!['model', 'cut', 'html', 'hang', 'drop'].includes(folder) || !['model.json', 'weights.bin'].includes(file)) {
    response.writeHead(404).end();
    return;
  }
  if (folder === 'hang') return;
  if (folder === 'html' && file === 'model.json') {
    response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><p>Sign in</p>');
    return;
  }
  if (file === 'weights.bin' && (folder === 'cut' || folder === 'drop')) {
    void readFile(join(MOBILENET, file)).then((bytes) => {
      if (folder === 'cut') {
        response.writeHead(200).end(bytes.subarray(0, bytes.length / 2));
        return;
      }
      response.writeHead(200, { 'content-length': String(bytes.length) });
      response.write(bytes.subarray(0, 1000), () => response.destroy());
    });
    return;
  }
  response.writeHead(200);
  createReadStream(join(MOBILENET, file)).pipe(response);
});

before(async () => {
  await selectBackend({ log: () => {} });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

test('backbone loads at a chosen input size', async () => {
  const backbone = await loadBackbone(MOBILENET, { inputSize: 64 });
  assert.equal(backbone.featureSize, 1280);
  assert.deepEqual(backbone.model.inputs[0].shape, [null, 64, 64, 3]);
  assert.deepEqual(backbone.model.outputs[0].shape, [null, 2, 2, 1280]);
  assert.equal(backbone.model.countParams(), 410208);
  backbone.model.dispose();
});

test('backbone taps an inner feature layer', async () => {
  const full = await loadBackbone(MOBILENET, { inputSize: 64 });
  const tapped = await loadBackbone(MOBILENET, { inputSize: 64, featureLayer: 'block_16_expand_relu' });
  assert.equal(tapped.featureSize, 336);
  assert.deepEqual(tapped.model.outputs[0].shape, [null, 2, 2, 336]);
  assert.equal(tapped.featureLayer, 'block_16_expand_relu');
  assert.notEqual(tapped.fingerprint, full.fingerprint);

  // The tapped model computes what the full model computes at that layer.
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const records = dataset.records.slice(0, 3);
  const probe = tf.model({ inputs: full.model.inputs, outputs: full.model.getLayer('block_16_expand_relu').output as tf.SymbolicTensor });
  const expected = tf.tidy(() => (probe.predict(toBackboneInput(records, full)) as tf.Tensor4D).mean([1, 2]).dataSync());
  const features = extractFeatures(tapped, records, { quiet: true });
  const maxDifference = Math.max(...Array.from(features, (value, i) => Math.abs(value - expected[i])));
  assert.ok(maxDifference < 1e-5, `max difference ${maxDifference}`);

  await assert.rejects(loadBackbone(MOBILENET, { inputSize: 64, featureLayer: 'block_99' }), /has no layer named 'block_99'; run 'scarce backbone inspect/);
  full.model.dispose();
});

test('parallel and onnxruntime features equal serial ones', async () => {
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const records = dataset.records.slice(0, 150);
  const backbone = await loadBackbone(MOBILENET, { inputSize: 32, featureLayer: 'block_16_expand_relu' });
  const serial = extractFeatures(backbone, records, { quiet: true, batchSize: 32 });
  const parallel = await extractFeaturesParallel(backbone, records, { quiet: true, batchSize: 32, threads: 3, runtime: 'tfjs' });
  assert.equal(parallel.length, 150 * 336);
  assert.deepEqual(parallel, serial);
  const onnx = await extractFeaturesParallel(backbone, records, { quiet: true, batchSize: 32, runtime: 'onnxruntime' });
  assert.equal(onnx.length, serial.length);
  const largest = largestDifference(onnx, serial);
  assert.ok(largest < 1e-4, `onnxruntime features differ from tfjs by up to ${largest}`);
  backbone.model.dispose();
});

test('backbone concatenates several feature layers', async () => {
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const records = dataset.records.slice(0, 5);
  const layers = ['block_6_expand_relu', 'block_16_expand_relu'];
  const both = await loadBackbone(MOBILENET, { inputSize: 32, featureLayer: layers });
  const singles = await Promise.all(layers.map((featureLayer) => loadBackbone(MOBILENET, { inputSize: 32, featureLayer })));
  assert.deepEqual(singles.map((single) => single.featureSize), [96, 336]);
  assert.equal(both.featureSize, 96 + 336);
  assert.deepEqual(both.featureLayer, layers);
  assert.notEqual(both.fingerprint, singles[1].fingerprint);

  const features = extractFeatures(both, records, { quiet: true });
  const parts = singles.map((single) => extractFeatures(single, records, { quiet: true }));
  for (let row = 0; row < records.length; row++) {
    const expected = [...parts[0].subarray(row * 96, (row + 1) * 96), ...parts[1].subarray(row * 336, (row + 1) * 336)];
    assert.deepEqual(Array.from(features.subarray(row * 432, (row + 1) * 432)), expected, `row ${row}`);
  }
  const fromOnnx = await extractFeaturesParallel(both, records, { quiet: true, runtime: 'onnxruntime' });
  const largest = largestDifference(fromOnnx, features);
  assert.ok(largest < 1e-4, `onnxruntime differs by up to ${largest}`);

  assert.throws(() => splitBackbone(both, { lastBlocks: 1 }), /one feature map.*2 feature layers/);
  await assert.rejects(loadBackbone(MOBILENET, { inputSize: 32, featureLayer: [] }), /empty list/);
  await assert.rejects(loadBackbone(MOBILENET, { inputSize: 32, featureLayer: ['block_6_expand_relu', 'block_6_expand_relu'] }), /names 'block_6_expand_relu' twice/);
  await assert.rejects(loadBackbone(MOBILENET, { inputSize: 32, featureLayer: ['block_6_expand_relu', 'block_99'] }), /no layer named 'block_99'/);
});

test('backbone reads its declared spec', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'scarce-spec-'));
  const modelJson = JSON.parse(await readFile(join(MOBILENET, 'model.json'), 'utf8'));
  modelJson.userDefinedMetadata = { scarceBackbone: { nativeSize: 96, channelOrder: 'rgb', scaling: '[0, 1]' } };
  await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson));
  await copyFile(join(MOBILENET, 'weights.bin'), join(dir, 'weights.bin'));

  const declared = await loadBackbone(dir);
  assert.deepEqual(declared.spec, { nativeSize: 96, channelOrder: 'rgb', scaling: '[0, 1]' });
  assert.equal(declared.inputSize, 96);
  const plain = await loadBackbone(MOBILENET, { inputSize: 96 });
  assert.notEqual(declared.fingerprint, plain.fingerprint, 'another scaling gives other features, so another cache key');

  // Pixels of 255 scale to 1 under [0, 1] and to 1 under [-1, 1]; pixels of 0 tell them apart.
  const black = [{ pixels: new Uint8Array(28 * 28), height: 28, width: 28, channels: 1 }];
  const [declaredInput, plainInput] = [declared, plain].map((backbone) => toBackboneInput(black, backbone).max().dataSync()[0]);
  assert.equal(declaredInput, 0);
  assert.equal(plainInput, -1);

  modelJson.userDefinedMetadata = { scarceBackbone: { nativeSize: 96, scaling: '0..1' } };
  await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson));
  await assert.rejects(loadBackbone(dir), /userDefinedMetadata\.scarceBackbone must be \{ nativeSize/);
  declared.model.dispose();
  plain.model.dispose();
});

test('backbone from a URL equals the local copy', async () => {
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const images = dataset.records.slice(0, 4);
  const local = await loadBackbone(MOBILENET, { inputSize: 32 });
  const remote = await loadBackbone(`${baseUrl}/model/model.json`, { inputSize: 32 });
  assert.ok(requested.includes('/model/weights.bin'), 'weights were fetched over HTTP');
  const localFeatures = extractFeatures(local, images, { quiet: true });
  const remoteFeatures = extractFeatures(remote, images, { quiet: true });
  assert.equal(localFeatures.length, 4 * 1280);
  assert.deepEqual(remoteFeatures, localFeatures);
  assert.ok(localFeatures.some((value) => value > 0), 'features are not all zero');
  local.model.dispose();
  remote.model.dispose();
});

test('backbones at several sizes download once', async () => {
  requested.length = 0;
  const downloads = new Map<string, Uint8Array>();
  const small = await loadBackbone(`${baseUrl}/model/model.json`, { inputSize: 32, downloads });
  const large = await loadBackbone(`${baseUrl}/model/model.json`, { inputSize: 48, downloads });
  assert.deepEqual(requested.sort(), ['/model/model.json', '/model/weights.bin']);
  assert.deepEqual(large.model.inputs[0].shape, [null, 48, 48, 3]);
  assert.notEqual(small.fingerprint, large.fingerprint, 'each size keeps its own feature cache key');
  small.model.dispose();
  large.model.dispose();
});

test('backbone names a failed download', async () => {
  await assert.rejects(loadBackbone(`${baseUrl}/missing/model.json`), /GET .*missing\/model\.json failed with HTTP 404 Not Found\. Check the URL/);
  await assert.rejects(loadBackbone(`${baseUrl}/cut/model.json`), /weights\.bin of .*cut\/model\.json holds 820416 bytes, but the weightsManifest of its model\.json needs 1640832\. The file is incomplete/);
  await assert.rejects(loadBackbone(`${baseUrl}/html/model.json`), /html\/model\.json is not a TF\.js model\.json: .* It starts with <, so the server or file gave an HTML page/);
  await assert.rejects(loadBackbone(`${baseUrl}/drop/model.json`), /GET .*drop\/weights\.bin failed: .*Check the URL and that the server is reachable/);

  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const closedPort = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  await assert.rejects(loadBackbone(`http://127.0.0.1:${closedPort}/model.json`), /GET .*model\.json failed: ECONNREFUSED\. Check the URL/);

  process.env.SCARCE_FETCH_TIMEOUT_SECONDS = '0.5';
  try {
    await assert.rejects(loadBackbone(`${baseUrl}/hang/model.json`), /GET .*hang\/model\.json timed out after 0\.5 s\..*SCARCE_FETCH_TIMEOUT_SECONDS sets a longer limit/);
  } finally {
    delete process.env.SCARCE_FETCH_TIMEOUT_SECONDS;
  }
});

test('feature extraction keeps the tensor count flat', async () => {
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const backbone = await loadBackbone(MOBILENET, { inputSize: 32 });
  extractFeatures(backbone, dataset.records.slice(0, 8), { quiet: true });
  const before = tf.memory().numTensors;
  extractFeatures(backbone, dataset.records.slice(0, 40), { batchSize: 8, quiet: true });
  assert.equal(tf.memory().numTensors, before);
  backbone.model.dispose();
});

test('feature cache returns the same features without the backbone', async () => {
  const dataset = await readMedMnistNpz(BREASTMNIST);
  const images = [...dataset.records.slice(0, 6), dataset.records[0]];
  const root = await mkdtemp(join(tmpdir(), 'scarce-cache-'));
  const backbone = await loadBackbone(MOBILENET, { inputSize: 32 });
  const cache = new FeatureCache(root, backbone);

  const first = await extractFeaturesCached(backbone, images, cache, { quiet: true });
  assert.equal(first.misses, 7);
  assert.deepEqual(first.features.subarray(6 * 1280), first.features.subarray(0, 1280), 'a repeated image gets the same features');
  const second = await extractFeaturesCached(backbone, images, cache, { quiet: true });
  assert.equal(second.hits, 7);
  assert.deepEqual(second.features, first.features);
  const fromTfjs = extractFeatures(backbone, images, { quiet: true });
  const largest = largestDifference(second.features, fromTfjs);
  assert.ok(largest < 1e-4, `cached features differ from tfjs ones by up to ${largest}`);

  const larger = await loadBackbone(MOBILENET, { inputSize: 64 });
  assert.notEqual(new FeatureCache(root, larger).directory, cache.directory, 'another input size has its own cache');
  backbone.model.dispose();
  larger.model.dispose();
});

test('backbone blocks follow Keras layer names', async () => {
  assert.equal(blockName('block_16_expand_BN'), 'block_16');
  assert.equal(blockName('conv4_block2_out'), 'conv4_block2');
  assert.equal(blockName('expanded_conv_project'), 'expanded_conv');
  assert.equal(blockName('bn_Conv1'), 'Conv1');
  assert.equal(blockName('Conv_1_bn'), 'Conv_1');
  const backbone = await loadBackbone(MOBILENET, { inputSize: 32 });
  const blocks = backboneBlocks(backbone.model);
  assert.deepEqual(blocks.map((block) => block.name), ['Conv1', 'expanded_conv', ...Array.from({ length: 16 }, (_, i) => `block_${i + 1}`), 'Conv_1']);
  assert.equal(blocks.reduce((sum, block) => sum + block.params, 0), 410208);
  assert.deepEqual(blocks.at(-1)!.layers.map((layer) => layer.name), ['Conv_1', 'Conv_1_bn', 'out_relu']);
  assert.match(describeBackbone(backbone.model), /^model\w*: 155 layers, 410,208 parameters\ninput \[null,32,32,3\] -> output \[null,1,1,1280\]/);
  backbone.model.dispose();
});
