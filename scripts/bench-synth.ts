/**
 * GAN training speed of scarce against PyTorch on the CPU, side by side in one run:
 *   node --import tsx scripts/bench-synth.ts [steps, default 64] [batch, default 32] [rounds, default 3]
 *
 * Both sides train the same class-conditional GAN (scarce's default settings: generator widths
 * [32, 16], discriminator [16, 32], minibatch standard deviation, hinge loss, DiffAugment, R1
 * every 16 steps, EMA) on random 28x28 grayscale images with two classes, and report training
 * steps per second after 160 warm-up steps. scarce's steps run where `GanTrainer.useRuntime`
 * puts them under the default `runtime: 'auto'`: compiled for onnxruntime on wasm or cpu (with
 * the next batch passed, as the training loop does), else on the tfjs backend. The peer
 * (bench-synth-peer.py, which defines its model in full) is Debian's python3-torch with OpenBLAS
 * on 1 thread, run with torch on 1 thread and on 2, and the ratio is taken against the
 * faster: when other jobs keep the cores busy, torch's 2-thread OpenMP steps wait on
 * each other and ran about 10 times slower than 1 thread. Each round runs the peer on 1 and on
 * 2 threads, then scarce, so they never compete for the cores. Other load on the machine still
 * moves both, so the last row compares each side's best round.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '@scarce/core';
import { GanTrainer, resolveSynthConfig } from '@scarce/synth';

const steps = Number(process.argv[2] ?? 64);
const batchSize = Number(process.argv[3] ?? 32);
const roundCount = Number(process.argv[4] ?? 3);
// Both sides warm up for as many steps: alone in one process, scarce ran 67 steps/s over its first 60
// and 77 to 81 after 120. A multiple of 16 makes every timed run hold the same number of R1 steps.
const warmup = 160;

/** Runs the PyTorch peer on `threads` torch threads and returns its steps per second. */
function runPeer(threads: number): { stepsPerSecond: number; torch: string; threads: number } {
  const peer = spawnSync(
    '/usr/bin/python3',
    [join(dirname(fileURLToPath(import.meta.url)), 'bench-synth-peer.py'), '--steps', String(steps), '--batch', String(batchSize), '--warmup', String(warmup), '--threads', String(threads)],
    { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } },
  );
  if (peer.status !== 0) throw new Error(`The PyTorch peer failed (is python3-torch installed?):\n${peer.stderr}`);
  return JSON.parse(peer.stdout.trim().split('\n').at(-1)!);
}

const selection = await selectBackend({ log: () => {} });
const config = resolveSynthConfig({ batchSize });
const trainer = new GanTrainer(config, { imageShape: { height: 28, width: 28, channels: 1 }, numClasses: 2 });
const runtime = await trainer.useRuntime(config.runtime);
const images = tf.randomUniform([batchSize, 28, 28, 1], -1, 1, 'float32', 0) as tf.Tensor4D;
const labels = tf.oneHot(tf.tensor1d(Array.from({ length: batchSize }, (_, i) => i % 2), 'int32'), 2).toFloat() as tf.Tensor2D;
// One batch object per step, so that each step can start the next one's discriminator half.
const batches = Array.from({ length: warmup + steps + 1 }, () => ({ images, labels }));
for (let step = 0; step < warmup; step++) await trainer.step(batches[step], batches[step + 1]);

/** Times `steps` more training steps of the same trainer and returns steps per second. */
async function timeScarceSteps(): Promise<number> {
  const start = performance.now();
  for (let step = warmup; step < warmup + steps; step++) await trainer.step(batches[step], batches[step + 1]);
  return steps / ((performance.now() - start) / 1000);
}

// Rounds alternate the runs, so that a burst of other load slows one round rather than one side.
const rounds: { scarce: number; peers: ReturnType<typeof runPeer>[] }[] = [];
for (let round = 0; round < roundCount; round++) {
  const peers = [runPeer(1), runPeer(2)];
  rounds.push({ scarce: await timeScarceSteps(), peers });
}
tf.dispose([images, labels]);
trainer.disposeTraining();
trainer.averagedGenerator.dispose();

console.log(`class-conditional DCGAN, 28x28x1, batch ${batchSize}, ${steps} steps per run, ${roundCount} rounds; scarce's steps in ${runtime === 'onnxruntime' ? 'onnxruntime' : `tfjs (${selection.backend})`}, PyTorch ${rounds[0].peers[0].torch}`);
console.log('| round | scarce steps/s | PyTorch steps/s (1 thread / 2 threads) | ratio to the faster |\n| --- | ---: | ---: | ---: |');
const row = (name: string, scarce: number, peers: number[]) => {
  const ratio = scarce / Math.max(...peers);
  console.log(`| ${name} | ${scarce.toFixed(2)} | ${peers.map((value) => value.toFixed(2)).join(' / ')} | ${ratio.toFixed(2)}x |`);
};
rounds.forEach((round, i) => row(String(i + 1), round.scarce, round.peers.map((peer) => peer.stepsPerSecond)));
// The best run of each side is the one least disturbed by other load.
row('best of each', Math.max(...rounds.map((round) => round.scarce)), [0, 1].map((i) => Math.max(...rounds.map((round) => round.peers[i].stepsPerSecond))));
