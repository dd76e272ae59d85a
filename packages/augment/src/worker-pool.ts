import { Worker } from 'node:worker_threads';
import { InputError } from '@scarce/core/io';
import type { ChunkResult, ShardSettings, ShardSource } from './shard-job.js';
import type { WorkerRequest, WorkerResponse } from './shard-worker.js';

interface Pending {
  resolve(result: ChunkResult): void;
  reject(error: Error): void;
  onSource?: () => void;
  sources: number;
}

/**
 * Worker threads that encode chunks of sources, so a run uses every core: the TypeScript warp
 * and codec run on the thread that calls them, and sharp's calls from each worker share
 * libuv's thread pool. A chunk's rows do not depend on which worker encodes them.
 */
export class ShardWorkerPool {
  private readonly idle: Worker[] = [];
  private readonly waiting: Array<(worker: Worker) => void> = [];
  private readonly pending = new Map<number, Pending>();
  private readonly workers: Worker[] = [];
  private nextId = 0;

  /** Starts `size` workers; `configure` must give them the run's settings before the first chunk. */
  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL('./shard-worker.js', import.meta.url));
      worker.on('message', (response: WorkerResponse) => this.receive(worker, response));
      worker.on('error', (error) => this.failAll(error));
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  /** Number of workers. */
  get size(): number {
    return this.workers.length;
  }

  /** Sends every worker the settings of the run. */
  configure(settings: ShardSettings): void {
    for (const worker of this.workers) worker.postMessage({ kind: 'settings', settings } satisfies WorkerRequest);
  }

  /** Encodes one chunk of sources on the next free worker. */
  async run(sources: ShardSource[], onSource?: () => void): Promise<ChunkResult> {
    const worker = this.idle.pop() ?? (await new Promise<Worker>((resolve) => this.waiting.push(resolve)));
    const id = this.nextId++;
    return new Promise<ChunkResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onSource, sources: sources.length });
      worker.postMessage({ kind: 'chunk', id, sources } satisfies WorkerRequest);
    });
  }

  /** Stops every worker; chunks still being encoded are abandoned. */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private receive(worker: Worker, response: WorkerResponse): void {
    const pending = this.pending.get(response.id);
    if (pending === undefined) return;
    this.pending.delete(response.id);
    this.release(worker);
    if (response.kind === 'done') {
      // Progress is counted per chunk: a message per source cost more than encoding a small image.
      for (let i = 0; i < pending.sources; i++) pending.onSource?.();
      pending.resolve(response.result);
      return;
    }
    const { name, message, stack } = response.error;
    const error = name === 'InputError' ? new InputError(message) : new Error(message);
    if (stack !== undefined && name !== 'InputError') error.stack = stack;
    pending.reject(error);
  }

  private release(worker: Worker): void {
    const next = this.waiting.shift();
    if (next !== undefined) next(worker);
    else this.idle.push(worker);
  }

  private failAll(error: Error): void {
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}
