import { parentPort } from 'node:worker_threads';
import { runShardJob, type ShardJob, type ShardSettings } from './shard-job.js';

/**
 * Entry point of a worker thread of `ShardWorkerPool`: it receives the run's settings once,
 * then writes one shard per message and posts the result, progress after each source, or the
 * error.
 */
export type WorkerRequest = { kind: 'settings'; settings: ShardSettings } | { kind: 'job'; id: number; job: ShardJob };
export type WorkerResponse =
  | { kind: 'progress'; id: number }
  | { kind: 'done'; id: number; result: Awaited<ReturnType<typeof runShardJob>> }
  | { kind: 'failed'; id: number; error: { name: string; message: string; stack?: string } };

let settings: ShardSettings | undefined;

parentPort?.on('message', async (request: WorkerRequest) => {
  if (request.kind === 'settings') {
    settings = request.settings;
    return;
  }
  const port = parentPort!;
  try {
    if (settings === undefined) throw new Error('The shard worker received a job before its settings.');
    const result = await runShardJob(request.job, settings, () => port.postMessage({ kind: 'progress', id: request.id } satisfies WorkerResponse));
    port.postMessage({ kind: 'done', id: request.id, result } satisfies WorkerResponse);
  } catch (error) {
    const { name, message, stack } = error as Error;
    port.postMessage({ kind: 'failed', id: request.id, error: { name, message, stack } } satisfies WorkerResponse);
  }
});
