import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InputError } from './errors.js';
import { sha256Hex, writeFileAtomic } from './files.js';

export const MODEL_JSON_FILE = 'model.json';
export const MODEL_WEIGHTS_FILE = 'weights.bin';

function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/**
 * Seconds a model download may take before it is abandoned; `SCARCE_FETCH_TIMEOUT_SECONDS`
 * overrides the default of 300.
 */
function fetchTimeoutSeconds(): number {
  const text = process.env.SCARCE_FETCH_TIMEOUT_SECONDS;
  const seconds = text === undefined || text === '' ? 300 : Number(text);
  if (!(seconds > 0)) throw new InputError(`SCARCE_FETCH_TIMEOUT_SECONDS must be a positive number of seconds but is '${text}'.`);
  return seconds;
}

/** Downloads `url` whole, turning a refused connection, a dropped one and a timeout into input errors. */
async function fetchBytes(url: string): Promise<Uint8Array> {
  const seconds = fetchTimeoutSeconds();
  const fix = 'Check the URL and that the server is reachable, or download the model and give its folder.';
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(seconds * 1000) });
    if (!response.ok) throw new InputError(`GET ${url} failed with HTTP ${response.status} ${response.statusText}. ${fix}`);
    return new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    if (error instanceof InputError) throw error;
    if ((error as Error).name === 'TimeoutError') {
      throw new InputError(`GET ${url} timed out after ${seconds} s. ${fix} SCARCE_FETCH_TIMEOUT_SECONDS sets a longer limit.`);
    }
    // Node's fetch reports the network error (ECONNREFUSED, a closed socket) as the cause of 'fetch failed'.
    const cause = (error as Error & { cause?: { code?: string; message?: string } }).cause;
    throw new InputError(`GET ${url} failed: ${cause?.code ?? cause?.message ?? (error as Error).message}. ${fix}`);
  }
}

/** Reads bytes from a local path or an http(s) URL; `relative` is resolved against `source`. */
async function readSource(source: string, relative?: string, downloads?: Map<string, Uint8Array>): Promise<Uint8Array> {
  if (isUrl(source)) {
    const url = relative === undefined ? source : new URL(relative, source).toString();
    const bytes = downloads?.get(url) ?? (await fetchBytes(url));
    downloads?.set(url, bytes);
    return bytes;
  }
  const path = relative === undefined ? source : join(dirname(source), relative);
  try {
    return new Uint8Array(await readFile(path));
  } catch (error) {
    throw new InputError(`Cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`);
  }
}

/** Bytes per value of a weight as stored: its quantized type's when quantized, else its own. */
const STORED_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2, complex64: 8 };

/**
 * Returns the bytes a weight group's files must hold by its manifest, or null when a weight's
 * size cannot be known ahead (strings, unknown types).
 */
function expectedGroupBytes(group: tf.io.WeightsManifestConfig[number]): number | null {
  let total = 0;
  for (const weight of group.weights) {
    const bytes = STORED_BYTES[weight.quantization?.dtype ?? weight.dtype];
    if (bytes === undefined) return null;
    total += weight.shape.reduce((product: number, size: number) => product * size, 1) * bytes;
  }
  return total;
}

/** Model artifacts with a fingerprint of their topology and weights. */
export interface LoadedArtifacts {
  artifacts: tf.io.ModelArtifacts;
  /** sha256 of the topology JSON and the weight bytes, after any topology change. */
  fingerprint: string;
  /** The model.json path or URL that was read. */
  jsonSource: string;
}

/**
 * Reads a TF.js layers model (model.json and its weight files) from a folder, a model.json path
 * or an http(s) URL. `editTopology` may change the topology before the model is built. Files
 * fetched from a URL are kept in `downloads` when it is given, so later reads of the same model
 * (at another input size, say) fetch nothing.
 */
