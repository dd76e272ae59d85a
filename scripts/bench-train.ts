/**
 * Training throughput of scarce's two strategies against PyTorch on the CPU, side by side in one
 * run: node --import tsx scripts/bench-train.ts [images, default 512] [input px, default 128]
 *
 * Both sides train a classifier on MobileNetV2 width 0.35 at the same input size, batch 32 and
 * epochs; images per second count every image of every epoch. scarce runs on the backend that
 * selectBackend picks, and its feature extraction uses every core (worker threads on wasm). The
 * peer is Debian's python3-torch on 2 threads with OpenBLAS on 1 thread; its own docstring
 * (bench-train-peer.py) defines its workloads.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { Random, selectBackend, type ImageRecord } from '@scarce/core';
import { extractFeaturesParallel, fineTune, frozenActivations, loadBackbone, splitBackbone, tailFeatures, trainHead } from '@scarce/train';

const images = Number(process.argv[2] ?? 512);
const size = Number(process.argv[3] ?? 128);
const headEpochs = 20;
const tuneEpochs = 2;

const peer = spawnSync('/usr/bin/python3', [join(dirname(fileURLToPath(import.meta.url)), 'bench-train-peer.py'), '--images', String(images), '--size', String(size), '--head-epochs', String(headEpochs), '--tune-epochs', String(tuneEpochs)], {
  encoding: 'utf8',
  env: { ...process.env, OPENBLAS_NUM_THREADS: '1' },
});
if (peer.status !== 0) throw new Error(`The PyTorch peer failed (is python3-torch installed?):\n${peer.stderr}`);
const torch = JSON.parse(peer.stdout.trim().split('\n').at(-1)!);

const selection = await selectBackend({ log: () => {} });
const random = new Random(0);
const records: ImageRecord[] = Array.from({ length: images }, (_, i) => ({
  pixels: Uint8Array.from({ length: 28 * 28 }, () => random.integer(0, 256)),
  height: 28, width: 28, channels: 1, label: i % 2, origin: 'real', sourceIndex: i, view: 0, seed: 0, params: null, split: 'train',
}));
const labels = records.map((record) => record.label);
const backbone = await loadBackbone('fixtures/mobilenet_v2_0.35_224_notop', { inputSize: size });

let start = performance.now();
const features = await extractFeaturesParallel(backbone, records, { quiet: true });
(await trainHead({ features, labels }, { features: features.subarray(0, 64 * 1280), labels: labels.slice(0, 64) }, 2, { epochs: headEpochs, earlyStopping: { patience: headEpochs } })).head.dispose();
const featureSeconds = (performance.now() - start) / 1000;

const split = splitBackbone(backbone, { lastBlocks: 2 });
start = performance.now();
const activations = await frozenActivations(split, backbone, records);
const head = (await trainHead({ features: await tailFeatures(split, activations), labels }, { features: new Float32Array(0), labels: [] }, 2, { epochs: 1, earlyStopping: { monitor: 'loss' } })).head;
const phaseOneSeconds = (performance.now() - start) / 1000;
start = performance.now();
const validation = activations.slice(0, 64);
await fineTune(split, head, { activations, labels }, { activations: validation, labels: labels.slice(0, 64) }, { epochs: tuneEpochs, earlyStopping: { patience: tuneEpochs, restoreBestWeights: false } });
const tuneSeconds = (performance.now() - start) / 1000 + phaseOneSeconds;

const rate = (seconds: number, epochs: number) => (images * epochs) / seconds;
const ours = { featureExtraction: rate(featureSeconds, headEpochs), fineTune: rate(tuneSeconds, tuneEpochs) };
console.log(`MobileNetV2-0.35 at ${size} px, ${images} images, batch 32; scarce on ${selection.backend}, PyTorch ${torch.params} params on 2 threads`);
console.log('| strategy | scarce img/s | PyTorch img/s | ratio |\n| --- | ---: | ---: | ---: |');
console.log(`| feature extraction, head ${headEpochs} epochs | ${ours.featureExtraction.toFixed(0)} | ${torch.featureExtraction.imagesPerSecond.toFixed(0)} | ${(ours.featureExtraction / torch.featureExtraction.imagesPerSecond).toFixed(2)}x |`);
console.log(`| fine-tune last 2 blocks, ${tuneEpochs} epochs (PyTorch: whole forward per step) | ${ours.fineTune.toFixed(0)} | ${torch.fineTune.imagesPerSecond.toFixed(0)} | ${(ours.fineTune / torch.fineTune.imagesPerSecond).toFixed(2)}x |`);
console.log(`| fine-tune last 2 blocks, ${tuneEpochs} epochs (PyTorch: cached front, as scarce) | ${ours.fineTune.toFixed(0)} | ${torch.fineTuneCachedFront.imagesPerSecond.toFixed(0)} | ${(ours.fineTune / torch.fineTuneCachedFront.imagesPerSecond).toFixed(2)}x |`);
