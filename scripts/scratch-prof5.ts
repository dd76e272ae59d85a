import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '@scarce/core';
import { GanTrainer, resolveSynthConfig, CompiledGanTraining } from '@scarce/synth';
import { ArrayAdam } from '@scarce/train';
await selectBackend({ log: () => {} });
const times = new Map<string, number>();
const add = (k: string, v: number) => times.set(k, (times.get(k) ?? 0) + v);
function wrap(obj: any, name: string, label = name) {
  const f = obj[name];
  obj[name] = function (...args: any[]) {
    const t = performance.now();
    const r = f.apply(this, args);
    if (r instanceof Promise) return r.then((v: any) => { add(label, performance.now() - t); return v; });
    add(label, performance.now() - t);
    return r;
  };
}
wrap(ArrayAdam.prototype, 'apply', 'adam'); const CP = (CompiledGanTraining.prototype as any); for (const m of ['startDiscriminator', 'updateMovingStatistics']) wrap(CP, m);
const config = resolveSynthConfig({ batchSize: 32 });
const trainer = new GanTrainer(config, { imageShape: { height: 28, width: 28, channels: 1 }, numClasses: 2 });
await trainer.useRuntime('auto');
const c = (trainer as any).compiled;
wrap(c.sessions.fake, 'run', 'fake'); wrap(c.sessions.generator, 'run', 'generator');
const images = tf.randomUniform([32, 28, 28, 1], -1, 1, 'float32', 0) as tf.Tensor4D;
const labels = tf.oneHot(tf.tensor1d(Array.from({ length: 32 }, (_, i) => i % 2), 'int32'), 2).toFloat() as tf.Tensor2D;
const bs = Array.from({ length: 400 }, () => ({ images, labels })); let bi = 0;
for (let i = 0; i < 10; i++, bi++) await trainer.step(bs[bi], bs[bi + 1]);
for (let block = 0; block < 3; block++) {
  times.clear();
  const t = performance.now();
  const N = 64;
  for (let i = 0; i < N; i++, bi++) await trainer.step(bs[bi], bs[bi + 1]);
  console.log('step', ((performance.now() - t) / N).toFixed(2), [...times].map(([k, v]) => `${k} ${(v / N).toFixed(2)}`).join(', '));
}
trainer.disposeTraining();