export async function readModelArtifacts(
  source: string,
  editTopology?: (topology: Record<string, unknown>, jsonSource: string, metadata: Record<string, unknown> | undefined) => void,
  downloads?: Map<string, Uint8Array>,
): Promise<LoadedArtifacts> {
  const jsonSource = isUrl(source) || source.endsWith('.json') ? source : join(source, MODEL_JSON_FILE);
  const jsonText = new TextDecoder().decode(await readSource(jsonSource, undefined, downloads));
  let modelJson: tf.io.ModelJSON;
  try {
    modelJson = JSON.parse(jsonText) as tf.io.ModelJSON;
  } catch (error) {
    const html = /^\s*</.test(jsonText) ? ' It starts with <, so the server or file gave an HTML page; check the URL or path.' : '';
    throw new InputError(`${jsonSource} is not a TF.js model.json: ${(error as Error).message}.${html}`);
  }
  if (modelJson.modelTopology === undefined || modelJson.weightsManifest === undefined) {
    throw new InputError(`${jsonSource} has no modelTopology or weightsManifest; expected a TF.js layers model (tfjs-converter --output_format tfjs_layers_model).`);
  }
  editTopology?.(modelJson.modelTopology as Record<string, unknown>, jsonSource, modelJson.userDefinedMetadata as Record<string, unknown> | undefined);

  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  const buffers: Uint8Array[] = [];
  for (const group of modelJson.weightsManifest) {
    weightSpecs.push(...group.weights);
    const groupBuffers: Uint8Array[] = [];
    for (const path of group.paths) groupBuffers.push(await readSource(jsonSource, path, downloads));
    // A cut-short download or a replaced file would otherwise fail inside tfjs with a shape error.
    const expected = expectedGroupBytes(group);
    const found = groupBuffers.reduce((sum, buffer) => sum + buffer.byteLength, 0);
    if (expected !== null && found !== expected) {
      throw new InputError(
        `${group.paths.join(', ')} of ${jsonSource} hold${group.paths.length === 1 ? 's' : ''} ${found} bytes, but the weightsManifest of its model.json needs ${expected}. ` +
          'The file is incomplete or from another model; download or copy the weights again.',
      );
    }
    buffers.push(...groupBuffers);
  }
  const weightData = new Uint8Array(buffers.reduce((sum, buffer) => sum + buffer.byteLength, 0));
  let offset = 0;
  for (const buffer of buffers) {
    weightData.set(buffer, offset);
    offset += buffer.byteLength;
  }

  const topologyText = JSON.stringify(modelJson.modelTopology);
  return {
    artifacts: {
      modelTopology: modelJson.modelTopology,
      weightSpecs,
      weightData: weightData.buffer,
      format: modelJson.format,
      generatedBy: modelJson.generatedBy,
      convertedBy: modelJson.convertedBy ?? undefined,
      userDefinedMetadata: modelJson.userDefinedMetadata,
    },
    fingerprint: sha256Hex(Buffer.concat([Buffer.from(topologyText), weightData])),
    jsonSource,
  };
}

/**
 * Saves a layers model in the TF.js layers format: `model.json` (topology, weight manifest and
 * `metadata` as user-defined metadata) and one `weights.bin`, each written atomically.
 * Returns the path of model.json.
 */
export async function saveLayersModel(directory: string, model: tf.LayersModel, metadata: Record<string, unknown> = {}): Promise<string> {
  await mkdir(directory, { recursive: true });
  const modelJsonPath = join(directory, MODEL_JSON_FILE);
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      if (artifacts.weightData === undefined || artifacts.weightSpecs === undefined) {
        throw new Error('The model produced no weights to save.');
      }
      const modelJson: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as tf.io.ModelJSON['modelTopology'],
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [MODEL_WEIGHTS_FILE], weights: artifacts.weightSpecs }],
        userDefinedMetadata: metadata as Record<string, object>,
      };
      await writeFileAtomic(join(directory, MODEL_WEIGHTS_FILE), new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData)));
      await writeFileAtomic(modelJsonPath, JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  return modelJsonPath;
}

/** Loads a layers model with its user-defined metadata from a folder, a model.json path or a URL. */
export async function loadLayersModelFrom(source: string): Promise<{ model: tf.LayersModel; metadata: Record<string, unknown>; fingerprint: string }> {
  const { artifacts, fingerprint } = await readModelArtifacts(source);
  const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  return { model, metadata: (artifacts.userDefinedMetadata ?? {}) as Record<string, unknown>, fingerprint };
}
