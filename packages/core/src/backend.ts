import { readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { registerGradients } from './gradients.js';
import { InputError } from './errors.js';
import { registerWasmTrainingKernels } from './wasm-kernels/index.js';

/** Compute backends in the order scarce prefers them. */
export const BACKEND_CHOICES = ['node-gpu', 'node', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

/** Environment variable that overrides the backend when no option is given. */
export const BACKEND_VARIABLE = 'SCARCE_BACKEND';

/** Options of `selectBackend`. */
export interface SelectBackendOptions {
  /** A backend to use instead of the first that loads; default `auto` (or $SCARCE_BACKEND). */
  backend?: BackendChoice | 'auto';
  /** Logger of the choice and the reasons; default stderr. */
  log?: (line: string) => void;
}

/** The backend in use and why the ones before it were skipped. */
export interface BackendSelection {
  backend: BackendChoice;
  /** tfjs's own name for it (`tensorflow`, `wasm` or `cpu`). */
  tfBackend: string;
  skipped: Array<{ backend: BackendChoice; reason: string }>;
}

const require = createRequire(import.meta.url);

async function loadNodeBinding(packageName: string): Promise<string> {
  // Importing a package whose native binding is missing registers half its kernels before it
  // throws, and the next import then warns about every one of them. So look for the binding first.
  const packageDir = dirname(require.resolve(`${packageName}/package.json`));
  const bindings = await readdir(join(packageDir, 'lib'), { recursive: true }).catch(() => [] as string[]);
  if (!bindings.some((file) => file.endsWith('tfjs_binding.node'))) {
    throw new Error(`${packageName} is installed without its native binding (its install step downloads libtensorflow)`);
  }
  // tfjs-node registers a 'tensorflow' backend when its native binding loads.
  await import(packageName);
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${packageName} loaded but its backend did not initialise`);
  return 'tensorflow';
}

async function loadWasm(): Promise<string> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const distDir = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/';
  wasm.setWasmPaths(distDir);
  // The threaded build spawns workers from blob URLs, which Node cannot start: use one thread.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  registerWasmTrainingKernels();
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not initialise');
  if (!tf.env().getBool('WASM_HAS_SIMD_SUPPORT')) throw new Error('this Node.js has no WebAssembly SIMD support');
  return 'wasm';
}

async function loadCpu(): Promise<string> {
  await tf.setBackend('cpu');
  return 'cpu';
}

const LOADERS: Record<BackendChoice, () => Promise<string>> = {
  'node-gpu': () => loadNodeBinding('@tensorflow/tfjs-node-gpu'),
  node: () => loadNodeBinding('@tensorflow/tfjs-node'),
  wasm: loadWasm,
  cpu: loadCpu,
};

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split('\n')[0];
}

export const CPU_WARNING = [
  '!!! scarce is running on the pure-JavaScript "cpu" backend. Training there is hundreds of',
  '!!! times slower than @tensorflow/tfjs-node or the wasm backend. Install @tensorflow/tfjs-node',
  '!!! (or tfjs-node-gpu with CUDA), or use --backend auto to pick the fastest one that loads.',
].join('\n');

/**
 * Selects the fastest backend that loads: tfjs-node-gpu, then tfjs-node, then wasm with SIMD,
 * then the pure-JS cpu backend (with a loud warning). A backend named by the option or by
 * $SCARCE_BACKEND must load, or this throws.
 */
export async function selectBackend(options: SelectBackendOptions = {}): Promise<BackendSelection> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  registerGradients();
  const requested = options.backend ?? parseBackendChoice(process.env[BACKEND_VARIABLE], BACKEND_VARIABLE) ?? 'auto';

  if (requested !== 'auto') {
    let tfBackend: string;
    try {
      tfBackend = await LOADERS[requested]();
    } catch (error) {
      throw new InputError(`Backend '${requested}' was requested but failed to load: ${firstLine(error)}.`);
    }
    log(`backend: ${requested} (requested)`);
    if (requested === 'cpu') log(CPU_WARNING);
    return { backend: requested, tfBackend, skipped: [] };
  }

  const skipped: BackendSelection['skipped'] = [];
  for (const backend of BACKEND_CHOICES) {
    try {
      const tfBackend = await LOADERS[backend]();
      const reasons = skipped.map((entry) => `${entry.backend}: ${entry.reason}`).join('; ');
      log(`backend: ${backend}${reasons ? ` (skipped ${reasons})` : ''}`);
      if (backend === 'cpu') log(CPU_WARNING);
      return { backend, tfBackend, skipped };
    } catch (error) {
      skipped.push({ backend, reason: firstLine(error) });
    }
  }
  throw new Error(`No tfjs backend loaded: ${skipped.map((entry) => `${entry.backend}: ${entry.reason}`).join('; ')}.`);
}

/** Parses a backend name from a flag or variable; undefined for an empty value. */
export function parseBackendChoice(value: string | undefined, source: string): BackendChoice | 'auto' | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === 'auto' || (BACKEND_CHOICES as readonly string[]).includes(value)) return value as BackendChoice | 'auto';
  throw new InputError(`Invalid ${source} '${value}'; expected auto, ${BACKEND_CHOICES.join(', ')}.`);
}
