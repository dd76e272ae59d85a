import { Worker } from 'node:worker_threads';
import type { AdamArrays, AdamStep } from './adam-update.js';
import type { GraphFeed, OnnxGraphSession } from './onnx-runner.js';
import type { AdamHelper } from './onnx-steps.js';
import type { ThreadReply, ThreadRequest } from './onnx-thread-worker.js';

/**
 * A worker thread that runs onnxruntime sessions beside the calling thread. onnxruntime-node
 * runs a session on the thread that calls it, so two sessions overlap only when one of them
 * lives here. The thread does not keep the process alive; `close` ends it.
 */
export class OnnxThread implements AdamHelper {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (reply: ThreadReply) => void; reject: (error: Error) => void }>();
  private nextId = 0;
  private failure: Error | null = null;

  constructor() {
    this.worker = new Worker(new URL('./onnx-thread-worker.js', import.meta.url));
    this.worker.unref();
    this.worker.on('message', (reply: ThreadReply) => {
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (reply.error !== undefined) waiting?.reject(new Error(`onnxruntime in a worker thread: ${reply.error}`));
      else waiting?.resolve(reply);
    });
    this.worker.on('error', (error) => this.fail(error));
    this.worker.on('exit', (code) => this.fail(new Error(`the onnxruntime worker thread exited with code ${code}`)));
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiting of this.pending.values()) waiting.reject(error);
    this.pending.clear();
  }

  private request(message: Omit<ThreadRequest, 'id'>, transfer: ArrayBuffer[] = []): Promise<ThreadReply> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }

  /** Opens a session on the graph's bytes, on `threads` onnxruntime threads, that runs in this thread. */
  async open(bytes: Uint8Array, threads = 1): Promise<OnnxGraphSession> {
    const { session } = await this.request({ kind: 'open', bytes, threads } as Omit<ThreadRequest, 'id'>);
    return {
      run: async (feeds: Readonly<Record<string, GraphFeed>>, outputs: readonly string[]) => {
        // The feeds are copied into the message, so the caller may change its arrays at once.
        const copied = Object.fromEntries(Object.entries(feeds).map(([name, feed]) => [name, { data: feed.data, dims: [...feed.dims] }]));
        const reply = await this.request({ kind: 'run', session: session!, feeds: copied, outputs: [...outputs] } as Omit<ThreadRequest, 'id'>);
        return reply.result!;
      },
    };
  }

  /**
   * Runs elements [start, end) of an Adam step in this thread. The weights, moments and averages
   * must be on shared memory. The gradient contains the range from `gradientOffset`, and it moves
   * to the thread, so it is unusable here afterwards.
   */
  async adam(arrays: AdamArrays, step: AdamStep, start: number, end: number, gradientOffset: number): Promise<void> {
    await this.request({ kind: 'adam', arrays, step, start, end, gradientOffset } as Omit<ThreadRequest, 'id'>, [arrays.gradient.buffer as ArrayBuffer]);
  }

  /** Ends the thread; its sessions reject further runs. */
  async close(): Promise<void> {
    this.failure ??= new Error('the onnxruntime worker thread was closed');
    await this.worker.terminate();
  }
}
