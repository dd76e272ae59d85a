/**
 * The worker side of `OnnxThread`: opens onnxruntime sessions from graph bytes and runs them
 * when asked, one message at a time, so the thread that sent them can compute meanwhile. It also
 * runs ranges of Adam steps on shared arrays.
 */
import { parentPort } from 'node:worker_threads';
import { adamRange, type AdamArrays, type AdamStep } from './adam-update.js';

type Ort = typeof import('onnxruntime-node');
type Session = Awaited<ReturnType<Ort['InferenceSession']['create']>>;

/** Messages from the owning thread. */
export type ThreadRequest =
  | { kind: 'open'; id: number; bytes: Uint8Array; threads: number }
  | { kind: 'run'; id: number; session: number; feeds: Record<string, { data: Float32Array; dims: number[] }>; outputs: string[] }
  | { kind: 'adam'; id: number; arrays: AdamArrays; step: AdamStep; start: number; end: number; gradientOffset: number };

/** Replies to it: the request's id with its result or the error message. */
export type ThreadReply = { id: number; session?: number; result?: Record<string, Float32Array>; error?: string };

const port = parentPort!;
const sessions: Session[] = [];
let ort: Ort | undefined;

port.on('message', async (request: ThreadRequest) => {
  try {
    if (request.kind === 'adam') {
      adamRange(request.arrays, request.step, request.start, request.end, request.gradientOffset);
      port.postMessage({ id: request.id } satisfies ThreadReply);
      return;
    }
    ort ??= await import('onnxruntime-node');
    if (request.kind === 'open') {
      const session = await ort.InferenceSession.create(request.bytes, { intraOpNumThreads: request.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
      sessions.push(session);
      port.postMessage({ id: request.id, session: sessions.length - 1 } satisfies ThreadReply);
      return;
    }
    const session = sessions[request.session];
    const feeds = Object.fromEntries(Object.entries(request.feeds).map(([name, feed]) => [name, new ort!.Tensor('float32', feed.data, feed.dims)]));
    const result = await session.run(feeds, request.outputs);
    const values = Object.fromEntries(request.outputs.map((name) => [name, result[name].data as Float32Array]));
    port.postMessage({ id: request.id, result: values } satisfies ThreadReply, Object.values(values).map((array) => array.buffer as ArrayBuffer));
  } catch (error) {
    port.postMessage({ id: request.id, error: (error as Error).message } satisfies ThreadReply);
  }
});
