import { parentPort } from 'node:worker_threads';
import { encodeChunk, type ChunkResult, type ShardSettings, type ShardSource } from './shard-job.js';

/**
 * Entry point of a worker thread of `ShardWorkerPool`: it receives the run's settings once,
 * then encodes one chunk of sources per message and posts the rows (their image buffers
 * transferred, not copied) or the error.
 */
export type WorkerRequest = { kind: 'settings'; settings: ShardSettings } | { kind: 'chunk'; id: number; sources: ShardSource[] };
export type WorkerResponse =
  | { kind: 'done'; id: number; result: ChunkResult }
  | { kind: 'failed'; id: number; error: { name: string; message: string; stack?: string } };

let settings: ShardSettings | undefined;

parentPort?.on('message', async (request: WorkerRequest) => {
  if (request.kind === 'settings') {
    settings = request.settings;
    return;
  }
  const port = parentPort!;
  try {
    if (settings === undefined) throw new Error('The shard worker received a chunk before its settings.');
    const result = await encodeChunk(request.sources, settings);
    const transfer = result.rows.map((row) => row.image.buffer as ArrayBuffer);
    port.postMessage({ kind: 'done', id: request.id, result } satisfies WorkerResponse, transfer);
  } catch (error) {
    const { name, message, stack } = error as Error;
    port.postMessage({ kind: 'failed', id: request.id, error: { name, message, stack } } satisfies WorkerResponse);
  }
});
